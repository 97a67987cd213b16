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

#include "growth_curve.h"
#include "outlook.h"

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
    // Reserve along learned growth curves: a job may start when its growth will meet memory
    // that running jobs free as they end (false: each job's whole peak from its start).
    bool follow_growth_curves = true;
    // A curve is one past run: this run's memory is assumed to come this much sooner, and
    // its jobs to end later by curve_end_margin and by a factor measured on this build (the
    // slowest of the last calibration_jobs jobs against their curves; curve_later until
    // min_calibration_jobs have ended).
    double curve_sooner = 0.9;
    double curve_later = 1.15;
    std::chrono::milliseconds curve_end_margin{50};
    std::size_t calibration_jobs = 16;
    std::size_t min_calibration_jobs = 4;
    std::uint32_t min_calibration_ms = 200;  // shorter jobs do not calibrate
    // Curves plan ahead; they keep this much of what is available free at every future
    // instant, so the plan coming true does not itself cross the emergency floor.
    std::uint64_t curve_reserve_bytes = 0;
};

// What a job is expected to take: its peak, and (once learned) how it gets there.
struct Reservation {
    std::uint64_t peak_bytes = 0;
    std::optional<GrowthCurve> curve;
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
    bool on_curve = false;  // admit: its peak does not fit now, but will as running jobs end
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
    explicit Governor(GovernorSettings settings) : settings_(settings), curve_later_(settings.curve_later) {}

    // A job stopped at exec.
    void job_waiting(pid_t job, Reservation expected, Clock::time_point now);
    // A job that was never paused (gate off, or not seen in time) but runs.
    void job_running(pid_t job, Reservation expected, Clock::time_point now);
    // Current use of a running job, from the tracker.
    void job_usage(pid_t job, std::uint64_t current_bytes, std::uint64_t peak_bytes);
    // The job's root exited, whether it was waiting, running or stopped.
    void job_exited(pid_t job, Clock::time_point now);

    // Every running job was stopped for a while from outside (the build was suspended):
    // their run times no longer calibrate, and they are no longer counted on to end on time.
    void jobs_interrupted();

    // What to do now, given memory available to the build (after limits and headroom).
    // Every decision returned is already applied to the governor's own state.
    std::vector<Decision> decide(std::uint64_t available_bytes, Clock::time_point now);

    // How many more jobs of at most `job_bytes` each would start at once by the peak rule,
    // with `margin_bytes` left free, nobody waiting before them, and `unannounced` jobs of
    // that size already started but not reported yet: the gate's fast paths, which start a
    // job before knowing which one it is.
    std::uint64_t startable_at_once(std::uint64_t job_bytes, std::uint64_t margin_bytes, std::uint64_t unannounced,
                                    std::uint64_t available_bytes) const;

    // Lets every held job (waiting at exec or emergency-stopped) run, returning them: the
    // build is being interrupted and must be able to end.
    std::vector<pid_t> release_all(Clock::time_point now);

    GovernorView view() const;
    // How much longer than their curves' durations jobs are assumed to run, as calibrated.
    double curve_later() const { return curve_later_; }
    std::vector<pid_t> running_jobs() const;
    std::vector<pid_t> waiting_jobs() const { return {queue_.begin(), queue_.end()}; }
    // How long a job has waited so far (admitted jobs: until admission).
    std::optional<Clock::duration> waited(pid_t job, Clock::time_point now) const;

private:
    struct Job {
        std::uint64_t reserved_bytes = 0;  // prediction, raised by what it really used
        std::uint64_t current_bytes = 0;
        std::optional<GrowthCurve> curve;
        Clock::time_point queued_at{};
        Clock::time_point admitted_at{};
        bool refused_once = false;
        bool emergency_stopped = false;
        bool ever_stopped = false;  // its run time says nothing of its curve's accuracy
    };

    // The running jobs' expected use beyond their current use, over the time ahead; with
    // `planned`, one more job as if it started `start_ms` from now.
    struct Planned {
        const Job* job;
        double start_ms;
    };
    Outlook outlook(Clock::time_point now, std::optional<Planned> planned = std::nullopt) const;
    // Whether a job started `start_ms` from now keeps the outlook within `available_bytes`
    // (less curve_reserve_bytes) while it is expected to use memory.
    bool fits_from(const Job& job, double start_ms, const Outlook& running, std::int64_t available_bytes) const;
    // The first instant ahead from which a job would fit (nullopt: not while the outlook lasts).
    std::optional<double> earliest_start(const Job& job, const Outlook& running, std::int64_t available_bytes) const;
    // A job's expected use `ahead_ms` from now beyond its current use (negative: it ended);
    // `age_ms` < 0 plans a start that far ahead.
    std::int64_t extra_use(const Job& job, double age_ms, double ahead_ms) const;
    // extra_use as steps: (instant ahead, value from then on), the first at 0.
    std::vector<std::pair<double, std::int64_t>> steps(const Job& job, double age_ms) const;
    double curve_end_ms(const GrowthCurve& curve) const;
    std::uint64_t imminent_bytes() const;
    std::size_t active_count() const;  // running and not emergency-stopped
    void emergency(std::uint64_t available_bytes, std::vector<Decision>& decisions);
    void admit_waiting(std::uint64_t available_bytes, Clock::time_point now, std::vector<Decision>& decisions);
    Decision admit(pid_t job, std::int64_t effective_free, Clock::time_point now);

    GovernorSettings settings_;
    std::deque<pid_t> queue_;            // waiting, oldest first
    std::map<pid_t, Job> waiting_;
    std::map<pid_t, Job> running_;       // includes emergency-stopped jobs
    std::vector<pid_t> admission_order_; // running jobs, oldest admission first
    std::deque<double> run_time_ratios_; // recent jobs' run time ÷ their curve's duration
    double curve_later_ = 1;             // from run_time_ratios_ (or the setting)
    Clock::time_point last_progress_{};
    bool progressed_ = true;             // since the last decide()
};

}  // namespace memgov
