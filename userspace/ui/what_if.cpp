#include "what_if.h"

#include <fmt/format.h>

#include <algorithm>

#include "bytes.h"

namespace memgov {
namespace {

constexpr double MiB = 1 << 20;

// Of a job's running time before `at_s`, what it spent stopped.
double stopped_before(const JobTimeline& job, double at_s) {
    double stopped = 0;
    for (const auto& [from, until] : job.stops) stopped += std::max(0.0, std::min(until, at_s) - from);
    return stopped;
}

ReplayJob replay_job(const JobTimeline& recorded) {
    ReplayJob job{
        .key = recorded.key,
        .exec_s = recorded.exec_s,
        .end_s = recorded.end_s,
        .running_s = std::max(0.0, recorded.end_s - recorded.run_s - stopped_before(recorded, recorded.end_s)),
        .peak_bytes = recorded.peak_bytes};
    // Its own work: what it ran less what it waited for a CPU, though never less than its CPU
    // time (summed over its threads: a job of many threads needs more than one CPU).
    job.work_s = std::max({job.running_s - recorded.run_delay_s, std::min(recorded.cpu_s, job.running_s), 1e-3});
    job.cpus = recorded.cpu_s > 0 ? recorded.cpu_s / job.work_s : 1.0;  // unknown: one
    for (const auto& [at_s, mib] : recorded.rss_mib) {
        if (at_s < recorded.run_s) continue;  // held at the gate: not growing yet
        job.use.emplace_back(at_s - recorded.run_s - stopped_before(recorded, at_s),
                             static_cast<std::uint64_t>(mib * MiB));
    }
    return job;
}

double median(std::vector<double> values) {
    if (values.empty()) return 0;
    std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2), values.end());
    return values[values.size() / 2];
}

std::string limit_text(std::uint64_t bytes) { return fmt::format("{:.0f} MiB", static_cast<double>(bytes) / MiB); }

std::string plain_text(const WhatIfAnswer& answer) {
    return answer.plain.out_of_memory ? fmt::format("OOM at {:.1f} s", answer.plain.out_of_memory_at_s)
                                      : fmt::format("{:.1f} s", answer.estimated_plain_wall_s);
}

nlohmann::json outcome_json(const ReplayOutcome& outcome) {
    return {{"replayed_seconds", outcome.wall_s},
            {"jobs_waited", outcome.jobs_waited},
            {"seconds_waited", outcome.seconds_waited},
            {"emergency_stops", outcome.emergency_stops},
            {"peak_bytes", outcome.peak_bytes},
            {"peak_running", outcome.peak_running},
            {"out_of_memory", outcome.out_of_memory},
            {"out_of_memory_at_seconds", outcome.out_of_memory ? nlohmann::json(outcome.out_of_memory_at_s) : nullptr}};
}

}  // namespace

std::optional<RecordedBuild> recorded_build(const BuildTimeline& timeline, unsigned cpus, std::string& error) {
    if (timeline.memory.empty() || !timeline.limit_mib) {
        error =
            "a what-if replays each job's recorded growth, which only a trace has: record the build with "
            "--trace FILE";
        return std::nullopt;
    }
    RecordedBuild build{.wall_s = timeline.wall_s};
    for (const auto& job : timeline.jobs) build.jobs.push_back(replay_job(job));
    std::vector<double> other;
    for (const auto& point : timeline.memory) other.push_back(point.other_mib);
    build.settings.limit_bytes = static_cast<std::uint64_t>(*timeline.limit_mib * MiB);
    build.settings.other_bytes = static_cast<std::uint64_t>(median(other) * MiB);
    build.settings.jobs = recorded_jobs(build.jobs);
    build.settings.cpus = timeline.cpus.value_or(cpus);
    // As memgov runs by default: admission keeps the emergency floor free.
    build.settings.governor.kept_free_bytes = build.settings.governor.emergency_floor_bytes;
    return build;
}

WhatIfAnswers answer(const RecordedBuild& build, const std::vector<WhatIf>& questions) {
    WhatIfAnswers answers{.recorded_wall_s = build.wall_s,
                          .recorded = build.settings,
                          .replayed = replay(build.jobs, build.wall_s, build.settings)};
    // The model's own error on the recording, taken out of every estimate.
    double scale = answers.replayed.wall_s > 0 ? build.wall_s / answers.replayed.wall_s : 1;
    for (const auto& question : questions) {
        WhatIfAnswer answer{.asked = question, .settings = build.settings};
        if (question.limit_bytes) answer.settings.limit_bytes = *question.limit_bytes;
        if (question.jobs) answer.settings.jobs = *question.jobs;
        if (question.cpus) answer.settings.cpus = *question.cpus;
        answer.governed = replay(build.jobs, build.wall_s, answer.settings);
        ReplaySettings plain = answer.settings;
        plain.governed = false;
        answer.plain = replay(build.jobs, build.wall_s, plain);
        answer.estimated_wall_s = answer.governed.wall_s * scale;
        answer.estimated_plain_wall_s = answer.plain.wall_s * scale;
        answers.answers.push_back(answer);
    }
    return answers;
}

std::string what_if_text(const WhatIfAnswers& answers) {
    std::string text = fmt::format(
        "what if (the recorded jobs replayed through memgov's governor, each known by its recorded peak and growth, "
        "as in a warm run):\n"
        "  recorded: {:.1f} s with a {} limit ({} of it used by everything else), -j{} (the most jobs live at once), "
        "{:g} CPUs; the replay of that: {:.1f} s\n",
        answers.recorded_wall_s, limit_text(answers.recorded.limit_bytes), limit_text(answers.recorded.other_bytes),
        answers.recorded.jobs, answers.recorded.cpus, answers.replayed.wall_s);
    text += fmt::format("  {:>10}  {:>4}  {:>4}  {:>9}  {:>16}  {:>5}  {:>9}  {}\n", "limit", "-j", "CPUs", "memgov",
                        "jobs waited", "stops", "peak", "plain -j");
    for (const auto& answer : answers.answers) {
        const ReplaySettings& asked = answer.settings;
        text += fmt::format("  {:>10}  {:>4}  {:>4g}  {:>7.1f} s  {:>16}  {:>5}  {:>9}  {}{}\n",
                            limit_text(asked.limit_bytes), asked.jobs, asked.cpus, answer.estimated_wall_s,
                            fmt::format("{}, {:.1f} s", answer.governed.jobs_waited, answer.governed.seconds_waited),
                            answer.governed.emergency_stops, limit_text(answer.governed.peak_bytes), plain_text(answer),
                            answer.governed.out_of_memory ? "  (memgov's run too needed more than the limit)" : "");
    }
    text += "  (times are the replay's, scaled by its error on the recording; memgov's peak is the build's own use)\n";
    return text;
}

nlohmann::json what_if_json(const WhatIfAnswers& answers) {
    nlohmann::json result{{"recorded",
                           {{"wall_seconds", answers.recorded_wall_s},
                            {"limit_bytes", answers.recorded.limit_bytes},
                            {"other_bytes", answers.recorded.other_bytes},
                            {"jobs", answers.recorded.jobs},
                            {"cpus", answers.recorded.cpus},
                            {"replayed_seconds", answers.replayed.wall_s}}},
                          {"answers", nlohmann::json::array()}};
    for (const auto& answer : answers.answers) {
        nlohmann::json governed = outcome_json(answer.governed);
        governed["estimated_seconds"] = answer.estimated_wall_s;
        nlohmann::json plain = outcome_json(answer.plain);
        plain["estimated_seconds"] = answer.estimated_plain_wall_s;
        result["answers"].push_back({{"limit_bytes", answer.settings.limit_bytes},
                                     {"jobs", answer.settings.jobs},
                                     {"cpus", answer.settings.cpus},
                                     {"memgov", governed},
                                     {"plain", plain}});
    }
    return result;
}

}  // namespace memgov
