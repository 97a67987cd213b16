// `--trace FILE` (docs/DESIGN.md §10.1): the build as it runs, as Chrome Trace Event JSON,
// which ui.perfetto.dev and chrome://tracing open. Written while the build runs (nothing is
// kept but open slices and lanes), so a trace of any length costs memgov no memory, and a
// memgov that dies leaves a trace Perfetto still reads (the closing bracket is optional).
//
// Tracks: process 1 holds one lane per concurrently live job (a lane is reused once its job
// ends, so the lanes show real concurrency), each job a slice named by its key with
// `waiting`, `running` and, inside running, `stopped` beneath; process 2 holds the
// processes that exec'd, on lanes of their own; counters on process 1 (memory, each lane's
// job RSS, pressure); instants for admissions, stops, resumes, OOM kills and lost events.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "governor.h"
#include "pressure.h"
#include "tracker.h"

namespace memgov {

// The memory figures of one reading, as the bar shows them.
struct MemorySample {
    std::uint64_t build_bytes = 0;
    std::uint64_t other_bytes = 0;
    std::uint64_t imminent_bytes = 0;
    std::uint64_t available_bytes = 0;
    std::uint64_t limit_bytes = 0;
};

// Bytes as the trace's MiB figures: to a tenth.
double mib(std::uint64_t bytes);

class TraceWriter {
public:
    // `zero`: the trace's time 0 (CLOCK_MONOTONIC, the tracker's and the controller's clock).
    // `title` names the build's track; `cpus`, the CPUs the build may use (0: not known),
    // is what memgov report's what-if replays the build on.
    TraceWriter(std::ostream& out, Clock::time_point zero, const std::string& title, unsigned cpus = 0);
    ~TraceWriter();  // closes what is open and the JSON array
    TraceWriter(const TraceWriter&) = delete;
    TraceWriter& operator=(const TraceWriter&) = delete;

    // A job's root exec'd: waiting at the gate, or running at once (a grant, the fast path).
    void job_started(pid_t job, const std::string& key, bool waiting, Clock::time_point at);
    // A waiting job was let run (admitted, or released), with the numbers behind it.
    void job_admitted(pid_t job, Clock::time_point at, nlohmann::json why);
    void job_stopped(pid_t job, Clock::time_point at, nlohmann::json why);
    void job_resumed(pid_t job, Clock::time_point at, nlohmann::json why);
    // Something worth a mark on the job's lane (a refusal, a re-prediction).
    void job_note(pid_t job, const std::string& what, Clock::time_point at, nlohmann::json details);
    // `costs`: summed over the job's processes (CPU, waiting for a CPU, I/O, reclaim, faults).
    void job_ended(pid_t job, Clock::time_point at, std::uint64_t peak_bytes, int wait_status,
                   const TaskCosts& costs = {});

    void process_exec(pid_t pid, const std::vector<std::string>& argv, Clock::time_point at);
    void process_exit(pid_t pid, Clock::time_point at, std::uint64_t peak_rss_bytes, const TaskCosts& costs = {});
    void oom_kill(pid_t victim, const std::string& comm, Clock::time_point at, nlohmann::json details);
    void events_dropped(std::uint64_t count, Clock::time_point at);

    // A memory reading, each running job's use, and (when given) pressure totals. Counters are
    // written when they moved (by 1 MiB, or pressure by a tenth of a percent), or every second.
    void memory(Clock::time_point at, const MemorySample& sample, const std::map<pid_t, std::uint64_t>& job_rss,
                const std::optional<Pressure>& pressure);

private:
    struct Lanes {
        std::vector<bool> busy;  // lane i + 1
        int take();
        void give_back(int lane);
    };
    struct OpenJob {
        int lane = 0;
        bool waiting = false;
        bool stopped = false;
    };
    struct OpenProcess {
        int lane = 0;
    };

    void write(nlohmann::json event);
    void close_job(pid_t job, Clock::time_point at, nlohmann::json args);
    void name_lane(int pid, int lane, const std::string& kind);
    double micros(Clock::time_point at) const;
    void begin(int pid, int lane, const std::string& name, Clock::time_point at, nlohmann::json args = nullptr);
    void end(int pid, int lane, Clock::time_point at, nlohmann::json args = nullptr);
    void instant(int lane, const std::string& name, Clock::time_point at, nlohmann::json args);
    void counter(const std::string& name, Clock::time_point at, nlohmann::json values);

    std::ostream& out_;
    Clock::time_point zero_;
    Clock::time_point last_at_{};
    bool first_ = true;
    Lanes job_lanes_;
    Lanes process_lanes_;
    std::vector<int> named_job_lanes_;
    std::vector<int> named_process_lanes_;
    // The last instant written on each (track, lane): a slice never ends before it began, nor
    // begins before the lane's last one ended, whatever order records arrive in (an exit is
    // stamped by the kernel, a stop by the controller after a reading).
    std::map<std::pair<int, int>, Clock::time_point> lane_last_;
    std::map<pid_t, OpenJob> jobs_;
    std::map<pid_t, OpenProcess> processes_;
    std::map<std::string, nlohmann::json> last_counters_;
    std::map<std::string, Clock::time_point> last_counter_at_;
    std::optional<std::pair<Clock::time_point, Pressure>> last_pressure_;
};

}  // namespace memgov
