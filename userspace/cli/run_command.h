// `memgov [run] … -- command…`: runs the build under the tracker and the governor.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "host_ledger.h"
#include "terminal.h"

namespace memgov {

enum class Backend { bpf, procfs };

struct RunOptions {
    Backend backend = Backend::bpf;
    std::chrono::milliseconds poll_interval{100};  // procfs backend only
    std::vector<std::string> command;
    bool gate = true;                      // stop job roots at exec until admitted
    std::vector<std::string> extra_gates;  // added to default_gate_names()
    std::optional<std::string> limit;      // SIZE or PERCENT of RAM
    std::string headroom = "0";
    std::string emergency_floor = "64M";
    std::string cold_estimate = "512M";
    std::optional<std::string> profiles_dir;
    std::string ledger_dir = HostLedger::default_dir;  // "off": govern this build alone
    // A `memgov daemon` to follow the build through when memgov may not load BPF itself, or
    // always when `socket_given` ("off": never).
    std::string socket = "/run/memgov/memgov.sock";
    bool socket_given = false;
    std::size_t max_running = 0;
    bool follow_growth_curves = true;
    bool always_stop = false;  // no kernel grant: every gated job waits for the controller
    std::chrono::milliseconds backfill_window{10'000};
    // This build's priority among the builds governed on the same memory, as nice(1) counts
    // it: each step makes its waiting jobs count as queued nice_step later (below 0: sooner,
    // root only).
    int nice = 0;
    std::optional<std::string> stats_json;
    std::optional<std::string> trace_file;  // --trace: Chrome Trace Event JSON, for Perfetto
    std::optional<std::string> log_file;
    int verbosity = 0;
    bool quiet = false;
    BarMode bar = BarMode::automatic;
    std::size_t top_jobs = 10;
    std::uint32_t max_procs = 32768;
};

// Exit status of the command, or 125 when memgov itself could not run it.
int run_command(const RunOptions& options);

constexpr int memgov_failure_status = 125;

}  // namespace memgov
