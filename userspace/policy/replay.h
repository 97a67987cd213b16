// What-if (docs/DESIGN.md §10.3): a recorded build's jobs replayed through the real Governor
// on a simulated clock, under another memory limit, -j or number of CPUs, to estimate the
// wall time, the waits and whether memory would run out. Pure: recorded jobs in, figures out.
//
// The model, and what it assumes:
// - Arrivals: jobs start in their recorded order, each when the build tool would start it.
//   A job the tool started as soon as a slot of its -j freed (all slots were busy) is
//   limited by -j alone; any other job waited for something else, taken to be the job that
//   ended last before it (a dependency: a link after its compiles) plus the same delay. At
//   most `jobs` jobs are live at once, waiting at the gate included, as under make -j.
// - CPUs: a running job needs its recorded running time less its wait for a CPU, and keeps
//   its recorded CPU time's share of CPUs busy; when the running jobs want more CPUs than
//   there are, all slow down alike.
// - Memory: a job's use follows its recorded use along its progress; everything else keeps
//   its recorded use. The governor knows every job as the recording measured it (a warm run:
//   its peak, and its growth curve).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "governor.h"

namespace memgov {

struct ReplayJob {
    std::string key;
    double exec_s = 0;  // its root exec'd, in the recording (seconds since the build started)
    double end_s = 0;
    double running_s = 0;  // it ran for this long in the recording, stops not counted
    double work_s = 0;     // what it needs with the CPUs it wants: running_s less its wait for one
    double cpus = 1;       // CPUs it keeps busy while running (its CPU time ÷ work_s)
    // Its use over its run: (seconds of running since it started, bytes), in order.
    std::vector<std::pair<double, std::uint64_t>> use;
    std::uint64_t peak_bytes = 0;
};

struct ReplaySettings {
    std::uint64_t limit_bytes = 0;  // what the build and everything else may use
    std::uint64_t other_bytes = 0;  // everything else's use
    std::size_t jobs = 1;           // the build tool's -j
    double cpus = 1;
    bool governed = true;  // false: the plain build (no gate, no net)
    GovernorSettings governor;
    std::chrono::milliseconds step{10};  // the simulated clock's tick, and memgov's reading interval
};

struct ReplayOutcome {
    double wall_s = 0;
    std::size_t jobs_waited = 0;
    double seconds_waited = 0;  // summed over jobs
    std::size_t emergency_stops = 0;
    std::uint64_t peak_bytes = 0;  // the build's, at its highest
    std::size_t peak_running = 0;
    // The build and everything else needed more than the limit: the kernel would have killed
    // a job then (the replay lets the build go on, as if it had not).
    bool out_of_memory = false;
    double out_of_memory_at_s = 0;
};

ReplayOutcome replay(const std::vector<ReplayJob>& jobs, double recorded_wall_s, const ReplaySettings& settings);

// The -j the recording shows: the most jobs live at once.
std::size_t recorded_jobs(const std::vector<ReplayJob>& jobs);

}  // namespace memgov
