#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "build_report.h"

using namespace memgov;

namespace {

ExecEvent exec_of(pid_t pid, pid_t job, bool root, std::vector<std::string> argv) {
    ExecEvent event;
    event.pid = pid;
    event.ppid = 1;
    event.job = job;
    event.job_root = root;
    event.argv = std::move(argv);
    event.comm = "x";
    event.timestamp_ns = 1'000'000'000;
    return event;
}

// The report is told the key the controller computed from argv in `cwd`.
void exec_in(BuildReport& report, const ExecEvent& event, const std::string& cwd) {
    report.on_exec(event, event.job_root ? job_key(event.argv, cwd) : JobKey{});
}

ExitEvent exit_of(pid_t pid, pid_t job, std::uint64_t peak, std::uint64_t job_peak, int status) {
    ExitEvent event;
    event.pid = pid;
    event.ppid = 1;
    event.job = job;
    event.peak_rss_bytes = peak;
    event.job_peak_bytes = job_peak;
    event.wait_status = status;
    event.timestamp_ns = 3'500'000'000;
    return event;
}

}  // namespace

TEST_CASE("jobs, processes and reused pids are reported apart") {
    BuildReport report;
    exec_in(report, exec_of(10, 10, true, {"g++", "-c", "a.cc"}), "/src");
    exec_in(report, exec_of(11, 10, false, {"cc1plus", "a.cc"}), "/src");
    report.on_exit(exit_of(11, 10, 300, 350, 0));
    report.on_exit(exit_of(10, 10, 50, 350, 0));
    exec_in(report, exec_of(11, 11, true, {"g++", "-c", "b.cc"}), "/src");  // pid reused
    report.on_exit(exit_of(11, 11, 80, 90, 2 << 8));

    REQUIRE(report.processes().size() == 3);
    REQUIRE(report.jobs().size() == 2);
    CHECK(report.jobs()[0].key.key == "/src/a.cc");
    CHECK(report.jobs()[0].peak_bytes == 350);
    CHECK(report.jobs()[1].peak_bytes == 90);
    CHECK(report.top_jobs(1).front()->key.key == "/src/a.cc");

    BuildSummary summary{.command = {"make"}, .exit_status = 2};
    summary.totals.peak_bytes = 400;
    summary.totals.events_dropped = 3;
    auto json = report.to_json(summary);
    CHECK(json["peak_bytes"] == 400);
    CHECK(json["events_dropped"] == 3);
    CHECK(json["processes"].size() == 3);
    CHECK(json["processes"][1]["argv"][0] == "cc1plus");
    CHECK(json["processes"][1]["peak_rss_bytes"] == 300);
    CHECK(json["jobs"][1]["exit_code"] == 2);
    CHECK(json["jobs"][0]["duration_seconds"] == doctest::Approx(2.5));

    auto text = report.summary_text(summary, 5);
    CHECK(text.find("3 events dropped") != std::string::npos);
    CHECK(text.find("/src/a.cc") < text.find("/src/b.cc"));
}

TEST_CASE("a process seen only at exit and a signal death are recorded") {
    BuildReport report;
    report.on_exit(exit_of(20, 0, 1000, 0, 9));  // forked shell, never exec'd, SIGKILLed
    auto json = report.to_json({});
    CHECK(json["processes"][0]["exit_code"] == 137);
    CHECK(json["processes"][0]["signal"] == 9);
}

TEST_CASE("OOM kills mark the process and its job") {
    BuildReport report;
    exec_in(report, exec_of(30, 30, true, {"ld", "-o", "big"}), "/o");
    OomKillEvent oom;
    oom.pid = 30;
    oom.job = 30;
    report.on_oom_kill(oom);
    report.on_exit(exit_of(30, 30, 5, 5, 9));
    CHECK(report.jobs()[0].oom_killed);
    CHECK(report.processes()[0].oom_killed);
}

TEST_CASE("non-UTF-8 argv is written as valid JSON") {
    BuildReport report;
    exec_in(report, exec_of(40, 0, false, {"sh", "\xff\xfe"}), "/");
    auto text = report.to_json({}).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    CHECK(nlohmann::json::parse(text)["processes"][0]["argv"][1] == "\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST_CASE("without --stats-json, exited processes are forgotten and the summary is unchanged") {
    BuildReport report(false);
    for (pid_t pid = 100; pid < 110; ++pid) exec_in(report, exec_of(pid, 100, pid == 100, {"sh", "-c", "x"}), "/");
    for (pid_t pid = 101; pid < 109; pid += 2) report.on_exit(exit_of(pid, 100, 5, 700, 0));  // 101 103 105 107
    REQUIRE(report.processes().size() == 6);
    for (const auto& process : report.processes()) CHECK((process.pid % 2 == 0 || process.pid == 109));
    exec_in(report, exec_of(104, 100, false, {"cc1", "y"}), "/");  // a live process execs again
    CHECK(report.processes().size() == 6);
    for (pid_t pid : {100, 102, 104, 106, 108, 109}) report.on_exit(exit_of(pid, 100, 5, 900, 0));
    CHECK(report.processes().empty());
    REQUIRE(report.jobs().size() == 1);
    CHECK(report.jobs()[0].peak_bytes == 900);
    CHECK(report.jobs()[0].key.key == "sh -c x");
    CHECK(report.jobs()[0].argv.empty());
    BuildSummary summary{.command = {"make"}};
    CHECK(report.summary_text(summary, 5).find("sh -c x") != std::string::npos);
}
