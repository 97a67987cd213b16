#include "governor.h"

#include <algorithm>

namespace memgov {

Governor::Job Governor::expecting(Reservation expected, Clock::time_point queued_at) {
    return Job{.predicted_bytes = expected.peak_bytes,
               .guessed_bytes = expected.peak_bytes,
               .reserved_bytes = expected.peak_bytes,
               .curve = std::move(expected.curve),
               .measured = expected.measured,
               .ceiling_bytes = expected.ceiling_bytes,
               .queued_at = queued_at};
}

void Governor::job_waiting(pid_t job, Reservation expected, Clock::time_point now) {
    if (waiting_.contains(job) || running_.contains(job)) return;
    waiting_[job] = expecting(std::move(expected), now);
    queue_.push_back(job);
}

void Governor::job_expected(pid_t job, Reservation expected) {
    auto it = waiting_.find(job);
    if (it == waiting_.end()) return;
    Job updated = expecting(std::move(expected), it->second.queued_at);
    updated.refused_once = it->second.refused_once;
    updated.deferred_until = it->second.deferred_until;
    it->second = std::move(updated);
}

void Governor::job_may_reach(pid_t job, std::uint64_t ceiling_bytes) {
    if (auto it = running_.find(job); it != running_.end() && !it->second.measured)
        it->second.ceiling_bytes = std::max(it->second.ceiling_bytes, ceiling_bytes);
}

void Governor::defer_until(pid_t job, Clock::time_point until) {
    if (auto it = waiting_.find(job); it != waiting_.end()) it->second.deferred_until = until;
}

void Governor::job_running(pid_t job, Reservation expected, Clock::time_point now) {
    if (waiting_.contains(job) || running_.contains(job)) return;
    Job& started = running_[job] = expecting(std::move(expected), now);
    started.admitted_at = now;
    admission_order_.push_back(job);
}

void Governor::job_unstoppable(pid_t job) {
    if (auto it = running_.find(job); it != running_.end()) it->second.stoppable = false;
}

void Governor::stop_not_carried_out(pid_t job) {
    if (auto it = running_.find(job); it != running_.end()) {
        it->second.stoppable = false;
        it->second.emergency_stopped = false;
    }
}

void Governor::job_used(pid_t job, std::uint64_t current_bytes, std::uint64_t peak_bytes, Clock::time_point now) {
    auto it = running_.find(job);
    if (it == running_.end()) return;
    Job& running = it->second;
    if (running.current_bytes != current_bytes) progressed_ = true;
    auto rate = [&](Clock::time_point since, std::uint64_t since_bytes) {
        double elapsed_ms = std::chrono::duration<double, std::milli>(now - since).count();
        return current_bytes > since_bytes ? static_cast<double>(current_bytes - since_bytes) / elapsed_ms : 0;
    };
    // Within half a step of its peak: a run's peak moves by a few pages from the last one.
    if (running.curve && !running.curve_peak_at &&
        static_cast<double>(current_bytes) * GrowthCurve::steps >=
            static_cast<double>(running.reserved_bytes) * (GrowthCurve::steps - 0.5))
        running.curve_peak_at = running.read_at.value_or(now);
    if (running.read_at && now > *running.read_at) {
        running.growth_bytes_per_ms = rate(*running.read_at, running.current_bytes);
        if (now - running.steady_from >= settings_.steady_window) {
            running.steady_growth_bytes_per_ms = rate(running.steady_from, running.steady_from_bytes);
            running.steady_from = now;
            running.steady_from_bytes = current_bytes;
        }
    } else {
        running.steady_from = now;
        running.steady_from_bytes = current_bytes;
    }
    running.read_at = now;
    ++running.readings;
    running.current_bytes = current_bytes;
    if (!running.emergency_stopped) repredict(job, running, peak_bytes);
    running.reserved_bytes = std::max({running.reserved_bytes, running.predicted_bytes, peak_bytes});
    // Eigen's tests, warm in 2048 MB: compiles past their peak, in the assembler at a tenth
    // of it, were counted as about to take it all again, and the net stopped jobs for memory
    // nobody was going to take (6-8 stops a warm run).
    if (running.measured && static_cast<double>(peak_bytes) * (1 + settings_.measured_tolerance) >=
                                static_cast<double>(running.reserved_bytes))
        running.peaked = true;
}

void Governor::repredict(pid_t pid, Job& job, std::uint64_t peak_bytes) {
    auto ahead = [](double per_ms, std::chrono::milliseconds time) {
        return static_cast<std::uint64_t>(per_ms * static_cast<double>(time.count()));
    };
    std::uint64_t reached = std::max(peak_bytes, job.current_bytes);
    std::uint64_t projected = job.current_bytes + ahead(job.growth_bytes_per_ms, settings_.reaction_time);
    // As long again as it has grown so far, at most guess_lookahead; only while it still
    // grows: a job that took a late spike and holds it has a steep steady rate that says
    // nothing about what comes (robustness benchmark: a 127 MB job at its peak re-predicted
    // at 625 MB, stopped, and every unknown job guessed larger because of it).
    auto grown_for = std::chrono::duration_cast<std::chrono::milliseconds>(job.steady_from - job.admitted_at);
    std::uint64_t steady =
        job.growth_bytes_per_ms > 0
            ? job.current_bytes + ahead(job.steady_growth_bytes_per_ms, std::min(grown_for, settings_.guess_lookahead))
            : job.current_bytes;
    // A guess from peers is revised as soon as the job is about to pass it; a measured peak
    // only once the job has clearly passed it (its growth towards it is expected).
    bool passed = job.measured ? static_cast<double>(reached) >
                                     static_cast<double>(job.predicted_bytes) * (1 + settings_.measured_tolerance)
                               : std::max({reached, projected, steady}) > job.predicted_bytes;
    // A guess it has broken says nothing of how large it is: it may be as large as its
    // largest peer, and the plans count that at once, while the others are still small
    // enough to be stopped. Growing by the margin, two unknown giants guessed from small
    // peers were both found out only at 280 MB each, in 896 MB, too late for either to
    // finish beside the other (robustness benchmark, seed 3 at 1.3x). Only a guess that is
    // broken, or will be within reaction_time, though, not one the steady projection passes:
    // that passes a linear ramp's guess at half of it, and memstorm's jobs of 100-200 MB,
    // guessed at about 200 and never past it, were each counted at their largest peer, 600 MB,
    // from mid-ramp to their end (cold: 3-5 jobs running where 10 fit).
    bool broke_guess =
        !job.measured && std::max(reached, projected) > job.guessed_bytes && job.predicted_bytes < job.ceiling_bytes;
    if (!passed && !broke_guess) return;
    double margin = job.measured ? settings_.repredict_margin / 2 : settings_.repredict_margin;
    std::uint64_t previous = job.predicted_bytes;
    // The steady projection is one already: half the margin on it, so that a job growing
    // steadily is not re-predicted at every reading.
    job.predicted_bytes = std::max(
        previous, static_cast<std::uint64_t>(std::max(static_cast<double>(std::max(reached, projected)) * (1 + margin),
                                                      static_cast<double>(steady) * (1 + margin / 2))));
    if (broke_guess) job.predicted_bytes = std::max(job.predicted_bytes, job.ceiling_bytes);
    job.curve.reset();  // the job is not what its curve described
    job.peaked = false;
    Decision decision{DecisionKind::repredict, pid, job.predicted_bytes};
    decision.previous_bytes = previous;
    if (broke_guess) decision.broken_guess_bytes = job.guessed_bytes;
    decision.current_bytes = job.current_bytes;
    decision.growth_bytes_per_second = static_cast<std::uint64_t>(job.growth_bytes_per_ms * 1000);
    repredictions_.push_back(decision);
}

void Governor::job_exited(pid_t job, Clock::time_point now) {
    if (auto it = running_.find(job); it != running_.end()) {
        progressed_ = true;
        const Job& ended = it->second;
        // Short jobs say little: a 2 ms job taking 8 ms would make every job "4x late". A job
        // that was stopped or interrupted lost its curve then: its run time calibrates nothing.
        if (ended.curve && ended.curve->duration_ms >= settings_.min_calibration_ms) {
            run_time_ratios_.push_back(std::chrono::duration<double, std::milli>(now - ended.admitted_at).count() /
                                       ended.curve->duration_ms);
            if (run_time_ratios_.size() > settings_.calibration_jobs) run_time_ratios_.pop_front();
            if (run_time_ratios_.size() >= settings_.min_calibration_jobs)
                curve_later_ = std::max(1.0, *std::max_element(run_time_ratios_.begin(), run_time_ratios_.end()));
        }
    }
    waiting_.erase(job);
    running_.erase(job);
    std::erase(queue_, job);
    std::erase(admission_order_, job);
}

double Governor::curve_end_ms(const GrowthCurve& curve) const {
    return curve.duration_ms * curve_later_ + static_cast<double>(settings_.curve_end_margin.count());
}

std::int64_t Governor::extra_use(const Job& job, double age_ms, double ahead_ms) const {
    double age = age_ms + ahead_ms;
    if (age < 0) return 0;  // planned, not started yet
    auto current = static_cast<std::int64_t>(job.current_bytes);
    auto peak = current + static_cast<std::int64_t>(still_to_take(job));
    if (!settings_.follow_growth_curves || !job.curve) return peak - current;
    double end = curve_end_ms(*job.curve);
    if (age_ms >= end) return peak - current;  // overdue: no longer trusted to end soon
    if (age >= end) return -current;
    // Evaluated a microsecond late: at an instant steps() computed for this step, rounding
    // must not leave the step unreached (which would hide memory about to come).
    auto expected = static_cast<std::int64_t>(static_cast<double>(peak) *
                                              job.curve->share_at((age + 0.001) / settings_.curve_sooner));
    return std::max(expected, current) - current;
}

double Governor::curve_age_ms(const Job& job, Clock::time_point now) const {
    double age = std::chrono::duration<double, std::milli>(now - job.admitted_at).count();
    if (!settings_.follow_growth_curves || !job.curve || job.reserved_bytes == 0) return age;
    // A job sharing the CPU with more jobs than on the run its curve came from is behind its
    // curve in wall time. Counted at its wall age, it would seem about to take at once all
    // it was expected to have taken by now, and to end on the old schedule; so a job that
    // has not reached a step yet is taken to be no further along than that step. (A job
    // ahead of its curve keeps its wall age: its end is not assumed to come sooner.) At its
    // peak, it is as far along as the curve's peak and the time since: a job that got there
    // late ends late by as much, so its end does not jump nearer the moment it arrives
    // (memstorm, warm: a job that ran 1.137x its curve, behind on its ramp, was counted as
    // ending at once when it reached its peak; jobs started into its memory were stopped).
    if (job.curve_peak_at) {
        double since_peak = std::chrono::duration<double, std::milli>(now - *job.curve_peak_at).count();
        return std::min(age, job.curve->reach_ms.back() + since_peak);
    }
    auto reached = static_cast<std::size_t>(static_cast<double>(job.current_bytes) /
                                            static_cast<double>(job.reserved_bytes) * GrowthCurve::steps);
    if (reached >= GrowthCurve::steps) return age;
    return std::min(age, job.curve->reach_ms[reached] * settings_.curve_sooner);
}

std::vector<std::pair<double, std::int64_t>> Governor::steps(const Job& job, double age_ms) const {
    std::vector<double> instants{0.0};
    if (age_ms < 0) instants.push_back(-age_ms);
    if (settings_.follow_growth_curves && job.curve && age_ms < curve_end_ms(*job.curve)) {
        instants.push_back(curve_end_ms(*job.curve) - age_ms);
        for (std::uint32_t reach : job.curve->reach_ms)
            if (double ahead = reach * settings_.curve_sooner - age_ms; ahead > 0) instants.push_back(ahead);
    }
    std::sort(instants.begin(), instants.end());
    instants.erase(std::unique(instants.begin(), instants.end()), instants.end());
    std::vector<std::pair<double, std::int64_t>> result;
    for (double ahead : instants) result.emplace_back(ahead, extra_use(job, age_ms, ahead));
    return result;
}

Outlook Governor::outlook(Clock::time_point now, std::optional<Planned> planned) const {
    Outlook result;
    auto add = [&](const Job& job, double age_ms) {
        std::int64_t previous = 0;
        for (const auto& [ahead, value] : steps(job, age_ms)) {
            result.add(ahead, value - previous);
            previous = value;
        }
    };
    for (const auto& [pid, job] : running_)
        if (!job.emergency_stopped) add(job, curve_age_ms(job, now));
    if (planned) add(*planned->job, -planned->start_ms);
    result.build();
    return result;
}

bool Governor::fits_from(const Job& job, double start_ms, const Outlook& running, std::int64_t available_bytes) const {
    // While the job is expected to use memory, the running jobs' expected use plus its own
    // keeps kept_free_bytes of what is available now free.
    std::int64_t room = available_bytes - static_cast<std::int64_t>(settings_.kept_free_bytes);
    auto own = steps(job, -start_ms);
    for (std::size_t i = 0; i < own.size(); ++i) {
        auto [from, value] = own[i];
        double to = i + 1 < own.size() ? own[i + 1].first : Outlook::forever;
        if (value > 0 && value + running.max_over(from, to) > room) return false;
    }
    return true;
}

std::optional<double> Governor::earliest_start(const Job& job, const Outlook& running,
                                               std::int64_t available_bytes) const {
    // The running jobs' plan only changes at its instants, so one of them is the earliest.
    for (double ahead : running.instants())
        if (fits_from(job, ahead, running, available_bytes)) return ahead;
    return std::nullopt;
}

void Governor::jobs_interrupted() {
    for (auto& [pid, job] : running_) {
        job.curve.reset();  // its whole peak counts until it ends
    }
}

std::uint64_t Governor::still_to_take(const Job& job) const {
    return !job.peaked && job.reserved_bytes > job.current_bytes ? job.reserved_bytes - job.current_bytes : 0;
}

std::uint64_t Governor::imminent_bytes() const {
    std::uint64_t imminent = 0;
    for (const auto& [pid, job] : running_) imminent += still_to_take(job);
    return imminent;
}

std::uint64_t Governor::surprise(const Job& job) const {
    std::uint64_t expected = std::max(job.reserved_bytes, job.current_bytes);
    return !job.measured && job.ceiling_bytes > expected ? job.ceiling_bytes - expected : 0;
}

std::uint64_t Governor::surprise_room(const Job* candidate) const {
    std::uint64_t room = candidate ? surprise(*candidate) : 0;
    for (const auto& [pid, job] : running_) room = std::max(room, surprise(job));
    return room;
}

std::uint64_t Governor::need_to_finish(const Job& job) const {
    if (job.measured) return still_to_take(job);
    std::uint64_t expected = std::max(job.reserved_bytes, job.ceiling_bytes);
    return expected > job.current_bytes ? expected - job.current_bytes : 0;
}

bool Governor::growing(const Job& job) const {
    if (job.readings < 2) return job.reserved_bytes > job.current_bytes;
    return job.growth_bytes_per_ms > 0 || job.steady_growth_bytes_per_ms > 0;
}

bool Governor::any_emergency_stopped() const {
    return std::any_of(running_.begin(), running_.end(),
                       [](const auto& entry) { return entry.second.emergency_stopped; });
}

std::size_t Governor::active_count() const {
    return static_cast<std::size_t>(std::count_if(running_.begin(), running_.end(),
                                                  [](const auto& entry) { return !entry.second.emergency_stopped; }));
}

GovernorView Governor::view() const {
    GovernorView view;
    view.waiting = waiting_.size();
    view.running = running_.size();
    for (const auto& [pid, job] : running_) {
        view.emergency_stopped += job.emergency_stopped;
        view.reserved_bytes += job.reserved_bytes;
        view.jobs_usage_bytes += job.current_bytes;
    }
    view.imminent_bytes = imminent_bytes();
    return view;
}

const char* state_name(JobView::State state) {
    switch (state) {
        case JobView::State::waiting: return "waiting";
        case JobView::State::running: return "running";
        case JobView::State::stopped: return "stopped";
    }
    return "?";
}

BuildShare Governor::share(Clock::time_point now) const {
    BuildShare share{.near_growth_bytes = static_cast<std::uint64_t>(std::max<std::int64_t>(remaining_need(now), 0)),
                     .kept_bytes = surprise_room(nullptr),
                     .running = active_count()};
    for (const auto& [pid, job] : running_) {
        if (job.emergency_stopped)
            share.stopped_need_bytes += need_to_finish(job);
        else
            share.imminent_bytes += still_to_take(job);
    }
    if (!queue_.empty()) {
        const Job& oldest = waiting_.at(queue_.front());
        share.oldest_waiting = OtherBuilds::Waiting{queued_among_builds(oldest), oldest.reserved_bytes};
    }
    return share;
}

std::vector<JobView> Governor::jobs() const {
    std::vector<JobView> views;
    for (pid_t pid : admission_order_) {
        const Job& job = running_.at(pid);
        views.push_back({pid, job.emergency_stopped ? JobView::State::stopped : JobView::State::running,
                         job.reserved_bytes, job.current_bytes});
    }
    for (pid_t pid : queue_) views.push_back({pid, JobView::State::waiting, waiting_.at(pid).reserved_bytes, 0});
    return views;
}

std::uint64_t Governor::owed_to_other_builds(const Job& job, Clock::time_point now) const {
    std::uint64_t owed = 0;
    for (const auto& other : others_.oldest_waiting)
        if (other.queued_at < queued_among_builds(job) && now - other.queued_at >= settings_.backfill_window)
            owed += other.needed_bytes;
    return owed;
}

bool Governor::older_waiting_elsewhere(const Job& job) const {
    return std::any_of(others_.oldest_waiting.begin(), others_.oldest_waiting.end(),
                       [&](const OtherBuilds::Waiting& other) { return other.queued_at < queued_among_builds(job); });
}

std::vector<pid_t> Governor::running_jobs() const { return admission_order_; }

std::uint64_t Governor::startable_at_once(std::uint64_t job_bytes, std::uint64_t margin_bytes,
                                          std::uint64_t unannounced, std::uint64_t available_bytes) const {
    // Another build's waiting job is served before any start that nobody has looked at.
    if (!queue_.empty() || job_bytes == 0 || any_emergency_stopped() || !others_.oldest_waiting.empty()) return 0;
    // Each start counts as job_bytes, so it is its own surprise; the running jobs' may come.
    std::uint64_t taken = imminent_bytes() + surprise_room(nullptr) + margin_bytes + unannounced * job_bytes +
                          others_.held_for_them_bytes();
    std::uint64_t count = available_bytes > taken ? (available_bytes - taken) / job_bytes : 0;
    if (settings_.max_running) {
        std::uint64_t slots = running_.size() + unannounced < settings_.max_running
                                  ? settings_.max_running - running_.size() - unannounced
                                  : 0;
        count = std::min(count, slots);
    }
    return count;
}

std::vector<pid_t> Governor::release_all(Clock::time_point now) {
    std::vector<pid_t> released;
    for (auto& [pid, job] : running_) {
        if (!job.emergency_stopped) continue;
        job.emergency_stopped = false;
        released.push_back(pid);
    }
    for (pid_t pid : std::deque<pid_t>(queue_)) {
        admit(pid, 0, now);
        released.push_back(pid);
    }
    return released;
}

std::optional<Clock::duration> Governor::waited(pid_t job, Clock::time_point now) const {
    if (auto it = waiting_.find(job); it != waiting_.end()) return now - it->second.queued_at;
    if (auto it = running_.find(job); it != running_.end()) return it->second.admitted_at - it->second.queued_at;
    return std::nullopt;
}

std::int64_t Governor::remaining_need(Clock::time_point now) const {
    // Only the time the net needs to act ahead: a job growing along its curve into memory
    // that another job will free is stopped only if that job is late by then, not because
    // it might be (a job without a curve needs its whole remaining growth from now on).
    return outlook(now).max_over(0, static_cast<double>(settings_.net_horizon.count()));
}

void Governor::stop(pid_t pid, std::uint64_t available_bytes, std::int64_t need, bool below_floor,
                    std::vector<Decision>& decisions) {
    Job& job = running_.at(pid);
    job.emergency_stopped = true;
    job.curve.reset();  // stopped, it runs late: from now on its whole remaining growth counts
    Decision decision{DecisionKind::emergency_stop, pid, job.reserved_bytes,
                      static_cast<std::int64_t>(available_bytes) - need, imminent_bytes()};
    decision.below_floor = below_floor;
    decision.current_bytes = job.current_bytes;
    decisions.push_back(decision);
}

void Governor::emergency(std::uint64_t available_bytes, Clock::time_point now, std::vector<Decision>& decisions) {
    // Other builds' jobs grow into the same memory: the plans leave them what they are
    // expected to take within the net's horizon (each build's net stops only its own jobs).
    auto available = static_cast<std::int64_t>(available_bytes) - static_cast<std::int64_t>(others_.near_growth_bytes);
    // The growing job that holds least first (the youngest of equals): stopped, its memory
    // stays in use until it resumes, so the least is locked away, and a job found out early
    // as a giant is stopped while still small. Robustness benchmark, seed 5 at 1.3x: a giant
    // and two small jobs started together; the small ones jumped to their peaks (144 and
    // 65 MB) while the giant was at 62 MB. Stopping the youngest stopped the small ones, and
    // the giant grew into the 209 MB they held (OOM-killed in 2 of 3 runs, 0 of 3 now).
    // A job that is not growing (by its rates) is passed over where one that is can be
    // stopped: stopping it saves nothing, and a small job at its peak stopped beside a
    // growing giant holds the very memory the giant needs.
    auto stoppable = [&](bool growing_only) -> std::optional<pid_t> {
        // The host's last running job always runs (other builds' jobs count: the ledger
        // serialises decisions, so two builds never stop their last jobs at once).
        if (active_count() + others_.running <= 1) return std::nullopt;
        std::optional<pid_t> chosen;
        bool chosen_grows = false;
        for (auto it = admission_order_.rbegin(); it != admission_order_.rend(); ++it) {
            const Job& job = running_.at(*it);
            if (job.emergency_stopped || !job.stoppable) continue;
            bool grows = growing(job);
            if (!chosen || (grows && !chosen_grows) ||
                (grows == chosen_grows && job.current_bytes < running_.at(*chosen).current_bytes)) {
                chosen = *it;
                chosen_grows = grows;
            }
        }
        return growing_only && !chosen_grows ? std::nullopt : chosen;
    };
    if (available_bytes < settings_.emergency_floor_bytes) {
        // Memory is nearly gone whatever the plans say: one job per reading, the next
        // reading shows whether that was enough.
        if (auto pid = stoppable(false)) {
            stop(*pid, available_bytes, remaining_need(now), true, decisions);
            return;
        }
    }
    // The plans: can every running job reach its expected peak in what is available? If
    // not, stop jobs until the rest can, while the stopped ones are still small. Every job's
    // whole remaining growth (imminent) bounds the outlook from above: while it fits, the
    // outlook need not be built (decide runs on every exec and every tick).
    std::int64_t need = static_cast<std::int64_t>(imminent_bytes()) <= available ? 0 : remaining_need(now);
    if (need > available) {
        while (need > available) {
            auto pid = stoppable(true);
            if (!pid) break;
            stop(*pid, available_bytes, need, false, decisions);
            need = remaining_need(now);
        }
        return;
    }
    // Memory is back: the oldest stopped job continues once its remaining growth fits
    // beside the running jobs' with kept_free_bytes to spare. A guessed job, stopped for its
    // growth, may be as large as its largest peer: it continues when that would fit. With
    // nothing running, the job with the least growth ahead continues whatever it needs
    // (progress guarantee): it ends soonest and frees what it holds for the others.
    std::optional<pid_t> resumed;
    for (pid_t pid : admission_order_) {
        const Job& job = running_.at(pid);
        if (!job.emergency_stopped) continue;
        if (host_idle()) {
            if (!resumed || need_to_finish(job) < need_to_finish(running_.at(*resumed))) resumed = pid;
            continue;
        }
        Job as_large_as_its_peers = job;
        as_large_as_its_peers.reserved_bytes = job.current_bytes + need_to_finish(job);
        // A resume is an admission: it leaves other builds what they are about to take and keep
        // (not what their stopped jobs need: two builds' stopped jobs would wait for each other).
        auto resumable = static_cast<std::int64_t>(available_bytes) -
                         static_cast<std::int64_t>(others_.imminent_bytes + others_.kept_bytes);
        if (fits_from(as_large_as_its_peers, 0, outlook(now), resumable)) resumed = pid;
        break;
    }
    if (!resumed) return;
    need = remaining_need(now);  // the figures logged with the resume (before it joins the plans)
    Job& job = running_.at(*resumed);
    job.emergency_stopped = false;
    job.read_at.reset();  // its growth rates restart from its next reading
    job.readings = 0;
    job.growth_bytes_per_ms = job.steady_growth_bytes_per_ms = 0;
    decisions.push_back({DecisionKind::emergency_resume, *resumed, need_to_finish(job),
                         available - static_cast<std::int64_t>(settings_.kept_free_bytes) - need,
                         static_cast<std::uint64_t>(std::max<std::int64_t>(need, 0))});
}

Decision Governor::admit(pid_t pid, std::int64_t effective_free, Clock::time_point now) {
    Job job = waiting_.at(pid);
    waiting_.erase(pid);
    std::erase(queue_, pid);
    job.admitted_at = now;
    running_[pid] = job;
    admission_order_.push_back(pid);
    return Decision{DecisionKind::admit, pid, job.reserved_bytes, effective_free, imminent_bytes() - job.reserved_bytes,
                    job.refused_once};
}

void Governor::admit_waiting(std::uint64_t available_bytes, Clock::time_point now, std::vector<Decision>& decisions) {
    if (any_emergency_stopped()) return;  // stopped jobs continue before new ones start

    // What other builds are about to take and keep, and what their stopped jobs need to
    // finish, is not ours to hand out. (Two cold builds in one cgroup: one's job started in
    // the memory the other's stopped job needed, which could then only stop again, and the
    // new job, the host's last running one, was OOM-killed.)
    auto available_to_all =
        static_cast<std::int64_t>(available_bytes) - static_cast<std::int64_t>(others_.held_for_them_bytes());
    std::optional<pid_t> blocked;  // the first job in `order` that does not fit
    std::vector<pid_t> order(queue_.begin(), queue_.end());
    if (settings_.max_running && !order.empty()) {
        // With --jobs the queue can be deep (make -j256 --jobs 16): start the biggest job that
        // fits first (LPT), which packs memory and shortens the tail. The oldest job keeps its
        // place once it has waited a backfill window, so nothing starves.
        bool oldest_due = now - waiting_.at(order.front()).queued_at >= settings_.backfill_window;
        std::stable_sort(order.begin() + (oldest_due ? 1 : 0), order.end(), [this](pid_t a, pid_t b) {
            return waiting_.at(a).reserved_bytes > waiting_.at(b).reserved_bytes;
        });
    }
    if (queue_.empty()) return;
    // Built only when the peak rule alone does not decide, and again after each admission.
    std::optional<Outlook> running_outlook;
    auto running = [&]() -> const Outlook& {
        if (!running_outlook) running_outlook = outlook(now);
        return *running_outlook;
    };
    // With curves, a job that does not fit yet gets a start instant (its shadow) from when
    // running jobs end; smaller jobs may pass it only if it can still start then (EASY
    // backfilling). Without one (no curves), the backfill window alone bounds its wait.
    std::optional<double> blocked_start;
    std::optional<Outlook> with_blocked;  // the running jobs and the blocked one from its start
    for (pid_t pid : order) {
        if (settings_.max_running && running_.size() >= settings_.max_running) return;
        const Job& job = waiting_.at(pid);
        if (now < job.deferred_until) continue;
        auto needed = static_cast<std::int64_t>(job.reserved_bytes);
        auto available = available_to_all - static_cast<std::int64_t>(owed_to_other_builds(job, now));
        // The peak rule: free memory minus what running jobs are about to take (their
        // peaks minus their current use) holds the job's whole peak, kept_free_bytes, and room
        // for one guess to turn out as large as its largest peer: a giant among unknown jobs
        // is found out only as it grows, and by then the jobs admitted beside it hold memory
        // that stopping them cannot give back (robustness benchmark: 11 of 24 cold runs at
        // 1.3x the largest job OOM-killed without this room, 0 of 24 with it).
        std::int64_t effective_free = available - static_cast<std::int64_t>(imminent_bytes());
        auto surprise = static_cast<std::int64_t>(surprise_room(&job));
        if (host_idle() && others_.stopped == 0 && !older_waiting_elsewhere(job)) {
            // Progress guarantee: with nothing running on the host, the oldest job starts
            // whatever it needs; but a job another build's net stopped continues first (that
            // build resumes it, the host being idle), as one of ours would: started beside it
            // in the memory it holds, the new job ran into the limit (a daemon test, two cold
            // builds of two 600 MB jobs each in 1100 MiB: OOM-killed in 3 of 35 runs).
            Decision decision = admit(pid, effective_free, now);
            decision.forced = needed > effective_free;
            decisions.push_back(decision);
            running_outlook.reset();
            continue;
        }
        bool on_curve = needed + static_cast<std::int64_t>(settings_.kept_free_bytes) + surprise > effective_free;
        if (!on_curve || (settings_.follow_growth_curves && fits_from(job, 0, running(), available - surprise))) {
            if (blocked) {
                if (now - waiting_.at(*blocked).queued_at >= settings_.backfill_window) return;
                if (with_blocked && !fits_from(job, 0, *with_blocked, available))
                    continue;  // it would delay the job it passes
            }
            Decision decision = admit(pid, effective_free, now);
            decision.backfill = blocked.has_value();
            decision.on_curve = on_curve;
            decision.surprise_bytes = static_cast<std::uint64_t>(surprise);
            decisions.push_back(decision);
            running_outlook.reset();
            if (with_blocked) with_blocked = outlook(now, Planned{&waiting_.at(*blocked), *blocked_start});
            continue;
        }
        if (!job.refused_once) {
            waiting_.at(pid).refused_once = true;
            Decision decision{DecisionKind::keep_waiting, pid, job.reserved_bytes, effective_free, imminent_bytes()};
            decision.surprise_bytes = static_cast<std::uint64_t>(surprise);
            decisions.push_back(decision);
        }
        if (!blocked) {
            blocked = pid;
            if (now - job.queued_at >= settings_.backfill_window) return;
            if (!settings_.follow_growth_curves) continue;
            blocked_start = earliest_start(job, running(), available);
            if (blocked_start) with_blocked = outlook(now, Planned{&job, *blocked_start});
        }
    }
}

std::vector<Decision> Governor::decide(std::uint64_t available_bytes, Clock::time_point now) {
    std::vector<Decision> decisions = std::move(repredictions_);
    repredictions_.clear();
    if (progressed_ || queue_.empty()) {
        last_progress_ = now;
        progressed_ = false;
    }
    emergency(available_bytes, now, decisions);
    admit_waiting(available_bytes, now, decisions);
    bool admitted = std::any_of(decisions.begin(), decisions.end(),
                                [](const Decision& d) { return d.kind == DecisionKind::admit; });
    // A stall is ours only while jobs of ours run: with none, we wait for other builds' jobs
    // (those that make progress: see ProgressWatch).
    bool ours = active_count() > 0 || others_.running == 0;
    if (!admitted && !queue_.empty() && ours && now - last_progress_ >= settings_.stall_timeout &&
        now >= waiting_.at(queue_.front()).deferred_until) {
        auto effective_free = static_cast<std::int64_t>(available_bytes) - static_cast<std::int64_t>(imminent_bytes());
        Decision decision = admit(queue_.front(), effective_free, now);
        decision.forced = true;
        decision.stalled = true;
        decisions.push_back(decision);
    }
    if (admitted || (!decisions.empty() && decisions.back().stalled)) {
        last_progress_ = now;
        progressed_ = false;
    }
    return decisions;
}

}  // namespace memgov
