// `memgov [run] … -- command…`: runs the build under the tracker and reports what it used.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace memgov {

struct RunOptions {
    std::vector<std::string> command;
    bool gate = true;                      // stop job roots at exec until admitted
    std::vector<std::string> extra_gates;  // added to default_gate_names()
    std::optional<std::string> stats_json;
    std::optional<std::string> log_file;
    int verbosity = 0;
    bool quiet = false;
    std::size_t top_jobs = 10;
    std::uint32_t max_procs = 32768;
};

// Exit status of the command, or 125 when memgov itself could not run it.
int run_command(const RunOptions& options);

constexpr int memgov_failure_status = 125;

}  // namespace memgov
