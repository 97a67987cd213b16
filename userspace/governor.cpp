#include "governor.h"

#include <algorithm>

namespace memgov {

void Governor::job_waiting(pid_t job, Reservation expected, Clock::time_point now) {
    if (waiting_.contains(job) || running_.contains(job)) return;
    waiting_[job] = Job{.reserved_bytes = expected.peak_bytes, .curve = std::move(expected.curve), .queued_at = now};
    queue_.push_back(job);
}

void Governor::job_running(pid_t job, Reservation expected, Clock::time_point now) {
    if (waiting_.contains(job) || running_.contains(job)) return;
    running_[job] = Job{.reserved_bytes = expected.peak_bytes,
                        .curve = std::move(expected.curve),
                        .queued_at = now,
                        .admitted_at = now};
    admission_order_.push_back(job);
}

void Governor::job_usage(pid_t job, std::uint64_t current_bytes, std::uint64_t peak_bytes) {
    auto it = running_.find(job);
    if (it == running_.end()) return;
    if (it->second.current_bytes != current_bytes) progressed_ = true;
    it->second.current_bytes = current_bytes;
    it->second.reserved_bytes = std::max(it->second.reserved_bytes, peak_bytes);
}

void Governor::job_exited(pid_t job, Clock::time_point now) {
    if (auto it = running_.find(job); it != running_.end()) {
        progressed_ = true;
        const Job& ended = it->second;
        // Short jobs say little: a 2 ms job taking 8 ms would make every job "4x late".
        if (ended.curve && !ended.ever_stopped && ended.curve->duration_ms >= settings_.min_calibration_ms) {
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
    auto peak = static_cast<std::int64_t>(std::max(job.reserved_bytes, job.current_bytes));
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
        add(job, std::chrono::duration<double, std::milli>(now - job.admitted_at).count());
    if (planned) add(*planned->job, -planned->start_ms);
    result.build();
    return result;
}

bool Governor::fits_from(const Job& job, double start_ms, const Outlook& running, std::int64_t available_bytes) const {
    // While the job is expected to use memory, the running jobs' expected use plus its own
    // keeps curve_reserve_bytes of what is available now free.
    std::int64_t room = available_bytes - static_cast<std::int64_t>(settings_.curve_reserve_bytes);
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
        job.ever_stopped = true;
        job.curve.reset();  // its whole peak counts until it ends
    }
}

std::uint64_t Governor::imminent_bytes() const {
    std::uint64_t imminent = 0;
    for (const auto& [pid, job] : running_)
        if (job.reserved_bytes > job.current_bytes) imminent += job.reserved_bytes - job.current_bytes;
    return imminent;
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

std::vector<pid_t> Governor::running_jobs() const { return admission_order_; }

std::uint64_t Governor::startable_at_once(std::uint64_t job_bytes, std::uint64_t margin_bytes,
                                          std::uint64_t unannounced, std::uint64_t available_bytes) const {
    if (!queue_.empty() || job_bytes == 0) return 0;
    if (std::any_of(running_.begin(), running_.end(), [](const auto& entry) { return entry.second.emergency_stopped; }))
        return 0;
    std::uint64_t taken = imminent_bytes() + margin_bytes + unannounced * job_bytes;
    std::uint64_t count = available_bytes > taken ? (available_bytes - taken) / job_bytes : 0;
    if (settings_.max_running) {
        std::uint64_t slots = running_.size() + unannounced < settings_.max_running
                                  ? settings_.max_running - running_.size() - unannounced : 0;
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
    if (auto it = running_.find(job); it != running_.end())
        return it->second.admitted_at - it->second.queued_at;
    return std::nullopt;
}

void Governor::emergency(std::uint64_t available_bytes, std::vector<Decision>& decisions) {
    std::uint64_t imminent = imminent_bytes();
    if (available_bytes < settings_.emergency_floor_bytes && active_count() > 0) {
        if (active_count() == 1) return;  // the last running job always keeps running
        for (auto it = admission_order_.rbegin(); it != admission_order_.rend(); ++it) {
            Job& job = running_.at(*it);
            if (job.emergency_stopped) continue;
            job.emergency_stopped = true;
            job.ever_stopped = true;
            decisions.push_back({DecisionKind::emergency_stop, *it, job.reserved_bytes,
                                 static_cast<std::int64_t>(available_bytes), imminent});
            return;  // one per tick: the next reading shows whether it was enough
        }
        return;
    }
    // Memory is back: the oldest stopped job continues once its remaining growth fits
    // above the floor, or at once if nothing else runs (progress guarantee).
    for (pid_t pid : admission_order_) {
        Job& job = running_.at(pid);
        if (!job.emergency_stopped) continue;
        std::uint64_t growth = job.reserved_bytes > job.current_bytes ? job.reserved_bytes - job.current_bytes : 0;
        std::int64_t free_after = static_cast<std::int64_t>(available_bytes) -
                                  static_cast<std::int64_t>(imminent - growth);
        bool fits = free_after >= static_cast<std::int64_t>(growth + settings_.emergency_floor_bytes);
        if (!fits && active_count() > 0) return;
        job.emergency_stopped = false;
        decisions.push_back({DecisionKind::emergency_resume, pid, growth, free_after, imminent});
        return;
    }
}

Decision Governor::admit(pid_t pid, std::int64_t effective_free, Clock::time_point now) {
    Job job = waiting_.at(pid);
    waiting_.erase(pid);
    std::erase(queue_, pid);
    job.admitted_at = now;
    running_[pid] = job;
    admission_order_.push_back(pid);
    return Decision{DecisionKind::admit, pid, job.reserved_bytes, effective_free,
                    imminent_bytes() - job.reserved_bytes, job.refused_once};
}

void Governor::admit_waiting(std::uint64_t available_bytes, Clock::time_point now,
                             std::vector<Decision>& decisions) {
    bool any_stopped = std::any_of(running_.begin(), running_.end(),
                                   [](const auto& entry) { return entry.second.emergency_stopped; });
    if (any_stopped) return;  // stopped jobs continue before new ones start

    auto available = static_cast<std::int64_t>(available_bytes);
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
        auto needed = static_cast<std::int64_t>(job.reserved_bytes);
        // The mission's rule: free memory minus what running jobs are about to take (their
        // peaks minus their current use) holds the job's whole peak.
        std::int64_t effective_free = available - static_cast<std::int64_t>(imminent_bytes());
        if (active_count() == 0) {
            // Progress guarantee: with nothing running, the oldest job starts whatever it needs.
            Decision decision = admit(pid, effective_free, now);
            decision.forced = needed > effective_free;
            decisions.push_back(decision);
            running_outlook.reset();
            continue;
        }
        bool on_curve = needed > effective_free;
        if (!on_curve || (settings_.follow_growth_curves && fits_from(job, 0, running(), available))) {
            if (blocked) {
                if (now - waiting_.at(*blocked).queued_at >= settings_.backfill_window) return;
                if (with_blocked && !fits_from(job, 0, *with_blocked, available))
                    continue;  // it would delay the job it passes
            }
            Decision decision = admit(pid, effective_free, now);
            decision.backfill = blocked.has_value();
            decision.on_curve = on_curve;
            decisions.push_back(decision);
            running_outlook.reset();
            if (with_blocked) with_blocked = outlook(now, Planned{&waiting_.at(*blocked), *blocked_start});
            continue;
        }
        if (!job.refused_once) {
            waiting_.at(pid).refused_once = true;
            decisions.push_back({DecisionKind::keep_waiting, pid, job.reserved_bytes, effective_free,
                                 imminent_bytes()});
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
    std::vector<Decision> decisions;
    if (progressed_ || queue_.empty()) {
        last_progress_ = now;
        progressed_ = false;
    }
    emergency(available_bytes, decisions);
    admit_waiting(available_bytes, now, decisions);
    bool admitted = std::any_of(decisions.begin(), decisions.end(),
                                [](const Decision& d) { return d.kind == DecisionKind::admit; });
    if (!admitted && !queue_.empty() && now - last_progress_ >= settings_.stall_timeout) {
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
