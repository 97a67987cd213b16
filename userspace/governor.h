// The admission policy (docs/DESIGN.md §4). Plain C++: events and a clock in, decisions
// out; no syscalls, so every scenario is a unit test.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace memgov {

using Clock = std::chrono::steady_clock;

struct GovernorSettings {
    // Below this much available memory the youngest running job is stopped (never killed).
    std::uint64_t emergency_floor_bytes = 256ull << 20;
    // A job that does not fit may be passed by smaller ones only while it has waited less
    // than this; after it, it blocks the queue until it fits (no starvation).
    std::chrono::milliseconds backfill_window{10'000};
    // At most this many jobs admitted at once (0: no limit besides memory). When set, waiting
    // jobs start biggest first (the build tool's -j can then be much larger: a deep queue).
    std::size_t max_running = 0;
    // With jobs waiting and no running job's memory changing (or ending) for this long, the
    // running ones may be waiting for a waiting one (a pipe between two compilers): the
    // oldest waiting job starts whatever it needs, so the build cannot deadlock.
    std::chrono::milliseconds stall_timeout{10'000};
};

enum class DecisionKind {
    admit,           // resume a job paused at exec
    keep_waiting,    // a job does not fit (reported once per job, for the log)
    emergency_stop,  // stop a running job: memory is about to run out
    emergency_resume // resume a job stopped by emergency_stop
};

struct Decision {
    DecisionKind kind;
    pid_t job;
    // The figures behind it, for the log.
    std::uint64_t needed_bytes = 0;
    std::int64_t effective_free_bytes = 0;
    std::uint64_t imminent_bytes = 0;
    bool waited = false;    // admit: the job had been refused before
    bool forced = false;    // admit: nothing else was running (progress guarantee)
    bool backfill = false;  // admit: passed an older job that does not fit yet
    bool stalled = false;   // admit: nothing made progress for stall_timeout
};

struct GovernorView {
    std::size_t waiting = 0;
    std::size_t running = 0;
    std::size_t emergency_stopped = 0;
    std::uint64_t reserved_bytes = 0;  // Σ reservations of running jobs
    std::uint64_t imminent_bytes = 0;  // Σ max(reserved - current, 0)
    std::uint64_t jobs_usage_bytes = 0;
};

class Governor {
public:
    explicit Governor(GovernorSettings settings) : settings_(settings) {}

    // A job stopped at exec, predicted to peak at `predicted_bytes`.
    void job_waiting(pid_t job, std::uint64_t predicted_bytes, Clock::time_point now);
    // A job that was never paused (gate off, or not seen in time) but runs.
    void job_running(pid_t job, std::uint64_t predicted_bytes, Clock::time_point now);
    // Current use of a running job, from the tracker.
    void job_usage(pid_t job, std::uint64_t current_bytes, std::uint64_t peak_bytes);
    // The job's root exited, whether it was waiting, running or stopped.
    void job_exited(pid_t job);

    // What to do now, given memory available to the build (after limits and headroom).
    // Every decision returned is already applied to the governor's own state.
    std::vector<Decision> decide(std::uint64_t available_bytes, Clock::time_point now);

    // Lets every held job (waiting at exec or emergency-stopped) run, returning them: the
    // build is being interrupted and must be able to end.
    std::vector<pid_t> release_all(Clock::time_point now);

    GovernorView view() const;
    std::vector<pid_t> running_jobs() const;
    std::vector<pid_t> waiting_jobs() const { return {queue_.begin(), queue_.end()}; }
    // How long a job has waited so far (admitted jobs: until admission).
    std::optional<Clock::duration> waited(pid_t job, Clock::time_point now) const;

private:
    struct Job {
        std::uint64_t reserved_bytes = 0;  // prediction, raised by what it really used
        std::uint64_t current_bytes = 0;
        Clock::time_point queued_at{};
        Clock::time_point admitted_at{};
        bool refused_once = false;
        bool emergency_stopped = false;
    };

    std::uint64_t imminent_bytes() const;
    std::size_t active_count() const;  // running and not emergency-stopped
    void emergency(std::uint64_t available_bytes, std::vector<Decision>& decisions);
    void admit_waiting(std::int64_t effective_free, Clock::time_point now,
                       std::vector<Decision>& decisions);
    Decision admit(pid_t job, std::int64_t effective_free, Clock::time_point now);

    GovernorSettings settings_;
    std::deque<pid_t> queue_;            // waiting, oldest first
    std::map<pid_t, Job> waiting_;
    std::map<pid_t, Job> running_;       // includes emergency-stopped jobs
    std::vector<pid_t> admission_order_; // running jobs, oldest admission first
    Clock::time_point last_progress_{};
    bool progressed_ = true;             // since the last decide()
};

}  // namespace memgov
