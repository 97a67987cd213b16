// `memgov status [--json] [--watch]`: the builds governed on this host, from the host ledger.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "host_ledger.h"

namespace memgov {

struct StatusOptions {
    std::string ledger_dir = HostLedger::default_dir;
    bool json = false;
    bool watch = false;                       // again every interval, until interrupted
    bool prometheus = false;                  // the text exposition format, on stdout
    std::optional<std::string> metrics_file;  // ...written to FILE atomically instead
    std::chrono::milliseconds interval{1000};
};

int status_command(const StatusOptions& options);

}  // namespace memgov
