#include "build_controller.h"

#include <sys/wait.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "bytes.h"
#include "decision_text.h"
#include "job_key.h"

namespace memgov {
namespace {

using namespace std::chrono_literals;

constexpr auto tight_reading = 20ms;
constexpr auto relaxed_reading = 100ms;
constexpr auto sample_tick = 20ms;
constexpr auto sample_cost_per_job = 1ms;
constexpr auto idle_tick = relaxed_reading;  // keeps a reading the gate's fast path can use
constexpr auto store_save_interval = 10s;
// The ledger's lock is held for one decision (microseconds); longer means a stuck or
// hostile holder, and deciding without it beats waiting for it.
constexpr auto ledger_patience = 200ms;
// `memgov status` shows jobs once a second: the list need not be written more often.
constexpr auto ledger_jobs_interval = 500ms;
// PSI moves slowly and costs three file reads.
constexpr auto trace_pressure_interval = 500ms;

std::uint32_t milliseconds_since(Clock::time_point start, Clock::time_point now) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - start).count();
    return static_cast<std::uint32_t>(std::clamp<std::int64_t>(ms, 0, UINT32_MAX));
}

// The tracker's timestamps are CLOCK_MONOTONIC nanoseconds, as is Clock (steady_clock) on Linux.
std::uint64_t monotonic_ns_at(Clock::time_point when) {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(when.time_since_epoch()).count());
}

Reservation reservation_of(const Prediction& prediction) {
    return {prediction.bytes, prediction.curve, prediction.source == PredictionSource::profile,
            prediction.ceiling_bytes};
}

}  // namespace

std::chrono::milliseconds reading_interval(const GovernorView& view, std::uint64_t available_bytes,
                                           std::uint64_t emergency_floor_bytes) {
    bool tight = view.waiting > 0 || view.emergency_stopped > 0 ||
                 available_bytes < 4 * emergency_floor_bytes + view.imminent_bytes;
    return tight ? tight_reading : relaxed_reading;
}

std::chrono::milliseconds tick_interval(const GovernorView& view, std::chrono::milliseconds reading) {
    if (view.running + view.waiting == 0) return idle_tick;
    return std::min(
        std::max<std::chrono::milliseconds>(sample_tick, sample_cost_per_job * static_cast<int>(view.running)),
        reading);
}

BuildController::BuildController(ControllerSettings settings, Wiring wiring)
    : settings_(std::move(settings)),
      tracker_(wiring.tracker),
      store_(wiring.store),
      log_(wiring.log),
      environment_(std::move(wiring.environment)),
      files_owner_(std::move(wiring.files_owner)),
      ledger_(wiring.ledger),
      trace_(wiring.trace),
      read_pressure_(std::move(wiring.read_pressure)),
      governor_(settings_.governor),
      predictor_(settings_.cold_estimate),
      report_(wiring.detailed_report),
      last_save_(environment_.now()) {
    if (!environment_.now || !environment_.read_memory || !environment_.process_cwd || !environment_.file_head ||
        !environment_.wall_time)
        throw std::logic_error("BuildController: every function of ControllerEnvironment must be set");
    for (const auto& [key, profile] : store_.profiles()) predictor_.learn(key, profile);
}

void BuildController::handle(const TrackerEvent& event) {
    std::visit([this](const auto& e) { on(e); }, event);
}

void BuildController::tick() {
    find_pending_keys();  // file reads: outside the turn
    {
        auto turn = take_turn();  // held for the decision only: the store's fsync comes after
        if (environment_.now() - read_at_ >= reading_interval())
            refresh();
        else
            sample_jobs(false);
        decide();
        regrant();
        publish();
    }
    save_store_if_due(environment_.now());
}

// An icecream worker's compiler is exec'd before the source reaches its pipe; while it waits
// at the gate the pipe fills, and its line markers name the source. Only while it waits: once
// it runs, its compiler reads the pipe, and what is left there starts anywhere (a header's
// marker, or none): it stays pending, never learned.
void BuildController::find_pending_keys() {
    auto waiting = governor_.waiting_jobs();
    for (pid_t pid : waiting) {
        auto it = jobs_.find(pid);
        if (it == jobs_.end() || it->second.source != JobInfo::Source::awaited) continue;
        JobInfo& info = it->second;
        std::string head = stdin_head(pid);
        if (head.empty()) continue;
        // Something came: the source it names, or nothing that ever will.
        info.source = JobInfo::Source::unnamed;
        if (auto origin = preprocessed_origin(head)) {
            log_.write(LogCategory::predict, "PID={} {}: its standard input names {}", pid, info.key, *origin);
            info.key = *origin;
            info.source = JobInfo::Source::named;
            report_.on_key_found(pid, info.key);
        }
        info.prediction = predictor_.predict(info.key, info.tool, info.role);
        governor_.job_expected(pid, reservation_of(info.prediction));
        governor_.defer_until(pid, {});
    }
}

std::string BuildController::stdin_head(pid_t job) const {
    return environment_.file_head(fmt::format("/proc/{}/fd/0", job));
}

std::optional<LedgerTurn> BuildController::take_turn() {
    if (!ledger_) return std::nullopt;
    auto turn = ledger_->take_turn(ledger_patience);
    if (!turn && !ledger_busy_said_) {
        ledger_busy_said_ = true;
        log_.write(LogCategory::memory, "host ledger {}: its lock was held over {} ms, deciding without it (once said)",
                   ledger_->where(), ledger_patience.count());
    }
    turn_entries_ = progress_.rest_idle(ledger_->others(), environment_.now(), settings_.governor.stall_timeout);
    // Another build's jobs may have grown since our reading: decide on a fresh one.
    if (!turn_entries_.empty() && environment_.now() - read_at_ > tight_reading) refresh();
    return turn;
}

std::uint64_t BuildController::governed_available() {
    if (!ledger_) return availability_.bytes;
    auto now = environment_.now();
    OtherBuilds others = competing(turn_entries_, availability_.bound_cgroup, now);
    std::uint64_t available = availability_.bytes;
    if (availability_.bound_cgroup) {
        // The builds in memgov's cgroup compete for its room, and every build on the host for
        // the machine's memory: whichever leaves less decides.
        OtherBuilds everyone = competing(turn_entries_, std::nullopt, now);
        auto left = [](std::uint64_t bytes, const OtherBuilds& them) {
            return static_cast<std::int64_t>(bytes) - static_cast<std::int64_t>(them.held_for_them_bytes());
        };
        if (left(machine_available_, everyone) < left(available, others)) {
            others = std::move(everyone);
            available = machine_available_;
        }
    }
    governor_.other_builds(std::move(others));
    return available;
}

void BuildController::publish() {
    if (!ledger_) return;
    auto now = environment_.now();
    auto view = governor_.view();
    LedgerState state{.published_at = now,
                      .share = governor_.share(now),
                      .grant_bytes = grant_bytes_,
                      .build_bytes = tracker_.totals().rss_bytes,
                      .waiting = view.waiting,
                      .stopped = view.emergency_stopped,
                      .jobs_waited = totals_.jobs_waited,
                      .seconds_waited = totals_.seconds_waited,
                      .emergency_stops = totals_.emergency_stops};
    auto tracked = tracker_.totals();
    state.oom_kills = tracked.oom_kills;
    state.events_dropped = tracked.events_dropped;
    if (now - jobs_published_at_ >= ledger_jobs_interval) {
        jobs_published_at_ = now;
        state.jobs.emplace();
        for (const JobView& job : governor_.jobs()) {
            if (state.jobs->size() == max_ledger_jobs) break;
            auto it = jobs_.find(job.job);
            state.jobs->push_back({job, it == jobs_.end() ? std::string() : it->second.key});
        }
    }
    ledger_->publish(state);
}

void BuildController::refresh() {
    sample_jobs(true);
    read_memory();
}

void BuildController::sample_jobs(bool with_reading) {
    auto now = environment_.now();
    for (pid_t job : governor_.running_jobs()) {
        if (auto usage = tracker_.job_usage(job)) {
            if (with_reading) governor_.job_used(job, usage->rss_bytes, usage->peak_bytes, now);
            auto it = jobs_.find(job);
            if (it == jobs_.end()) continue;
            JobInfo& info = it->second;
            // Among its peers a running job counts at what it is expected to reach: its own
            // profile's peak, or what it has shown (its peak so far, or a re-prediction once it
            // outgrew, or was projected to outgrow, its guess), never at a guess that came from
            // those same peers. Counted at its guess, every job started on the fallback kept the
            // next ones at the fallback until it ended (memstorm, cold: two jobs at a time for
            // the first 7 s).
            bool measured = info.prediction.source == PredictionSource::profile;
            predictor_.observe_running(
                info.key, info.tool, info.role,
                measured || info.repredicted ? std::max(usage->peak_bytes, info.prediction.bytes) : usage->peak_bytes,
                measured);
            if (info.started_at) info.growth.observe(run_age_ms(info, now), usage->peak_bytes);
        } else {
            forget_vanished(job);
        }
    }
    for (pid_t job : governor_.waiting_jobs())
        if (!tracker_.job_usage(job)) {
            // Should it be there after all (a tracker that answered from an old reading), it
            // must not stay held at the gate once forgotten.
            tracker_.resume(job);
            forget_vanished(job);
        }
}

void BuildController::read_memory() {
    MemoryReading reading = environment_.read_memory();
    availability_ = available_for_build(reading, settings_.budget, tracker_.totals().rss_bytes);
    machine_available_ = reading.available_bytes > settings_.budget.headroom_bytes
                             ? reading.available_bytes - settings_.budget.headroom_bytes
                             : 0;
    read_at_ = environment_.now();
    if (trace_) trace_reading();
}

void BuildController::trace_reading() {
    auto totals = tracker_.totals();
    if (totals.events_dropped > dropped_traced_) {
        trace_->events_dropped(totals.events_dropped - dropped_traced_, read_at_);
        dropped_traced_ = totals.events_dropped;
    }
    std::map<pid_t, std::uint64_t> job_rss;
    for (const JobView& job : governor_.jobs())
        if (job.state != JobView::State::waiting) job_rss[job.job] = job.current_bytes;
    std::optional<Pressure> pressure;
    if (read_pressure_ && read_at_ - pressure_read_at_ >= trace_pressure_interval) {
        pressure_read_at_ = read_at_;
        pressure = read_pressure_();
    }
    trace_->memory(
        read_at_,
        {.build_bytes = totals.rss_bytes,
         .other_bytes = availability_.in_use > totals.rss_bytes ? availability_.in_use - totals.rss_bytes : 0,
         .imminent_bytes = governor_.view().imminent_bytes,
         .available_bytes = availability_.bytes,
         .limit_bytes = availability_.ceiling},
        job_rss, pressure);
}

void BuildController::trace_decision(const Decision& decision, Clock::time_point now) {
    nlohmann::json why{{"needed_mib", mib(decision.needed_bytes)},
                       {"free_mib", decision.effective_free_bytes >= 0
                                        ? mib(static_cast<std::uint64_t>(decision.effective_free_bytes))
                                        : -mib(static_cast<std::uint64_t>(-decision.effective_free_bytes))},
                       {"imminent_mib", mib(decision.imminent_bytes)}};
    switch (decision.kind) {
        case DecisionKind::admit:
            why["waited_s"] =
                std::chrono::duration<double>(governor_.waited(decision.job, now).value_or(Clock::duration{})).count();
            for (auto [flag, name] : {std::pair{decision.forced, "forced"},
                                      {decision.backfill, "backfill"},
                                      {decision.on_curve, "on_curve"},
                                      {decision.stalled, "stalled"}})
                if (flag) why[name] = true;
            if (decision.surprise_bytes) why["surprise_mib"] = mib(decision.surprise_bytes);
            trace_->job_admitted(decision.job, now, why);
            break;
        case DecisionKind::keep_waiting: trace_->job_note(decision.job, "does not fit", now, why); break;
        case DecisionKind::emergency_stop:
            why["current_mib"] = mib(decision.current_bytes);
            why["below_floor"] = decision.below_floor;
            trace_->job_stopped(decision.job, now, why);
            break;
        case DecisionKind::emergency_resume: trace_->job_resumed(decision.job, now, why); break;
        case DecisionKind::repredict:
            why["previous_mib"] = mib(decision.previous_bytes);
            why["current_mib"] = mib(decision.current_bytes);
            trace_->job_note(decision.job, "re-predicted", now, why);
            break;
    }
}

void BuildController::decide() {
    if (!settings_.gate || draining_) return;
    auto now = environment_.now();
    for (const auto& decision : governor_.decide(governed_available(), now)) apply(decision, now);
}

void BuildController::interrupt(int signo) {
    draining_ = true;
    tracker_.take_back_grant();
    for (pid_t job : governor_.release_all(environment_.now())) {
        tracker_.resume_job(job);
        // Released to handle a signal: whatever it does next says nothing of its next run.
        if (auto it = jobs_.find(job); it != jobs_.end()) it->second.suspended = true;
        if (trace_) trace_->job_admitted(job, environment_.now(), {{"released", strsignal(signo)}});
        if (trace_) trace_->job_resumed(job, environment_.now(), {{"released", strsignal(signo)}});
        log_.write(LogCategory::signal, "PID={} released so it can handle {}", job, strsignal(signo));
    }
}

BarStatus BuildController::bar_status() {
    auto totals = tracker_.totals();
    auto view = governor_.view();
    return BarStatus{
        .ceiling_bytes = availability_.ceiling,
        .build_bytes = totals.rss_bytes,
        .other_bytes = availability_.in_use > totals.rss_bytes ? availability_.in_use - totals.rss_bytes : 0,
        .imminent_bytes = view.imminent_bytes,
        .available_bytes = availability_.bytes,
        .running = view.running - view.emergency_stopped,
        .waiting = view.waiting,
        .stopped = view.emergency_stopped,
        .procs = totals.procs_live,
        .frame = bar_frame_++,
    };
}

std::chrono::milliseconds BuildController::tick_interval() const {
    return memgov::tick_interval(governor_.view(), reading_interval());
}

std::chrono::milliseconds BuildController::reading_interval() const {
    return memgov::reading_interval(governor_.view(), availability_.bytes, settings_.governor.emergency_floor_bytes);
}

void BuildController::finish() {
    if (settings_.governor.follow_growth_curves)
        log_.write(LogCategory::memory,
                   "growth curves: jobs are expected to run up to {:.2f}x their learned "
                   "run time (measured on this build's last jobs)",
                   governor_.curve_later());
    FilesystemIdentity as_user(files_owner_);
    if (!store_.save()) log_.write(LogCategory::memory, "profile store not saved");
}

void BuildController::build_was_suspended() {
    governor_.jobs_interrupted();
    for (pid_t job : governor_.running_jobs())
        if (auto it = jobs_.find(job); it != jobs_.end()) it->second.suspended = true;
}

std::uint32_t BuildController::run_age_ms(const JobInfo& info, Clock::time_point now) {
    Clock::duration stopped = info.time_stopped + (info.stopped_at ? now - *info.stopped_at : Clock::duration{});
    return milliseconds_since(*info.started_at + stopped, now);
}

// Relative paths in argv name files in the process's working directory. A job the kernel
// started under a grant may have exited before its exec is handled; its parent (make, or the
// shell that ran it) shares its directory unless the command changed it, which is rarer than
// a short job, and a key under "/" would be learned for a file that does not exist.
std::string BuildController::working_directory(const ExecEvent& event) const {
    std::string cwd = environment_.process_cwd(event.pid);
    if (cwd.empty() && event.ppid > 0) cwd = environment_.process_cwd(event.ppid);
    return cwd;
}

void BuildController::on(const ExecEvent& event) {
    auto handled = environment_.now();
    // "-": the job's standard input (an icecream worker pipes the source to its compiler).
    auto head_of = [&](const std::string& path) {
        return path == "-" ? stdin_head(event.pid) : environment_.file_head(path);
    };
    JobKey key = event.job_root ? job_key(event.argv, working_directory(event), head_of) : JobKey{};
    auto turn = event.job_root ? take_turn() : std::nullopt;  // after the file reads the key needed
    report_.on_exec(event, key, monotonic_ns_at(handled));
    // The gate's fast paths: with room for the largest job known (and nobody queued
    // before it), which job this is does not matter. The kernel may have started it
    // already (a grant, see regrant()); otherwise it is continued here, before it is
    // identified and predicted. The reading may be a reading interval old (20 ms when
    // memory is tight): the emergency floor on top covers what can change meanwhile.
    if (event.granted) {
        ++granted_seen_;
        report_.on_admitted(event.pid, event.timestamp_ns, false);
    }
    // A compile whose source is still on its way to its pipe (JobKey::pending) waits until the
    // pipe names it (read every tick), or pending_key_patience: a key the next build knows.
    bool key_pending = key.pending;
    bool admitted_at_once = event.job_root && event.waiting && !draining_ && !key_pending &&
                            environment_.now() - read_at_ <= reading_interval() &&
                            governor_.startable_at_once(predictor_.largest(), settings_.governor.emergency_floor_bytes,
                                                        take_back_grant(), governed_available()) > 0;
    if (admitted_at_once) {
        // Stamped before the signal: the woken job may run before we do again.
        auto continued = environment_.now();
        tracker_.resume(event.pid);
        report_.on_admitted(event.pid, monotonic_ns_at(continued), false);
    }
    std::uint64_t imminent_before = admitted_at_once || event.granted ? governor_.view().imminent_bytes : 0;
    auto exec_at = Clock::time_point(std::chrono::nanoseconds(event.timestamp_ns));
    if (trace_) trace_->process_exec(event.pid, event.argv, exec_at);
    if (log_.enabled(LogCategory::debug))
        log_.write(LogCategory::debug, "exec PID={} PPID={} job={} {}{}", event.pid, event.ppid, event.job,
                   joined(event.argv), event.argv_truncated ? " …(argv truncated)" : "");
    if (!event.job_root) return;
    if (event.other_user)
        log_.write(LogCategory::signal, "PID={} runs as another user (a setuid step): it cannot be held, only measured",
                   event.pid);
    JobInfo info{.key = std::move(key.key),
                 .tool = basename_of(event.filename),
                 .role = key.kind,
                 .source = key.pending ? JobInfo::Source::awaited : JobInfo::Source::named};
    info.prediction = predictor_.predict(info.key, info.tool, info.role);
    log_.write(LogCategory::debug, "New job PID={} {} ({} {}), predicted peak {} ({})", event.pid, info.key, info.tool,
               kind_name(info.role), format_mb(info.prediction.bytes), describe(info.prediction.source));
    if (event.waiting && draining_) tracker_.resume(event.pid);
    if (trace_) trace_->job_started(event.pid, info.key, event.waiting && !draining_ && !admitted_at_once, exec_at);
    if (event.waiting && !draining_ && !admitted_at_once) {
        governor_.job_waiting(event.pid, reservation_of(info.prediction), environment_.now());
        if (key_pending) governor_.defer_until(event.pid, environment_.now() + pending_key_patience);
    } else {
        // A granted job started at its exec (the tracker's clock is CLOCK_MONOTONIC, as is ours).
        auto started =
            event.granted ? Clock::time_point(std::chrono::nanoseconds(event.timestamp_ns)) : environment_.now();
        governor_.job_running(event.pid, reservation_of(info.prediction), started);
        if (event.other_user) governor_.job_unstoppable(event.pid);
        info.started_at = started;
    }
    if (admitted_at_once || event.granted) {
        log_.verdict(Verdict::ok, "PID={} {}: needs {}, have {} free ({} imminent) - OK", event.pid, info.key,
                     format_mb(info.prediction.bytes),
                     format_mb(availability_.bytes > imminent_before ? availability_.bytes - imminent_before : 0),
                     format_mb(imminent_before));
        log_reserved(event.pid, info.key, info.prediction.bytes);
    }
    jobs_[event.pid] = std::move(info);
    if (event.waiting && !admitted_at_once && !key_pending) {
        // Admit at once when it fits. A reading younger than a tight tick is as good as a
        // new one (what was admitted since counts as imminent), and costs no file reads.
        if (environment_.now() - read_at_ > tight_reading) refresh();
        decide();
    }
    regrant();
    publish();
}

std::uint64_t BuildController::take_back_grant() {
    std::uint64_t spent = tracker_.take_back_grant();
    return spent > granted_seen_ ? spent - granted_seen_ : 0;
}

// Lets the kernel start, without stopping them, as many gated jobs as there is room for
// by the peak rule, each counted as the largest job known plus the emergency floor as a
// margin for a reading up to a reading interval old. None while jobs wait or are stopped.
void BuildController::regrant() {
    std::uint64_t unannounced = take_back_grant();
    grant_bytes_ = 0;
    if (!settings_.gate || settings_.always_stop || draining_ || environment_.now() - read_at_ > reading_interval())
        return;
    std::uint64_t starts = governor_.startable_at_once(predictor_.largest(), settings_.governor.emergency_floor_bytes,
                                                       unannounced, governed_available());
    tracker_.grant(static_cast<std::int64_t>(starts));
    grant_bytes_ = starts * predictor_.largest();
}

void BuildController::on(const ExitEvent& event) {
    report_.on_exit(event);
    auto exit_at = Clock::time_point(std::chrono::nanoseconds(event.timestamp_ns));
    if (trace_) trace_->process_exit(event.pid, exit_at, event.peak_rss_bytes, event.costs);
    if (trace_ && event.pid == event.job) {
        const JobRecord* record = report_.job(event.job);  // its processes' costs, this one's included
        trace_->job_ended(event.job, exit_at, event.job_peak_bytes, event.wait_status,
                          record ? record->costs : event.costs);
    }
    if (event.pid != event.job) return;
    auto it = jobs_.find(event.job);
    if (it == jobs_.end()) return;
    const JobInfo& info = it->second;
    auto now = environment_.now();
    // Only a successful job shows what the file needs; a failed one (a syntax error
    // stops early, a kill stops anywhere) can only raise what is known.
    bool complete = WIFEXITED(event.wait_status) && WEXITSTATUS(event.wait_status) == 0 && !info.oom_killed;
    std::uint64_t old_peak = store_.profiles().contains(info.key) ? store_.profiles().at(info.key).peak_bytes : 0;
    Observation seen{.tool = info.tool, .role = info.role, .peak_bytes = event.job_peak_bytes, .complete = complete};
    if (info.started_at && !info.suspended)
        seen.curve = info.growth.finish(milliseconds_since(*info.started_at, now), event.job_peak_bytes);
    bool learned = info.source == JobInfo::Source::named;
    if (!learned) {
        // Its pipe never showed what it compiled (its compiler read it first): its key, how it
        // compiles, is every such job's, and would teach them one peak.
        log_.write(LogCategory::memory, "PID={} job exited, peak {}: its source was never named, nothing learned",
                   event.pid, format_mb(event.job_peak_bytes));
    } else {
        store_.record(info.key, seen, environment_.wall_time());
        predictor_.learn(info.key, store_.profiles().at(info.key));
        log_.write(LogCategory::memory, "PID={} job exited, final peak for {}: {} -> {}{}", event.pid, info.key,
                   format_mb(old_peak), format_mb(event.job_peak_bytes),
                   complete ? "" : " (did not finish: kept as a lower bound)");
    }
    if (governor_.waited(event.job, now))
        log_.write(LogCategory::memory, "Released {} reservation for {} (job completed) (PID={})",
                   format_mb(std::max(info.prediction.bytes, event.job_peak_bytes)), info.key, event.pid);
    governor_.job_exited(event.job, now);
    jobs_.erase(it);
    if (learned) repredict_guesses();
}

// Jobs guessed from their peers are guessed again from what the build now knows: the first
// jobs wait at --cold-estimate only until a peer has ended; a running one may now be as
// large as its largest peer (which counts while it is stopped, and in the room kept for a
// surprise). Two cold builds of two 600 MB jobs each in 1100 MiB: one's 600 MB job,
// stopped at 307 MB with its guess at 512, showed the other build 205 MB to finish, not the
// 296 its ended twin said; the other started a job into it, and that one was OOM-killed.
void BuildController::repredict_guesses() {
    for (pid_t pid : governor_.running_jobs()) {
        auto it = jobs_.find(pid);
        if (it == jobs_.end() || it->second.prediction.source == PredictionSource::profile) continue;
        JobInfo& info = it->second;
        Prediction now = predictor_.predict(info.key, info.tool, info.role);
        std::uint64_t ceiling = std::max(now.bytes, now.ceiling_bytes);
        if (ceiling <= info.prediction.ceiling_bytes) continue;
        log_.write(LogCategory::predict, "PID={} {}: running, guessed at {}: may need up to {}, as its peers show ({})",
                   pid, info.key, format_mb(info.prediction.bytes), format_mb(ceiling), describe(now.source));
        info.prediction.ceiling_bytes = ceiling;
        governor_.job_may_reach(pid, ceiling);
    }
    for (pid_t pid : governor_.waiting_jobs()) {
        auto it = jobs_.find(pid);
        if (it == jobs_.end() || it->second.prediction.source == PredictionSource::profile) continue;
        JobInfo& info = it->second;
        Prediction now = predictor_.predict(info.key, info.tool, info.role);
        if (now.bytes == info.prediction.bytes && now.source == info.prediction.source) continue;
        log_.write(LogCategory::predict, "PID={} {}: waiting, predicted again from its peers: {} -> {} ({})", pid,
                   info.key, format_mb(info.prediction.bytes), format_mb(now.bytes), describe(now.source));
        info.prediction = now;
        governor_.job_expected(pid, reservation_of(now));
    }
}

// The kernel dropped a job's last process, but its exit record has not come (or was
// lost): its reservation must not be held forever. What the controller knows of the job
// stays: the record is most often only late (the ring buffer is read between ticks), and
// the job's peak is still learned from it.
void BuildController::forget_vanished(pid_t job) {
    log_.write(LogCategory::memory, "PID={} job is gone (no exit record yet): released its reservation", job);
    governor_.job_exited(job, environment_.now());
    if (auto it = jobs_.find(job); it != jobs_.end()) predictor_.forget_running(it->second.key);
}

void BuildController::on(const OomKillEvent& event) {
    report_.on_oom_kill(event);
    // A job with a process killed anywhere in it shows only where the kernel stopped it,
    // whatever its own exit status.
    if (auto it = jobs_.find(event.job); it != jobs_.end()) it->second.oom_killed = true;
    if (trace_) {
        // What ran beside it: the question after every OOM kill.
        nlohmann::json beside = nlohmann::json::array();
        for (const JobView& job : governor_.jobs())
            if (auto it = jobs_.find(job.job); it != jobs_.end() && job.state != JobView::State::waiting)
                beside.push_back({{"job", job.job}, {"key", it->second.key}, {"mib", job.current_bytes >> 20}});
        auto victim_job = jobs_.find(event.job);
        trace_->oom_kill(event.pid, event.comm, Clock::time_point(std::chrono::nanoseconds(event.timestamp_ns)),
                         {{"job", event.job},
                          {"key", victim_job == jobs_.end() ? std::string() : victim_job->second.key},
                          {"rss_mib", event.rss_bytes >> 20},
                          {"peak_mib", event.peak_rss_bytes >> 20},
                          {"running", beside}});
    }
    log_.write(LogCategory::signal, "PID={} ({}) killed by the OOM killer at {} (peak {})", event.pid, event.comm,
               format_mb(event.rss_bytes), format_mb(event.peak_rss_bytes));
}

void BuildController::apply(const Decision& decision, Clock::time_point now) {
    auto it = jobs_.find(decision.job);
    DecisionFacts facts{.key = it == jobs_.end() ? std::to_string(decision.job) : it->second.key,
                        .available_bytes = availability_.bytes,
                        .emergency_floor_bytes = settings_.governor.emergency_floor_bytes,
                        .kept_free_bytes = settings_.governor.kept_free_bytes,
                        .stall_timeout = settings_.governor.stall_timeout};
    if (decision.kind == DecisionKind::emergency_stop && !tracker_.stop_job(decision.job)) {
        // Counted as stopped, it would neither grow nor end in the plans while it runs on.
        governor_.stop_not_carried_out(decision.job);
        if (trace_) trace_->job_note(decision.job, "stop not carried out", now, nullptr);
        log_.write(LogCategory::memory,
                   "EMERGENCY: could not stop PID={} {} (no process of it could be held and signalled): it runs on, "
                   "and the net passes it over from now on",
                   decision.job, facts.key);
        return;
    }
    if (trace_) trace_decision(decision, now);
    switch (decision.kind) {
        case DecisionKind::admit: {
            auto continued = environment_.now();  // stamped before the signal, as in on(ExecEvent)
            tracker_.resume(decision.job);
            if (it != jobs_.end()) it->second.started_at = now;
            bool held = decision.waited || decision.forced;
            report_.on_admitted(decision.job, monotonic_ns_at(continued), held);
            facts.waited_seconds =
                std::chrono::duration<double>(governor_.waited(decision.job, now).value_or(Clock::duration{})).count();
            if (held) {
                ++totals_.jobs_waited;
                totals_.seconds_waited += facts.waited_seconds;
            }
            log_.verdict(held ? Verdict::proceeding : Verdict::ok, "{}", decision_text(decision, facts));
            log_reserved(decision.job, facts.key, decision.needed_bytes);
            break;
        }
        case DecisionKind::keep_waiting: log_.verdict(Verdict::waiting, "{}", decision_text(decision, facts)); break;
        case DecisionKind::emergency_stop:  // carried out (above)
            ++totals_.emergency_stops;
            if (it != jobs_.end()) it->second.stopped_at = now;
            log_.write(LogCategory::memory, "{}", decision_text(decision, facts));
            break;
        case DecisionKind::repredict:
            ++totals_.repredictions;
            if (it != jobs_.end()) {
                it->second.prediction.bytes = decision.needed_bytes;
                it->second.repredicted = true;
            }
            log_.verdict(Verdict::waiting, "{}", decision_text(decision, facts));
            break;
        case DecisionKind::emergency_resume:
            tracker_.resume_job(decision.job);
            if (it != jobs_.end() && it->second.stopped_at) {
                it->second.time_stopped += now - *it->second.stopped_at;
                it->second.stopped_at.reset();
            }
            log_.write(LogCategory::memory, "{}", decision_text(decision, facts));
            break;
    }
}

void BuildController::log_reserved(pid_t job, const std::string& key, std::uint64_t needed_bytes) {
    auto view = governor_.view();
    log_.write(LogCategory::memory, "Reserved memory: {} -> {} (+{}) for {} (PID={})",
               format_mb(view.reserved_bytes - needed_bytes), format_mb(view.reserved_bytes), format_mb(needed_bytes),
               key, job);
}

void BuildController::save_store_if_due(Clock::time_point now) {
    if (!store_.dirty() || now - last_save_ < store_save_interval) return;
    last_save_ = now;
    FilesystemIdentity as_user(files_owner_);
    store_.save();
}

}  // namespace memgov
