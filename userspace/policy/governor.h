// The admission policy, re-prediction and the emergency net (docs/DESIGN.md §7). Plain C++: events and a clock in,
// decisions out; no syscalls, so every scenario is a unit test.
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

// One step of a build's --nice: its waiting jobs count as queued this much later among other
// builds' (GovernorSettings::queue_offset), a backfill window a step.
constexpr std::chrono::milliseconds nice_step{10'000};
constexpr int lowest_nice = -20, highest_nice = 19;  // as nice(1) counts

struct GovernorSettings {
    // Below this much available memory the growing job holding least is stopped (never killed).
    std::uint64_t emergency_floor_bytes = 64ull << 20;
    // A job that does not fit may be passed by smaller ones only while it has waited less
    // than this; after it, it blocks the queue until it fits (no starvation).
    std::chrono::milliseconds backfill_window{10'000};
    // Between builds governed on the same memory, this build's waiting jobs count as queued
    // this much later (negative: sooner) than they were: a build's priority (--nice) as a
    // head start or handicap in the host's one queue, so no build starves for it.
    std::chrono::milliseconds queue_offset{0};
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
    // Admission keeps this much of what is available free, now (peak rule) and at every
    // future instant (curves), so a plan coming true, or a reading that moves a little,
    // does not itself make the emergency net act.
    std::uint64_t kept_free_bytes = 0;
    // How far ahead a running job's growth rate is extrapolated: the time until a later
    // reading can stop it (readings every 20 ms while memory is tight), twice over. Longer
    // would take one step of a job that grows in steps for a steep climb.
    std::chrono::milliseconds reaction_time{40};
    // How far ahead the emergency net looks at running jobs' expected growth along their
    // curves: five readings while memory is tight, time enough to stop a job. At 200 ms warm
    // memstorm runs stopped jobs 2-10 times a run for deficits of a few MB that had not
    // come about yet (0 stops in 3 runs at 100 ms). Jobs without a curve count their whole
    // remaining growth at once, whatever the horizon.
    std::chrono::milliseconds net_horizon{100};
    // A running job that passes its prediction (or, when the prediction was only a guess
    // from its peers, whose growth rate says it will within reaction_time) is re-predicted
    // at once, to what it will reach within reaction_time plus this share of it: it has
    // shown it is larger than believed, and nothing says by how much.
    double repredict_margin = 0.5;
    // A guess is also revised when the job's steady growth rate (over at least
    // steady_window) says it will pass it if it grows for as long again as it has so far
    // (at most guess_lookahead): a compiler that has grown steadily for a while goes on
    // growing, and two unknown jobs found out only when they pass their guesses may both
    // be too large by then for either to finish beside the other (Eigen's tests, cold:
    // two of 891 and 769 MB at a 512 MB guess in 1300 MB were doomed at 420 MB each).
    std::chrono::milliseconds guess_lookahead{10'000};
    std::chrono::milliseconds steady_window{250};
    // A job whose peak was measured on an earlier run is re-predicted only when it passes
    // that peak by this share (a file's peak moves a little from run to run), and then with
    // half the margin.
    double measured_tolerance = 0.05;
};

// What a job is expected to take: its peak, and (once learned) how it gets there.
struct Reservation {
    std::uint64_t peak_bytes = 0;
    std::optional<GrowthCurve> curve;
    // The peak is this job's own, measured on an earlier run (not a guess from its peers).
    bool measured = false;
    // A guess's largest peer: what the job may turn out to need. A guessed job that the net
    // stopped has shown it grows beyond its guess; it continues only when this would fit.
    std::uint64_t ceiling_bytes = 0;
};

enum class DecisionKind {
    admit,             // resume a job waiting at exec
    keep_waiting,      // a job does not fit (reported once per job, for the log)
    emergency_stop,    // stop a running job: memory is about to run out
    emergency_resume,  // resume a job stopped by emergency_stop
    repredict          // a running job outgrew its prediction: a new one (for the log)
};

struct Decision {
    DecisionKind kind;
    pid_t job;
    // The figures behind it, for the log.
    std::uint64_t needed_bytes = 0;
    std::int64_t effective_free_bytes = 0;
    std::uint64_t imminent_bytes = 0;
    bool waited = false;       // admit: the job had been refused before
    bool forced = false;       // admit: nothing else was running (progress guarantee)
    bool backfill = false;     // admit: passed an older job that does not fit yet
    bool stalled = false;      // admit: nothing made progress for stall_timeout
    bool on_curve = false;     // admit: its peak does not fit now, but will as running jobs end
    bool below_floor = false;  // emergency_stop: available memory fell below the floor (else:
                               // running jobs' remaining growth exceeds what is available)
    // admit, keep_waiting: kept free besides the job's peak in case one guessed job (this one
    // or a running one) turns out as large as its largest peer (see surprise_room()).
    std::uint64_t surprise_bytes = 0;
    // repredict: the prediction before, the job's use and growth rate at the reading; and the
    // guess it started with when it passes it (or will within reaction_time): then it counts
    // as large as its largest peer.
    std::uint64_t previous_bytes = 0;
    std::uint64_t broken_guess_bytes = 0;
    std::uint64_t current_bytes = 0;
    std::uint64_t growth_bytes_per_second = 0;
};

// The other builds governed on the same memory, as the host ledger shows them (docs/DESIGN.md
// §7.6): what they are about to take, and who among them waits.
struct OtherBuilds {
    // Σ of their running jobs' reservation - current use: memory they are about to take.
    std::uint64_t imminent_bytes = 0;
    // What their running jobs are expected to take within the net's horizon.
    std::uint64_t near_growth_bytes = 0;
    // Room they keep besides: for one surprise, and for the starts their kernel grant allows.
    std::uint64_t kept_bytes = 0;
    // Of it, the grants': jobs may start that those builds have not heard of yet.
    std::uint64_t granted_bytes = 0;
    // What their stopped jobs need to finish: no job of ours starts into it, as no job of
    // theirs would (a stop does not give memory back; the stopped job must still finish).
    std::uint64_t stopped_need_bytes = 0;
    std::size_t running = 0;  // their jobs running (not stopped)
    std::size_t stopped = 0;  // their jobs stopped by their nets
    // All that a new start of ours leaves them: what they are about to take, keep, and need
    // to finish what they stopped.
    std::uint64_t held_for_them_bytes() const { return imminent_bytes + kept_bytes + stopped_need_bytes; }
    struct Waiting {
        Clock::time_point queued_at;  // CLOCK_MONOTONIC, the same in every process
        std::uint64_t needed_bytes = 0;
    };
    std::vector<Waiting> oldest_waiting;  // each waiting build's oldest waiting job
};

struct GovernorView {
    std::size_t waiting = 0;
    std::size_t running = 0;
    std::size_t emergency_stopped = 0;
    std::uint64_t reserved_bytes = 0;  // Σ reservations of running jobs
    std::uint64_t imminent_bytes = 0;  // Σ max(reserved - current, 0)
    std::uint64_t jobs_usage_bytes = 0;
};

// One job as the governor sees it (for `memgov status`).
struct JobView {
    enum class State { waiting, running, stopped };
    pid_t job = 0;
    State state = State::waiting;
    std::uint64_t reserved_bytes = 0;  // its prediction, or what it used when more
    std::uint64_t current_bytes = 0;
};

// "waiting", "running", "stopped": the glossary's words (docs/DESIGN.md §2).
const char* state_name(JobView::State state);

// What this build shows the others through the host ledger: one term of their OtherBuilds.
struct BuildShare {
    std::uint64_t imminent_bytes = 0;  // of its jobs that are not stopped: those grow
    std::uint64_t near_growth_bytes = 0;
    std::uint64_t kept_bytes = 0;          // its room for one surprise (the controller adds its grant)
    std::uint64_t stopped_need_bytes = 0;  // what its stopped jobs need to finish
    std::size_t running = 0;
    std::optional<OtherBuilds::Waiting> oldest_waiting;
};

class Governor {
public:
    explicit Governor(GovernorSettings settings) : settings_(settings), curve_later_(settings.curve_later) {}

    // A job stopped at exec.
    void job_waiting(pid_t job, Reservation expected, Clock::time_point now);
    // A waiting job's prediction changed (its peers taught the predictor more meanwhile).
    void job_expected(pid_t job, Reservation expected);
    // A waiting job that is not to start before `until`, however much room there is (its
    // identity may still come: a compile whose source is on its way to its pipe); it blocks
    // no other job meanwhile. `until` in the past lifts it.
    void defer_until(pid_t job, Clock::time_point until);
    // A running (or stopped) job guessed from its peers may turn out as large as this: a peer
    // ended larger than any before. Its ceiling only rises.
    void job_may_reach(pid_t job, std::uint64_t ceiling_bytes);
    // A job that was never held (gate off, or started under the grant) but runs.
    void job_running(pid_t job, Reservation expected, Clock::time_point now);
    // A running job that cannot be stopped (it runs as a user the build's owner may not
    // signal): the net passes it over.
    void job_unstoppable(pid_t job);
    // An emergency_stop the tracker could not carry out: the job runs on, and the net passes
    // it over from now on (the next decide finds what else to stop).
    void stop_not_carried_out(pid_t job);
    // Current use of a running job, from the tracker, read at `now` (its growth rate is
    // measured between two readings).
    void job_used(pid_t job, std::uint64_t current_bytes, std::uint64_t peak_bytes, Clock::time_point now);
    // The job's root exited, whether it was waiting, running or stopped.
    void job_exited(pid_t job, Clock::time_point now);

    // What other builds governed on the same memory hold and wait for, from now on (none
    // until told). Admission leaves them what they are about to take and keep; a job of
    // theirs that has waited a backfill window longer than one of ours goes first; the net
    // counts their near growth; and only the host's last running job is kept running.
    void other_builds(OtherBuilds others) { others_ = std::move(others); }

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
    BuildShare share(Clock::time_point now) const;
    // Every job, running (and stopped) ones in admission order, then waiting ones oldest first.
    std::vector<JobView> jobs() const;
    // How much longer than their curves' durations jobs are assumed to run, as calibrated.
    double curve_later() const { return curve_later_; }
    std::vector<pid_t> running_jobs() const;
    std::vector<pid_t> waiting_jobs() const { return {queue_.begin(), queue_.end()}; }
    // How long a job has waited so far (admitted jobs: until admission).
    std::optional<Clock::duration> waited(pid_t job, Clock::time_point now) const;

private:
    struct Job {
        std::uint64_t predicted_bytes = 0;  // predicted peak, raised by re-predictions
        std::uint64_t guessed_bytes = 0;    // the prediction it started with (guesses: see repredict)
        std::uint64_t reserved_bytes = 0;   // the prediction, raised by what it really used
        std::uint64_t current_bytes = 0;
        std::optional<GrowthCurve> curve;
        bool measured = false;  // see Reservation
        // A measured job that has reached its peak in this run: what it still holds is all it
        // takes (a compile past cc1plus, in its assembler, does not grow back to its peak).
        bool peaked = false;
        std::uint64_t ceiling_bytes = 0;  // see Reservation
        std::optional<Clock::time_point> read_at;
        // When it reached its peak along its curve: the reading before the one that showed it
        // there, as a curve dates its rises (GrowthRecorder).
        std::optional<Clock::time_point> curve_peak_at;
        double growth_bytes_per_ms = 0;   // between its last two readings
        Clock::time_point steady_from{};  // the reading the steady rate is measured from
        std::uint64_t steady_from_bytes = 0;
        double steady_growth_bytes_per_ms = 0;  // over the last steady_window or more
        std::uint32_t readings = 0;
        Clock::time_point queued_at{};
        Clock::time_point deferred_until{};  // see defer_until()
        Clock::time_point admitted_at{};
        bool refused_once = false;
        bool emergency_stopped = false;
        bool stoppable = true;
    };

    // The running jobs' expected use beyond their current use, over the time ahead; with
    // `planned`, one more job as if it started `start_ms` from now.
    struct Planned {
        const Job* job;
        double start_ms;
    };
    // Emergency-stopped jobs neither grow nor end, so they add nothing to it: the memory
    // they hold is in use already, and stays in use.
    Outlook outlook(Clock::time_point now, std::optional<Planned> planned = std::nullopt) const;
    // Whether a job started `start_ms` from now keeps the outlook within `available_bytes`
    // (less kept_free_bytes) while it is expected to use memory.
    bool fits_from(const Job& job, double start_ms, const Outlook& running, std::int64_t available_bytes) const;
    // The first instant ahead from which a job would fit (nullopt: not while the outlook lasts).
    std::optional<double> earliest_start(const Job& job, const Outlook& running, std::int64_t available_bytes) const;
    // A job's expected use `ahead_ms` from now beyond its current use (negative: it ended);
    // `age_ms` < 0 plans a start that far ahead.
    std::int64_t extra_use(const Job& job, double age_ms, double ahead_ms) const;
    // extra_use as steps: (instant ahead, value from then on), the first at 0.
    std::vector<std::pair<double, std::int64_t>> steps(const Job& job, double age_ms) const;
    double curve_end_ms(const GrowthCurve& curve) const;
    // A running job's age along its curve: its wall age, but no later than the first step
    // its current use has not reached.
    double curve_age_ms(const Job& job, Clock::time_point now) const;
    // A job expected as `expected`, queued (or started) at `queued_at`.
    static Job expecting(Reservation expected, Clock::time_point queued_at);
    std::uint64_t imminent_bytes() const;
    // What the job is still expected to take beyond what it holds.
    std::uint64_t still_to_take(const Job& job) const;
    // How much larger than reserved a job may yet turn out: a guess may be as large as its
    // largest peer (its ceiling); a measured peak is what the job needs.
    std::uint64_t surprise(const Job& job) const;
    // Room kept for one surprise: the largest of the running jobs' and `candidate`'s. One is
    // enough: a surprise found out is re-predicted, and its reservation then covers it.
    std::uint64_t surprise_room(const Job* candidate) const;
    // What a stopped job still needs to finish: its remaining growth; a guessed job, stopped
    // for its growth, may be as large as its largest peer.
    std::uint64_t need_to_finish(const Job& job) const;
    std::size_t active_count() const;  // running and not emergency-stopped
    void repredict(pid_t pid, Job& job, std::uint64_t peak_bytes);
    // The emergency net: stops running jobs when memory is below the floor, or when their
    // remaining growth (along their curves, or to their predicted peaks) exceeds what is
    // available, so that the others can finish; resumes them when they fit again.
    void emergency(std::uint64_t available_bytes, Clock::time_point now, std::vector<Decision>& decisions);
    void stop(pid_t pid, std::uint64_t available_bytes, std::int64_t need, bool below_floor,
              std::vector<Decision>& decisions);
    // The running jobs' largest expected use beyond their current use, within net_horizon.
    std::int64_t remaining_need(Clock::time_point now) const;
    bool any_emergency_stopped() const;
    // Whether a running job is still taking memory: by its growth rates once it has them.
    // A job at a plateau below its guess is most likely at its peak: stopping it saves
    // nothing and keeps its memory from being freed soon.
    bool growing(const Job& job) const;
    void admit_waiting(std::uint64_t available_bytes, Clock::time_point now, std::vector<Decision>& decisions);
    // What other builds' waiting jobs are owed before `job` may take memory: those that
    // were queued before it and have waited a backfill window (the same rule as inside
    // one build: after the window, an older job blocks the queue until it fits).
    std::uint64_t owed_to_other_builds(const Job& job, Clock::time_point now) const;
    // Whether another build's job has waited longer than `job`.
    bool older_waiting_elsewhere(const Job& job) const;
    // When `job` counts as queued among the other builds' jobs (queue_offset).
    Clock::time_point queued_among_builds(const Job& job) const { return job.queued_at + settings_.queue_offset; }
    // Whether nothing runs anywhere on the host, nor may start unseen: another build's kernel
    // grant can start jobs before that build hears of them. (Their room for a surprise does
    // not count: a build whose guessed jobs are all stopped keeps it, and two such builds
    // would then wait for each other forever.)
    bool host_idle() const { return active_count() == 0 && others_.running == 0 && others_.granted_bytes == 0; }
    Decision admit(pid_t job, std::int64_t effective_free, Clock::time_point now);

    GovernorSettings settings_;
    OtherBuilds others_;
    std::deque<pid_t> queue_;  // waiting, oldest first
    std::map<pid_t, Job> waiting_;
    std::map<pid_t, Job> running_;        // includes emergency-stopped jobs
    std::vector<pid_t> admission_order_;  // running jobs, oldest admission first
    std::deque<double> run_time_ratios_;  // recent jobs' run time ÷ their curve's duration
    double curve_later_ = 1;              // from run_time_ratios_ (or the setting)
    Clock::time_point last_progress_{};
    bool progressed_ = true;               // since the last decide()
    std::vector<Decision> repredictions_;  // since the last decide()
};

}  // namespace memgov
