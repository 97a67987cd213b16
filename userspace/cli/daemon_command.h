// `memgov daemon`: the host service (docs/DESIGN.md §12). It loads the BPF programs once and
// follows, for each client on its socket, the build that client started; the clients decide
// and signal their own processes. Needs CAP_BPF and CAP_PERFMON only.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace memgov {

struct DaemonOptions {
    std::string socket_path = "/run/memgov/memgov.sock";
    std::size_t max_clients = 256;
    std::size_t max_builds_per_user = 32;
    // Where the daemon keeps its clients' host-ledger entries ("off": none; each client then
    // governs its build as if alone, and is told so).
    std::string ledger_dir = "/run/memgov/ledger";
    std::vector<std::string> extra_gates;
    int verbosity = 0;
};

int daemon_command(const DaemonOptions& options);

}  // namespace memgov
