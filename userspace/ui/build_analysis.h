// `memgov report FILE`: why a build was as slow as it was, from its trace (--trace) or its
// --stats-json. Pure: the file's JSON in, a timeline of its jobs, then the answers in words.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace memgov {

// One job's life, in seconds since the build started.
struct JobTimeline {
    std::string key;
    double exec_s = 0;  // its root exec'd (it waited from here, if held)
    double run_s = 0;   // let run
    double end_s = 0;
    std::vector<std::pair<double, double>> stops;  // emergency-stopped from, until
    std::uint64_t peak_bytes = 0;
    bool oom_killed = false;
    // Summed over its processes, from the kernel (seconds): CPU, waiting for a CPU, waiting for
    // block I/O and in direct reclaim (those two only with delay accounting on), major faults.
    double cpu_s = 0, run_delay_s = 0, io_delay_s = 0, reclaim_delay_s = 0;
    std::uint64_t major_faults = 0;
    // Its use over time (seconds since the build started, MiB), from the trace's counter of
    // its lane: what the HTML page stacks and the what-if replay grows it along.
    std::vector<std::pair<double, double>> rss_mib;
};

// One reading of the trace's memory counter (MiB).
struct MemoryPoint {
    double at_s = 0;
    double build_mib = 0, other_mib = 0, available_mib = 0, limit_mib = 0;
};

struct OomKillNote {
    double at_s = 0;
    long victim = 0;
    std::string comm;
    std::string key;  // its job's ("" outside any job)
    std::uint64_t rss_mib = 0;
    std::vector<std::string> beside;  // the jobs running then, with their use
};

struct BuildTimeline {
    std::string source;   // "trace" or "stats"
    std::string command;  // what memgov ran (traces only)
    double wall_s = 0;
    std::size_t processes = 0;
    std::vector<JobTimeline> jobs;
    std::vector<OomKillNote> oom_kills;
    std::size_t emergency_stops = 0;
    std::optional<double> build_peak_mib;  // from the trace's memory counter
    std::optional<double> limit_mib;
    std::vector<MemoryPoint> memory;  // the trace's memory counter, in order
    std::optional<unsigned> cpus;     // the CPUs the build could use (traces since 0.6)
};

// nullopt, with `error` set, when the JSON is neither a memgov trace nor --stats-json output.
std::optional<BuildTimeline> timeline_from_json(const nlohmann::json& json, std::string& error);

struct BuildFindings {
    double average_parallelism = 0;  // jobs running, averaged over the wall time
    std::size_t peak_parallelism = 0;
    std::size_t jobs_waited = 0;
    double seconds_waited = 0;  // summed over jobs
    double seconds_stopped = 0;
    double memory_bound_share = 0;  // of the wall time, with a job waiting or stopped
    double serial_share = 0;        // of the wall time, with one job running and none held
    double idle_share = 0;          // of the wall time, with no job at all (glue, configure …)
    double cpu_s = 0, run_delay_s = 0, io_delay_s = 0, reclaim_delay_s = 0;  // summed over jobs
    std::uint64_t major_faults = 0;
    double cpu_wait_share = 0;  // of the time the jobs wanted a CPU (CPU time + waiting), waiting
};

BuildFindings findings_of(const BuildTimeline& timeline);
std::string report_text(const BuildTimeline& timeline, std::size_t top);
nlohmann::json report_json(const BuildTimeline& timeline);

}  // namespace memgov
