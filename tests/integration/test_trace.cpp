// --trace on real builds: well formed (tests/helpers/trace_check.h), with the held, running and
// stopped slices of a governed build in a cgroup, and an OOM kill with its victim.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <fstream>

#include "harness.h"
#include "test_cgroup.h"
#include "trace_check.h"

using namespace harness;

namespace {

constexpr std::uint64_t MiB = 1ull << 20;

nlohmann::json read_trace(const std::string& path) {
    std::ifstream in(path);
    REQUIRE(in);
    return nlohmann::json::parse(in);
}

std::size_t count(const std::vector<std::string>& names, const std::string& name) {
    return static_cast<std::size_t>(std::count(names.begin(), names.end(), name));
}

}  // namespace

TEST_CASE("--trace of a governed build in a cgroup: well formed, each job waiting, running and stopped") {
    ScratchDir build;
    ScratchDir work;
    std::string rules;
    for (int i = 0; i < 6; ++i)
        rules += fmt::format("j{}:\n\t{} --mb 100 --ramp-ms 500 --hold-ms 300\n", i, memhog_bin());
    build.write("Makefile", "all: j0 j1 j2 j3 j4 j5\n" + rules + ".PHONY: all j0 j1 j2 j3 j4 j5\n");
    TestCgroup cgroup(300 * MiB);
    // Guessed at 60M, three start and outgrow their guesses: the net stops one; the others wait.
    std::string trace_path = work.path() + "/trace.json";
    auto outcome = run_memgov({"--gate", "memhog", "--cold-estimate", "60M", "--profiles-dir", work.path(), "--ledger",
                               "off", "--trace", trace_path},
                              {"make", "-s", "-j6", "-C", build.path()}, &cgroup);
    INFO("memgov stderr: ", outcome.err);
    REQUIRE(outcome.exit_status == 0);
    auto trace = read_trace(trace_path);
    auto problems = trace_check::problems(trace);
    CHECK_MESSAGE(problems.empty(), problems.front());
    auto slices = trace_check::slice_names(trace, 1);
    CHECK(count(slices, "running") == 6);
    CHECK(outcome.stats["oom_kills"] == 0);
    CHECK(count(slices, "waiting") >= 1);
    CHECK(count(slices, "stopped") >= 1);
    CHECK(count(slices, "stopped") == outcome.stats["emergency_stops"].get<std::size_t>());
    std::size_t processes = trace_check::slice_names(trace, 2).size();
    CHECK(processes >= 6);  // the memhog jobs (make itself never execs here)
    bool memory_counter = false;
    for (const auto& event : trace) memory_counter |= event["ph"] == "C" && event["name"] == "memory (MiB)";
    CHECK(memory_counter);

    // memgov report reads it, and a trace cut short (memgov killed mid-build) too.
    std::string report;
    REQUIRE(run({memgov_bin(), "report", trace_path}, &report) == 0);
    CHECK(report.find("6 jobs") != std::string::npos);
    CHECK(report.find("emergency stops: ") != std::string::npos);
    CHECK(report.find("held for memory: ") != std::string::npos);
    std::ifstream whole(trace_path);
    std::string text((std::istreambuf_iterator<char>(whole)), std::istreambuf_iterator<char>());
    build.write("cut.json", text.substr(0, text.rfind(']')));
    std::string cut_report;
    CHECK(run({memgov_bin(), "report", build.path() + "/cut.json"}, &cut_report) == 0);
    CHECK(cut_report == report);
    std::string err;
    CHECK(run({memgov_bin(), "report", build.path() + "/Makefile"}, nullptr, &err) == 1);
    CHECK(err.find("not JSON") != std::string::npos);
}

TEST_CASE("--trace shows an OOM kill with its victim and what ran beside it") {
    ScratchDir work;
    TestCgroup cgroup(200 * MiB);
    std::string trace_path = work.path() + "/trace.json";
    auto outcome = run_memgov({"--no-gate", "--ledger", "off", "--trace", trace_path},
                              {memhog_bin(), "--mb", "400", "--ramp-ms", "200"}, &cgroup);
    CHECK(outcome.exit_status != 0);
    auto trace = read_trace(trace_path);
    CHECK(trace_check::problems(trace).empty());
    const nlohmann::json* kill = nullptr;
    for (const auto& event : trace)
        if (event["ph"] == "i" && event["name"] == "OOM kill") kill = &event;
    REQUIRE(kill);
    CHECK((*kill)["args"]["comm"] == "memhog");
    CHECK((*kill)["args"]["rss_mib"].get<int>() > 100);
    CHECK((*kill)["args"].contains("running"));
}
