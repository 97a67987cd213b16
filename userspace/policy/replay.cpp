#include "replay.h"

#include <algorithm>
#include <numeric>
#include <optional>

namespace memgov {
namespace {

// Recorded instants this close are one: the build tool reacts to a job's end within it.
constexpr double same_instant_s = 0.005;

// When the build tool may start each job (see replay.h), from the recording.
struct Arrival {
    std::optional<std::size_t> after;  // the job it waited for (an index into the jobs)
    double lag_s = 0;                  // after that job's end, or after the build started
    bool slots_only = false;           // started as soon as a slot freed
};

std::vector<std::size_t> exec_order(const std::vector<ReplayJob>& jobs) {
    std::vector<std::size_t> order(jobs.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return jobs[a].exec_s < jobs[b].exec_s; });
    return order;
}

std::vector<Arrival> arrivals(const std::vector<ReplayJob>& jobs, const std::vector<std::size_t>& order,
                              std::size_t slots) {
    std::vector<std::size_t> by_end(jobs.size());
    std::iota(by_end.begin(), by_end.end(), 0);
    std::sort(by_end.begin(), by_end.end(),
              [&](std::size_t a, std::size_t b) { return jobs[a].end_s < jobs[b].end_s; });
    std::vector<double> execs, ends;
    for (std::size_t index : order) execs.push_back(jobs[index].exec_s);
    for (std::size_t index : by_end) ends.push_back(jobs[index].end_s);
    auto count_below = [](const std::vector<double>& sorted, double at) {
        return static_cast<std::size_t>(std::lower_bound(sorted.begin(), sorted.end(), at) - sorted.begin());
    };
    std::vector<std::size_t> position_of(jobs.size());
    for (std::size_t position = 0; position < order.size(); ++position) position_of[order[position]] = position;
    std::vector<Arrival> result(jobs.size());
    for (std::size_t position = 0; position < order.size(); ++position) {
        const ReplayJob& job = jobs[order[position]];
        Arrival& arrival = result[order[position]];
        // The job that ended last when it started, among those started before it (not itself,
        // nor a job of no length started at the same instant after it).
        auto ended = static_cast<std::size_t>(std::upper_bound(ends.begin(), ends.end(), job.exec_s + same_instant_s) -
                                              ends.begin());
        while (ended > 0 && position_of[by_end[ended - 1]] >= position) --ended;
        if (ended == 0) {
            arrival.lag_s = job.exec_s;
            continue;
        }
        std::size_t last = by_end[ended - 1];
        arrival.after = last;
        arrival.lag_s = std::max(0.0, job.exec_s - jobs[last].end_s);
        // Were all slots busy until that job ended? Those live then: started before this job
        // and before that end, not ended before it.
        double freed_at = jobs[last].end_s - same_instant_s;
        std::size_t started = std::min(position, count_below(execs, freed_at));
        std::size_t gone = count_below(ends, freed_at);
        arrival.slots_only = started > gone && started - gone >= slots;
    }
    return result;
}

// A job's use along its progress (a share of its work), as steps; and the curve the profile
// store would have learned from the recording.
struct UseProfile {
    std::vector<std::pair<double, std::uint64_t>> steps;  // (share of its work done, bytes)
    GrowthCurve curve;
};

UseProfile profile_of(const ReplayJob& job) {
    UseProfile profile;
    double running = std::max(job.running_s, 1e-3);
    GrowthRecorder recorder;
    std::uint64_t highest = 0;
    for (const auto& [at_s, bytes] : job.use) {
        profile.steps.emplace_back(std::clamp(at_s / running, 0.0, 1.0), bytes);
        highest = std::max(highest, bytes);
        recorder.observe(static_cast<std::uint32_t>(std::clamp(at_s, 0.0, running) * 1000), highest);
    }
    // The readings may have missed the top: it is reached where they saw the most.
    if (highest < job.peak_bytes) {
        auto top = std::max_element(profile.steps.begin(), profile.steps.end(),
                                    [](const auto& a, const auto& b) { return a.second < b.second; });
        if (top == profile.steps.end())
            profile.steps.emplace_back(0.0, job.peak_bytes);  // too short to be read: all of it at once
        else
            top->second = job.peak_bytes;
    }
    profile.curve = recorder.finish(static_cast<std::uint32_t>(running * 1000), job.peak_bytes);
    return profile;
}

std::uint64_t use_at(const UseProfile& profile, double share) {
    std::uint64_t use = 0;
    for (const auto& [from, bytes] : profile.steps) {
        if (from > share) break;
        use = bytes;
    }
    return use;
}

enum class State { pending, waiting, running, stopped, done };

struct Simulated {
    State state = State::pending;
    double progress = 0;  // share of its work done
    double exec_s = 0, run_s = 0, end_s = 0;
    std::uint64_t use = 0, peak = 0;
};

}  // namespace

std::size_t recorded_jobs(const std::vector<ReplayJob>& jobs) {
    std::vector<std::pair<double, int>> changes;  // ends before starts at one instant
    for (const auto& job : jobs) {
        changes.emplace_back(job.exec_s, 1);
        changes.emplace_back(std::max(job.end_s, job.exec_s), -1);
    }
    std::sort(changes.begin(), changes.end());
    std::size_t live = 0, most = 0;
    for (const auto& [at, change] : changes) {
        live = change > 0 ? live + 1 : live - 1;
        most = std::max(most, live);
    }
    return std::max<std::size_t>(most, 1);
}

ReplayOutcome replay(const std::vector<ReplayJob>& jobs, double recorded_wall_s, const ReplaySettings& settings) {
    ReplayOutcome outcome;
    if (jobs.empty()) {
        outcome.wall_s = recorded_wall_s;
        return outcome;
    }
    auto order = exec_order(jobs);
    auto when = arrivals(jobs, order, recorded_jobs(jobs));
    std::vector<UseProfile> profiles;
    for (const auto& job : jobs) profiles.push_back(profile_of(job));
    double last_end = 0;
    for (const auto& job : jobs) last_end = std::max(last_end, job.end_s);
    double tail_s = std::max(0.0, recorded_wall_s - last_end);  // glue after the last job

    Governor governor(settings.governor);
    std::vector<Simulated> sim(jobs.size());
    const double dt = std::chrono::duration<double>(settings.step).count();
    const Clock::time_point zero{};
    auto clock_at = [&](double seconds) {
        return zero + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    };
    auto pid_of = [](std::size_t index) { return static_cast<pid_t>(index + 1); };
    double now = 0;
    std::size_t next = 0, live = 0, done = 0;
    std::vector<std::size_t> active;  // running or stopped: what uses memory and may progress
    auto start_running = [&](std::size_t index) {
        active.push_back(index);
        sim[index].state = State::running;
        sim[index].run_s = now;
        if (now - sim[index].exec_s > dt / 2) {
            ++outcome.jobs_waited;
            outcome.seconds_waited += now - sim[index].exec_s;
        }
    };
    auto available = [&](std::uint64_t build_use) {
        std::uint64_t taken = settings.other_bytes + build_use;
        return settings.limit_bytes > taken ? settings.limit_bytes - taken : 0;
    };
    auto build_use = [&] {
        std::uint64_t total = 0;
        for (std::size_t index : active) total += sim[index].use;
        return total;
    };
    auto decide = [&] {
        for (const Decision& decision : governor.decide(available(build_use()), clock_at(now))) {
            auto index = static_cast<std::size_t>(decision.job - 1);
            if (decision.kind == DecisionKind::admit) start_running(index);
            if (decision.kind == DecisionKind::emergency_stop) {
                sim[index].state = State::stopped;
                ++outcome.emergency_stops;
            }
            if (decision.kind == DecisionKind::emergency_resume) sim[index].state = State::running;
        }
    };
    // Far beyond any plausible estimate: a replay that got here would never end.
    const double give_up_s = 100 * std::max(recorded_wall_s, 1.0) + 3600;
    while (done < jobs.size() && now < give_up_s) {
        // The build tool starts what it may, in its order.
        bool started = false;
        while (next < order.size() && live < settings.jobs) {
            std::size_t index = order[next];
            const Arrival& arrival = when[index];
            double ready = arrival.lag_s;
            if (arrival.after && !arrival.slots_only) {
                const Simulated& before = sim[*arrival.after];
                if (before.state != State::done) break;
                ready += before.end_s;
            } else if (arrival.after) {
                ready = 0;
            }
            if (ready > now + dt / 2) break;
            sim[index].state = State::waiting;
            sim[index].exec_s = now;
            ++live;
            ++next;
            started = true;
            if (settings.governed)
                governor.job_waiting(
                    pid_of(index),
                    Reservation{.peak_bytes = jobs[index].peak_bytes, .curve = profiles[index].curve, .measured = true},
                    clock_at(now));
            else
                start_running(index);
        }
        if (started && settings.governed) decide();

        // The running jobs share the CPUs.
        double wanted = 0;
        std::size_t running = 0;
        for (std::size_t index : active)
            if (sim[index].state == State::running) {
                wanted += std::max(jobs[index].cpus, 0.05);
                ++running;
            }
        outcome.peak_running = std::max(outcome.peak_running, running);
        double speed = wanted > settings.cpus ? settings.cpus / wanted : 1.0;
        now += dt;
        std::vector<std::size_t> finished;
        for (std::size_t index : active) {
            Simulated& job = sim[index];
            if (job.state != State::running) continue;
            job.progress = std::min(1.0, job.progress + speed * dt / std::max(jobs[index].work_s, 1e-3));
            job.use = use_at(profiles[index], job.progress);
            job.peak = std::max(job.peak, job.use);
            if (job.progress >= 1) finished.push_back(index);
        }
        // A job that ended within this step still took its memory in it.
        std::uint64_t used = build_use();
        outcome.peak_bytes = std::max(outcome.peak_bytes, used);
        if (!outcome.out_of_memory && used + settings.other_bytes > settings.limit_bytes) {
            outcome.out_of_memory = true;
            outcome.out_of_memory_at_s = now;
        }
        for (std::size_t index : finished) {
            sim[index].state = State::done;
            sim[index].end_s = now;
            sim[index].use = 0;
            --live;
            ++done;
            if (settings.governed) governor.job_exited(pid_of(index), clock_at(now));
        }
        std::erase_if(active, [&](std::size_t index) { return sim[index].state == State::done; });
        if (!settings.governed) continue;
        for (std::size_t index : active)
            governor.job_used(pid_of(index), sim[index].use, sim[index].peak, clock_at(now));
        decide();
    }
    outcome.wall_s = now + tail_s;
    return outcome;
}

}  // namespace memgov
