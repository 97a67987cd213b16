// The trace as the controller writes it: well formed (tests/helpers/trace_check.h), lanes that
// show concurrency, each job's states nested, counters only when they move.
#include <doctest/doctest.h>
#include <sys/wait.h>

#include <sstream>

#include "fake_build.h"
#include "trace_check.h"
#include "trace_writer.h"

using namespace fake_build;

namespace {

Clock::time_point at_ms(int ms) { return Clock::time_point(std::chrono::milliseconds(1'000'000 + ms)); }
const Clock::time_point zero = at_ms(0);

std::vector<const nlohmann::json*> named(const nlohmann::json& trace, const std::string& phase,
                                         const std::string& name) {
    std::vector<const nlohmann::json*> found;
    for (const auto& event : trace)
        if (event["ph"] == phase && event.value("name", "") == name) found.push_back(&event);
    return found;
}

}  // namespace

TEST_CASE("trace: a job waits, runs, is stopped and resumed, on a lane another job reuses") {
    std::ostringstream out;
    {
        TraceWriter trace(out, zero, "memgov -- make -j2");
        trace.process_exec(10, {"/usr/bin/g++", "-c", "a.cpp"}, at_ms(1));
        trace.job_started(10, "/src/a.cpp", true, at_ms(1));
        trace.job_started(11, "/src/b.cpp", false, at_ms(2));
        trace.job_admitted(10, at_ms(5), {{"needed_mib", 500}});
        trace.job_stopped(10, at_ms(7), {{"below_floor", false}});
        trace.job_resumed(10, at_ms(9), {});
        trace.job_ended(11, at_ms(10), 100 << 20, 0);
        trace.process_exit(10, at_ms(12), 400 << 20);
        trace.job_ended(10, at_ms(12), 400 << 20, 0);
        trace.job_started(12, "/src/c.cpp", false, at_ms(13));  // lane 1 again: a.cpp has ended
        trace.oom_kill(12, "cc1plus", at_ms(14), {{"key", "/src/c.cpp"}});
        // c.cpp is never heard of again: the trace closes it where it ends.
    }
    auto trace = nlohmann::json::parse(out.str());
    INFO(out.str());
    CHECK(trace_check::problems(trace).empty());
    CHECK(trace_check::slice_names(trace, 1) == std::vector<std::string>{"/src/a.cpp", "waiting", "/src/b.cpp",
                                                                         "running", "running", "stopped", "/src/c.cpp",
                                                                         "running"});
    auto lane_of = [&](const std::string& key) { return named(trace, "B", key).at(0)->at("tid").get<int>(); };
    CHECK(lane_of("/src/a.cpp") == 1);
    CHECK(lane_of("/src/b.cpp") == 2);
    CHECK(lane_of("/src/c.cpp") == 1);
    auto admitted = named(trace, "i", "admitted");
    REQUIRE(admitted.size() == 1);
    CHECK(admitted[0]->at("ts") == 5000.0);
    CHECK(admitted[0]->at("args")["needed_mib"] == 500);
    auto oom = named(trace, "i", "OOM kill");
    REQUIRE(oom.size() == 1);
    CHECK(oom[0]->at("args")["victim"] == 12);
    CHECK(oom[0]->at("s") == "g");
    CHECK(named(trace, "M", "thread_name").size() == 3);  // two job lanes, one process lane
    auto process = named(trace, "B", "g++");
    REQUIRE(process.size() == 1);
    CHECK(process[0]->at("pid") == 2);
    CHECK(process[0]->at("args")["argv"] == "/usr/bin/g++ -c a.cpp");
}

TEST_CASE("trace: a stop recorded after the job's exit record still ends after it began") {
    std::ostringstream out;
    {
        TraceWriter trace(out, zero, "t");
        trace.job_started(10, "/src/a.cpp", false, at_ms(1));
        trace.job_stopped(10, at_ms(20), {});
        trace.job_ended(10, at_ms(15), 1, 0);  // the kernel stamped its exit before the stop
    }
    auto trace = nlohmann::json::parse(out.str());
    CHECK(trace_check::problems(trace).empty());
}

TEST_CASE("trace: counters are written when they move, and every second anyway, pressure as shares of time") {
    std::ostringstream out;
    {
        TraceWriter trace(out, zero, "t");
        trace.job_started(10, "/src/a.cpp", false, at_ms(0));
        MemorySample sample{.build_bytes = 100 << 20, .available_bytes = 900 << 20, .limit_bytes = 1000 << 20};
        Pressure pressure;
        trace.memory(at_ms(0), sample, {{10, 100 << 20}}, pressure);
        sample.build_bytes += 512 << 10;  // half a MiB: not worth a point
        trace.memory(at_ms(100), sample, {{10, 100 << 20}}, std::nullopt);
        sample.build_bytes += 1 << 20;
        pressure.total_us[Pressure::memory_some] = 250'000;  // a quarter of the next second
        trace.memory(at_ms(1000), sample, {{10, 101 << 20}}, pressure);
        trace.memory(at_ms(2100), sample, {{10, 101 << 20}}, std::nullopt);  // unchanged, a second on
    }
    auto trace = nlohmann::json::parse(out.str());
    CHECK(trace_check::problems(trace).empty());
    auto memory = named(trace, "C", "memory (MiB)");
    REQUIRE(memory.size() == 3);
    CHECK(memory[0]->at("args")["build"] == 100.0);
    CHECK(memory[1]->at("args")["build"] == 101.5);
    CHECK(memory[2]->at("ts") == 2'100'000.0);
    auto rss = named(trace, "C", "lane 1 RSS (MiB)");
    REQUIRE(rss.size() >= 2);
    CHECK(rss[1]->at("args")["rss"] == 101.0);
    auto pressure = named(trace, "C", "pressure (% of time stalled)");
    REQUIRE(pressure.size() == 1);
    CHECK(pressure[0]->at("args")["memory some"] == 25.0);
}

TEST_CASE("trace check: what Perfetto would misread is found") {
    auto bad = nlohmann::json::parse(R"([
        {"ph":"B","pid":1,"tid":1,"ts":5,"name":"a"},
        {"ph":"E","pid":1,"tid":1,"ts":4},
        {"ph":"E","pid":1,"tid":1,"ts":6},
        {"ph":"C","pid":1,"tid":0,"ts":1,"name":"c","args":{"x":"high"}},
        {"ph":"Q","pid":1,"tid":0,"ts":1,"name":"q"},
        {"ph":"B","pid":"1","tid":1,"ts":1,"name":"b"},
        {"ph":"i","pid":1,"tid":1,"ts":-1,"name":"n"},
        {"ph":"B","pid":1,"tid":2,"ts":1,"name":"open"}
    ])");
    auto found = trace_check::problems(bad);
    CHECK(found.size() == 7);
}

TEST_CASE("controller: with a trace, a held job's waiting and running and the decision behind them") {
    std::ostringstream out;
    {
        TraceWriter trace(out, Clock::time_point(1000s), "t");
        Build build(settings_for(1024, 512));
        // The Build's controller was made without a trace: this one is wired like run_command's.
        BuildController controller(build.settings,
                                   {.tracker = build.tracker,
                                    .store = build.store,
                                    .log = build.log,
                                    .environment = {.now = [&] { return build.now; },
                                                    .read_memory = [&] { return build.memory(); },
                                                    .process_cwd = [](pid_t) { return std::string("/src"); },
                                                    .file_head = [](const std::string&) { return std::string(); },
                                                    .wall_time = [] { return std::time_t(0); }},
                                    .trace = &trace});
        auto exec = [&](pid_t pid, const std::string& source) {
            build.tracker.usage[pid] = JobUsage{0, 0, 1};
            controller.handle(ExecEvent{
                .pid = pid,
                .ppid = 1,
                .job = pid,
                .job_root = true,
                .waiting = true,
                .timestamp_ns = static_cast<std::uint64_t>(
                    std::chrono::duration_cast<std::chrono::nanoseconds>(build.now.time_since_epoch()).count()),
                .comm = "cc",
                .filename = "/usr/bin/cc",
                .argv = {"cc", "-c", source}});
        };
        exec(100, "a.c");
        exec(101, "b.c");
        build.now += 100ms;
        build.tracker.usage[100] = JobUsage{300 * MiB, 300 * MiB, 1};
        controller.tick();
        build.tracker.usage.erase(100);
        controller.handle(
            ExitEvent{.pid = 100,
                      .ppid = 1,
                      .job = 100,
                      .wait_status = 0,
                      .timestamp_ns = static_cast<std::uint64_t>(
                          std::chrono::duration_cast<std::chrono::nanoseconds>(build.now.time_since_epoch()).count()),
                      .peak_rss_bytes = 300 * MiB,
                      .job_peak_bytes = 300 * MiB,
                      .comm = "cc"});
        build.now += 20ms;
        controller.tick();
    }
    auto trace = nlohmann::json::parse(out.str());
    INFO(out.str());
    CHECK(trace_check::problems(trace).empty());
    CHECK(trace_check::slice_names(trace, 1) ==
          std::vector<std::string>{"/src/a.c", "waiting", "running", "/src/b.c", "waiting", "running"});
    CHECK(named(trace, "i", "does not fit").size() == 1);
    auto admitted = named(trace, "i", "admitted");
    REQUIRE(admitted.size() == 2);
    CHECK(admitted[1]->at("args")["waited_s"].get<double>() == doctest::Approx(0.12));
    CHECK_FALSE(named(trace, "C", "memory (MiB)").empty());
}
