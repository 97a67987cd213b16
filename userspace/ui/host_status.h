// `memgov status`: the builds governed on this host, from the host ledger, in words or JSON
// (pure: the ledger's entries and a memory reading in, text out).
#pragma once

#include <sys/types.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "host_ledger.h"
#include "memory_probe.h"

namespace memgov {

struct HostStatus {
    std::string ledger_dir;
    MemoryReading memory;
    std::vector<LedgerEntry> builds;
};

using UserNames = std::function<std::string(uid_t)>;

std::string host_status_text(const HostStatus& status, const UserNames& user_name);
nlohmann::json host_status_json(const HostStatus& status, const UserNames& user_name);
// Prometheus text exposition (prometheus.io/docs/instrumenting/exposition_formats): the
// host's memory, and per build (labels memgov_pid, user) its jobs by state, memory, and
// counters since it started: a build's series end with it.
std::string host_status_prometheus(const HostStatus& status, const UserNames& user_name);

}  // namespace memgov
