// `memgov status [--json] [--watch]`: the builds governed on this host, from the host ledger.
#pragma once

#include <chrono>
#include <string>

#include "host_ledger.h"

namespace memgov {

struct StatusOptions {
    std::string ledger_dir = HostLedger::default_dir;
    bool json = false;
    bool watch = false;  // again every interval, until interrupted
    std::chrono::milliseconds interval{1000};
};

int status_command(const StatusOptions& options);

}  // namespace memgov
