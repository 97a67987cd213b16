// memgov report's arithmetic: a timeline from a trace or --stats-json, then parallelism, time
// held for memory, and the bottleneck lines.
#include <doctest/doctest.h>

#include <sstream>

#include "build_analysis.h"
#include "html_report.h"
#include "trace_writer.h"

using namespace memgov;

namespace {

Clock::time_point at_s(double seconds) {
    return Clock::time_point(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(100 + seconds)));
}

// Two jobs: a runs 0-4 s, stopped 1-2 s; b waits 0-4 s, runs 4-6 s. Nothing else, 10 s in all.
nlohmann::json two_job_trace() {
    std::ostringstream out;
    {
        TraceWriter trace(out, at_s(0), "t");
        trace.job_started(1, "/src/a.cpp", false, at_s(0));
        trace.job_started(2, "/src/b.cpp", true, at_s(0));
        trace.job_stopped(1, at_s(1), {});
        trace.job_resumed(1, at_s(2), {});
        trace.job_ended(1, at_s(4), 700ull << 20, 0);
        trace.job_admitted(2, at_s(4), {});
        trace.job_ended(2, at_s(6), 300ull << 20, 0);
        trace.memory(at_s(10), {.build_bytes = 0, .limit_bytes = 1000ull << 20}, {}, std::nullopt);
    }
    return nlohmann::json::parse(out.str());
}

}  // namespace

TEST_CASE("report: a trace's jobs, their waits and stops, and what they add up to") {
    std::string error;
    auto timeline = timeline_from_json(two_job_trace(), error);
    REQUIRE(timeline);
    CHECK(timeline->source == "trace");
    CHECK(timeline->wall_s == doctest::Approx(10));
    REQUIRE(timeline->jobs.size() == 2);
    const JobTimeline& a = timeline->jobs[0];
    CHECK(a.key == "/src/a.cpp");
    CHECK(a.run_s == doctest::Approx(0));
    CHECK(a.end_s == doctest::Approx(4));
    REQUIRE(a.stops.size() == 1);
    CHECK(a.stops[0].second == doctest::Approx(2));
    CHECK(a.peak_bytes == 700ull << 20);
    CHECK(timeline->jobs[1].run_s == doctest::Approx(4));
    CHECK(timeline->emergency_stops == 1);
    CHECK(timeline->limit_mib == 1000);

    BuildFindings found = findings_of(*timeline);
    CHECK(found.average_parallelism == doctest::Approx((3.0 + 2.0) / 10));  // a ran 3 s, b 2 s
    CHECK(found.peak_parallelism == 1);
    CHECK(found.jobs_waited == 1);
    CHECK(found.seconds_waited == doctest::Approx(4));
    CHECK(found.seconds_stopped == doctest::Approx(1));
    CHECK(found.memory_bound_share == doctest::Approx(0.4));  // b waited 0-4 s
    CHECK(found.serial_share == doctest::Approx(0.2));        // b alone, 4-6 s
    CHECK(found.idle_share == doctest::Approx(0.4));          // 6-10 s

    std::string text = report_text(*timeline, 5);
    CHECK(text.find("memgov report: 10.0 s, 2 jobs") != std::string::npos);
    CHECK(text.find("held for memory: 1 jobs waited 4.0 s in all, the longest /src/b.cpp (4.0 s)") !=
          std::string::npos);
    CHECK(text.find("emergency stops: 1, 1.0 s stopped in all") != std::string::npos);
    CHECK(text.find("memory-bound for 40 % of the build") != std::string::npos);
    CHECK(text.find("serial for 20 % of the build") != std::string::npos);
    CHECK(text.find("no job for 40 % of the build") != std::string::npos);
    CHECK(report_json(*timeline)["jobs_waited"] == 1);
}

TEST_CASE("report: --stats-json gives the same timeline without the stops' times, and OOM kills come from either") {
    nlohmann::json stats{{"wall_seconds", 10.0},
                         {"procs_seen", 7},
                         {"emergency_stops", 1},
                         {"jobs",
                          {{{"key", "/src/a.cpp"},
                            {"exec_at_seconds", 0.0},
                            {"run_at_seconds", 0.0},
                            {"exit_at_seconds", 4.0},
                            {"peak_bytes", 1},
                            {"oom_killed", false}},
                           {{"key", "/src/b.cpp"},
                            {"job", 42},
                            {"exec_at_seconds", 0.0},
                            {"run_at_seconds", 4.0},
                            {"exit_at_seconds", 6.0},
                            {"peak_bytes", 2},
                            {"oom_killed", true}}}}};
    std::string error;
    auto timeline = timeline_from_json(stats, error);
    REQUIRE(timeline);
    CHECK(timeline->source == "stats");
    CHECK(timeline->processes == 7);
    CHECK(findings_of(*timeline).seconds_waited == doctest::Approx(4));
    REQUIRE(timeline->oom_kills.size() == 1);
    CHECK(timeline->oom_kills[0].key == "/src/b.cpp");
    std::string text = report_text(*timeline, 5);
    CHECK(text.find("emergency stops: 1\n") != std::string::npos);
    CHECK(text.find("1 OOM kill: the build ran out of memory") != std::string::npos);
    CHECK(text.find("(OOM-killed)") != std::string::npos);
}

TEST_CASE("report: anything else is refused with the reason") {
    std::string error;
    CHECK_FALSE(timeline_from_json(nlohmann::json::object(), error));
    CHECK(error.find("neither") != std::string::npos);
    CHECK_FALSE(timeline_from_json(nlohmann::json::array(), error));
    CHECK(error.find("no job and no process") != std::string::npos);
    CHECK_FALSE(timeline_from_json({{"wall_seconds", 1.0}, {"jobs", {{{"no key", 1}}}}}, error));
    CHECK(error.find("not memgov --stats-json output") != std::string::npos);
}

TEST_CASE("report: what the kernel says held the jobs up: CPU, I/O, reclaim, faults") {
    nlohmann::json stats{{"wall_seconds", 4.0},
                         {"jobs",
                          {{{"key", "/src/a.cpp"},
                            {"exec_at_seconds", 0.0},
                            {"run_at_seconds", 0.0},
                            {"exit_at_seconds", 2.0},
                            {"cpu_seconds", 1.0},
                            {"run_delay_seconds", 1.0},
                            {"io_delay_seconds", 0.0},
                            {"reclaim_delay_seconds", 0.0},
                            {"major_faults", 3}},
                           {{"key", "/src/b.cpp"},
                            {"exec_at_seconds", 0.0},
                            {"run_at_seconds", 0.0},
                            {"exit_at_seconds", 2.0},
                            {"cpu_seconds", 1.5},
                            {"run_delay_seconds", 0.5},
                            {"io_delay_seconds", 0.0},
                            {"reclaim_delay_seconds", 0.0},
                            {"major_faults", 4}}}}};
    std::string error;
    auto timeline = timeline_from_json(stats, error);
    REQUIRE(timeline);
    BuildFindings found = findings_of(*timeline);
    CHECK(found.cpu_s == doctest::Approx(2.5));
    CHECK(found.run_delay_s == doctest::Approx(1.5));
    CHECK(found.major_faults == 7);
    CHECK(found.cpu_wait_share == doctest::Approx(1.5 / 4));  // of the 2.5 + 1.5 s they wanted a CPU
    std::string text = report_text(*timeline, 5);
    CHECK(text.find(
              "CPU: the jobs used 2.5 s and waited 1.5 s for a CPU (38 % of the time they wanted one); waited most: "
              "/src/a.cpp (1.0 s)") != std::string::npos);
    CHECK(text.find("stalls: 7 major faults; I/O and reclaim waits not measured") != std::string::npos);
    CHECK(text.find("CPU-bound: jobs waited for a CPU 38 %") != std::string::npos);
    stats["jobs"][1]["io_delay_seconds"] = 0.25;
    text = report_text(*timeline_from_json(stats, error), 5);
    CHECK(text.find("stalls: 0.2 s waiting for I/O, 0.0 s in direct reclaim, 7 major faults") != std::string::npos);
}

TEST_CASE("report: a trace cut short ends its open slices where it ends") {
    std::ostringstream out;
    {
        TraceWriter trace(out, at_s(0), "t");
        trace.job_started(1, "/src/a.cpp", false, at_s(0));
        trace.job_stopped(1, at_s(2), {});
        trace.memory(at_s(5), {.limit_bytes = 1}, {}, std::nullopt);
    }
    // Cut where memgov died, at the reading at 5 s: a.cpp's slices, its stop included, are open.
    auto whole = nlohmann::json::parse(out.str());
    nlohmann::json cut = nlohmann::json::array();
    for (const auto& event : whole) {
        cut.push_back(event);
        if (event.value("name", "") == "memory (MiB)") break;
    }
    std::string error;
    auto timeline = timeline_from_json(cut, error);
    REQUIRE(timeline);
    REQUIRE(timeline->jobs.size() == 1);
    CHECK(timeline->jobs[0].end_s == doctest::Approx(timeline->wall_s));
    REQUIRE(timeline->jobs[0].stops.size() == 1);
    CHECK(timeline->jobs[0].stops[0].first == doctest::Approx(2));
    BuildFindings found = findings_of(*timeline);
    CHECK(found.average_parallelism >= 0);
    CHECK(found.idle_share < 0.01);
}

TEST_CASE("report: a trace gives each job its RSS over time, the memory readings and the CPUs") {
    std::ostringstream out;
    {
        TraceWriter trace(out, at_s(0), "memgov -- make -j2", 8);
        trace.job_started(1, "/src/a.cpp", false, at_s(0));
        trace.job_started(2, "/src/b.cpp", true, at_s(0));
        trace.memory(at_s(1), {.build_bytes = 100ull << 20, .other_bytes = 20ull << 20, .limit_bytes = 1000ull << 20},
                     {{1, 100ull << 20}}, std::nullopt);
        trace.job_ended(1, at_s(2), 100ull << 20, 0);
        trace.job_admitted(2, at_s(2), {});
        trace.memory(at_s(3), {.build_bytes = 50ull << 20, .limit_bytes = 1000ull << 20}, {{2, 50ull << 20}},
                     std::nullopt);
        trace.job_ended(2, at_s(4), 50ull << 20, 0);
    }
    std::string error;
    auto timeline = timeline_from_json(nlohmann::json::parse(out.str()), error);
    REQUIRE(timeline);
    CHECK(timeline->cpus == 8u);
    CHECK(timeline->command == "memgov -- make -j2");
    REQUIRE(timeline->memory.size() == 2);
    CHECK(timeline->memory[0].other_mib == doctest::Approx(20));
    CHECK(timeline->memory[1].build_mib == doctest::Approx(50));
    // b took a's lane when a ended; the lane's counter after that is b's, not a's.
    REQUIRE(timeline->jobs.size() == 2);
    REQUIRE(timeline->jobs[0].rss_mib.size() == 1);
    CHECK(timeline->jobs[0].rss_mib[0] == std::pair(1.0, 100.0));
    REQUIRE(timeline->jobs[1].rss_mib.size() == 1);
    CHECK(timeline->jobs[1].rss_mib[0] == std::pair(3.0, 50.0));

    // The page: each state drawn, a band per job with memory, the key escaped, the limit.
    timeline->jobs[1].key = "/src/<b>&.cpp";
    std::string page = html_report(*timeline, "the report's <words>");
    CHECK(page.find("the report's &lt;words&gt;") != std::string::npos);
    CHECK(page.find("/src/&lt;b&gt;&amp;.cpp") != std::string::npos);
    CHECK(page.find("<b>") == std::string::npos);
    CHECK(page.find("class=\"waiting\"") != std::string::npos);  // b waited 0-2 s
    CHECK(page.find("class=\"stopped\"") == std::string::npos);  // nothing was
    auto count = [&](const std::string& what) {
        std::size_t n = 0;
        for (auto at = page.find(what); at != std::string::npos; at = page.find(what, at + 1)) ++n;
        return n;
    };
    CHECK(count("class=\"running\"") == 2);
    CHECK(count("class=\"band\"") == 3);  // everything else, a, b
    CHECK(count("class=\"limit\"") == 1);

    timeline->memory.clear();
    CHECK(html_report(*timeline, "").find("record the build with <code>--trace FILE</code>") != std::string::npos);
}
