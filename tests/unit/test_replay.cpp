// The what-if replay (policy/replay.h): arrivals as the build tool would make them, CPUs
// shared, memory along each job's recorded use, the real governor deciding; and memgov
// report's answers from a trace (ui/what_if.h).
#include <doctest/doctest.h>

#include <sstream>

#include "replay.h"
#include "trace_writer.h"
#include "what_if.h"

using namespace memgov;

namespace {

constexpr std::uint64_t MiB = 1ull << 20;

// A compile-like job: recorded from exec_s to end_s, running all of it on one CPU, growing
// linearly to its peak over its first half.
ReplayJob job(const std::string& key, double exec_s, double end_s, std::uint64_t peak_mib) {
    ReplayJob made{.key = key, .exec_s = exec_s, .end_s = end_s, .running_s = end_s - exec_s};
    made.work_s = made.running_s;
    made.peak_bytes = peak_mib * MiB;
    for (int step = 1; step <= 10; ++step)
        made.use.emplace_back(made.running_s / 2 * step / 10, peak_mib * MiB * static_cast<std::uint64_t>(step) / 10);
    return made;
}

ReplaySettings roomy(std::size_t jobs, double cpus) {
    ReplaySettings settings{.limit_bytes = 64ull << 30, .jobs = jobs, .cpus = cpus};
    settings.governor.kept_free_bytes = settings.governor.emergency_floor_bytes;
    return settings;
}

}  // namespace

TEST_CASE("replay: the most jobs live at once is the recorded -j") {
    CHECK(recorded_jobs({job("a", 0, 1, 1), job("b", 0, 1, 1), job("c", 1, 2, 1)}) == 2);  // c starts as a ends
    CHECK(recorded_jobs({}) == 1);
}

TEST_CASE("replay: the recording's own settings give its wall time back") {
    // -j2 on two CPUs: four 1 s jobs, two at a time, then 0.5 s of glue.
    std::vector<ReplayJob> jobs{job("a", 0, 1, 10), job("b", 0, 1, 10), job("c", 1, 2, 10), job("d", 1, 2, 10)};
    auto outcome = replay(jobs, 2.5, roomy(2, 2));
    CHECK(outcome.wall_s == doctest::Approx(2.5).epsilon(0.02));
    CHECK(outcome.peak_running == 2);
    CHECK(outcome.jobs_waited == 0);
    CHECK_FALSE(outcome.out_of_memory);
}

TEST_CASE("replay: jobs limited by -j alone start sooner with a larger -j, as far as the CPUs let them") {
    std::vector<ReplayJob> jobs{job("a", 0, 1, 10), job("b", 0, 1, 10), job("c", 1, 2, 10), job("d", 1, 2, 10)};
    // Four at once on two CPUs: each at half speed, so no faster.
    CHECK(replay(jobs, 2, roomy(4, 2)).wall_s == doctest::Approx(2).epsilon(0.02));
    // On four CPUs: all four at once, at full speed.
    auto four = replay(jobs, 2, roomy(4, 4));
    CHECK(four.wall_s == doctest::Approx(1).epsilon(0.03));
    CHECK(four.peak_running == 4);
    // -j1: one after the other.
    CHECK(replay(jobs, 2, roomy(1, 2)).wall_s == doctest::Approx(4).epsilon(0.02));
}

TEST_CASE("replay: a job that started while slots were free waits for the job that ended before it") {
    // -j3 recorded: a link started 0.1 s after the last compile ended, with slots to spare:
    // it depends on that compile, so it waits for it however many slots there are.
    std::vector<ReplayJob> jobs{job("a.o", 0, 1, 10), job("b.o", 0, 2, 10), job("c.o", 0, 1, 10),
                                job("link", 2.1, 2.6, 10)};
    auto outcome = replay(jobs, 2.6, roomy(3, 3));
    CHECK(outcome.wall_s == doctest::Approx(2.6).epsilon(0.02));
    // With one CPU for the three compiles, b.o ends later, and the link with it.
    auto slower = replay(jobs, 2.6, roomy(3, 1));
    CHECK(slower.wall_s > 4.0);
}

TEST_CASE("replay: the governor holds a job whose peak does not fit, and the plain build runs out of memory") {
    std::vector<ReplayJob> jobs{job("a", 0, 2, 600), job("b", 0, 2, 600)};
    ReplaySettings tight = roomy(2, 2);
    tight.limit_bytes = 1000 * MiB;
    tight.other_bytes = 50 * MiB;
    auto governed = replay(jobs, 2, tight);
    CHECK_FALSE(governed.out_of_memory);
    CHECK(governed.jobs_waited == 1);
    CHECK(governed.peak_bytes <= 950 * MiB);
    // Along the curves the second may start as soon as the first's memory will be freed in time
    // (it grows over its first half): at most one job's time later, at least half of it.
    CHECK(governed.wall_s >= 2.9);
    CHECK(governed.wall_s <= 4.1);
    CHECK(governed.seconds_waited >= 0.9);
    tight.governed = false;
    auto plain = replay(jobs, 2, tight);
    CHECK(plain.out_of_memory);
    CHECK(plain.out_of_memory_at_s > 0.5);  // both at 450 MiB, with 50 MiB of everything else
    CHECK(plain.out_of_memory_at_s < 1.0);
    CHECK(plain.wall_s == doctest::Approx(2).epsilon(0.02));
}

TEST_CASE("replay: a job whose use was never read needs its peak from its start") {
    ReplayJob quick = job("quick", 0, 0.005, 300);
    quick.use.clear();
    ReplaySettings tight = roomy(1, 1);
    tight.limit_bytes = 200 * MiB;
    tight.governed = false;
    CHECK(replay({quick}, 0.005, tight).out_of_memory);
}

namespace {

Clock::time_point at_s(double seconds) {
    return Clock::time_point(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(100 + seconds)));
}

// A traced -j2 build on 2 CPUs in 1000 MiB: two 600 MiB jobs one after the other (the
// second held 1 s at the gate), then a light one.
nlohmann::json recorded_trace() {
    std::ostringstream out;
    {
        TraceWriter trace(out, at_s(0), "memgov -- make -j2", 2);
        trace.job_started(1, "/src/a.cpp", false, at_s(0));
        trace.job_started(2, "/src/b.cpp", true, at_s(0));
        for (int tenth = 1; tenth <= 10; ++tenth)
            trace.memory(at_s(tenth / 10.0),
                         {.build_bytes = 60ull * tenth * MiB, .other_bytes = 40 * MiB, .limit_bytes = 1000 * MiB},
                         {{1, 60ull * tenth * MiB}}, std::nullopt);
        trace.job_ended(1, at_s(1), 600 * MiB, 0);
        trace.job_admitted(2, at_s(1), {});
        for (int tenth = 1; tenth <= 10; ++tenth)
            trace.memory(at_s(1 + tenth / 10.0),
                         {.build_bytes = 60ull * tenth * MiB, .other_bytes = 40 * MiB, .limit_bytes = 1000 * MiB},
                         {{2, 60ull * tenth * MiB}}, std::nullopt);
        trace.job_ended(2, at_s(2), 600 * MiB, 0);
        trace.job_started(3, "/src/c.cpp", false, at_s(2));
        trace.job_ended(3, at_s(2.5), 20 * MiB, 0);
    }
    return nlohmann::json::parse(out.str());
}

}  // namespace

TEST_CASE("what-if: a trace replayed under a larger limit and a smaller one") {
    std::string error;
    auto timeline = timeline_from_json(recorded_trace(), error);
    REQUIRE(timeline);
    auto build = recorded_build(*timeline, 8, error);
    REQUIRE(build);
    CHECK(build->settings.cpus == 2);  // the trace's, not the fallback
    CHECK(build->settings.jobs == 2);
    CHECK(build->settings.limit_bytes == 1000 * MiB);
    CHECK(build->settings.other_bytes == 40 * MiB);
    REQUIRE(build->jobs.size() == 3);
    CHECK(build->jobs[1].running_s == doctest::Approx(1));  // its wait at the gate is not its work
    CHECK(build->jobs[1].use.front().first == doctest::Approx(0.1));

    auto answers = answer(*build, {{.limit_bytes = 2000 * MiB}, {.limit_bytes = 500 * MiB}});
    CHECK(answers.replayed.wall_s == doctest::Approx(2.5).epsilon(0.05));
    REQUIRE(answers.answers.size() == 2);
    const auto& roomy_answer = answers.answers[0];
    CHECK(roomy_answer.governed.jobs_waited == 0);  // both heavy jobs fit at once
    CHECK(roomy_answer.estimated_wall_s < 2.0);
    CHECK_FALSE(roomy_answer.plain.out_of_memory);
    const auto& tight_answer = answers.answers[1];
    CHECK(tight_answer.plain.out_of_memory);
    CHECK(tight_answer.governed.out_of_memory);  // a 600 MiB job alone does not fit in 500 MiB
    std::string text = what_if_text(answers);
    CHECK(text.find("-j2 (the most jobs live at once), 2 CPUs") != std::string::npos);
    CHECK(text.find("OOM at") != std::string::npos);
    CHECK(text.find("memgov's run too needed more than the limit") != std::string::npos);
    auto json = what_if_json(answers);
    CHECK(json["answers"].size() == 2);
    CHECK(json["answers"][1]["plain"]["out_of_memory"] == true);
}

TEST_CASE("what-if: --stats-json has no growth to replay, and says what to do") {
    BuildTimeline stats{.source = "stats", .wall_s = 1};
    std::string error;
    CHECK_FALSE(recorded_build(stats, 2, error));
    CHECK(error.find("record the build with --trace FILE") != std::string::npos);
}
