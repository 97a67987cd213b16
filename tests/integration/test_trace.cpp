// --trace on real builds: well formed (tests/helpers/trace_check.h), with the held, running and
// stopped slices of a governed build in a cgroup, and an OOM kill with its victim; memgov
// report's page of the demo build, rendered by a real browser.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
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

// As userspace/ui/html_report.cpp draws them.
constexpr const char* waiting_colour = "#f28e2b";
// Each job's own colour, as the page draws its running bar (and, lighter, its memory band).
constexpr const char* job_colours[] = {"#4e79a7", "#59a14f", "#9c755f", "#76b7b2",
                                       "#b07aa1", "#8cd17d", "#86bcb6", "#a0cbe8"};
constexpr const char* limit_colour = "#d62728";

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
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

    // The page draws every state the trace has (Chromium renders it in the demo's test below).
    std::string page_path = work.path() + "/page.html";
    REQUIRE(run({memgov_bin(), "report", trace_path, "--html", page_path}) == 0);
    std::string page = read_file(page_path);
    for (const char* state : {"class=\"waiting\"", "class=\"running\"", "class=\"stopped\"", "class=\"limit\""})
        CHECK_MESSAGE(page.find(state) != std::string::npos, state);
    CHECK(run({memgov_bin(), "report", trace_path, "--html", work.path() + "/no/such/dir/page.html"}, nullptr, &err) ==
          1);
    CHECK(err.find("cannot write") != std::string::npos);

    // What if: six 100 MB jobs in 300 MiB, replayed with room for all, and with too little for one.
    std::string what_if;
    REQUIRE(run({memgov_bin(), "report", trace_path, "--limit", "1G,90M", "--jobs", "6"}, &what_if, &err) == 0);
    INFO(what_if);
    CHECK(what_if.find("-j6 (the most jobs live at once)") != std::string::npos);
    CHECK(what_if.find("OOM at") != std::string::npos);  // plain, in 90 MiB
    CHECK(what_if.find("memgov's run too needed more than the limit") != std::string::npos);
    std::string json_text;
    REQUIRE(run({memgov_bin(), "report", trace_path, "--json", "--limit", "1G"}, &json_text) == 0);
    auto answers = nlohmann::json::parse(json_text)["what_if"]["answers"];
    REQUIRE(answers.size() == 1);
    CHECK(answers[0]["memgov"]["jobs_waited"] == 0);  // six fit at once in 1 GiB
    CHECK(answers[0]["plain"]["out_of_memory"] == false);
    CHECK(run({memgov_bin(), "report", trace_path, "--limit", "lots"}, nullptr, &err) == 2);
    CHECK(err.find("expected a size such as") != std::string::npos);
    build.write("stats.json", outcome.stats.dump());
    CHECK(run({memgov_bin(), "report", build.path() + "/stats.json", "--limit", "1G"}, nullptr, &err) == 1);
    CHECK(err.find("record the build with --trace FILE") != std::string::npos);
}

TEST_CASE("memgov report --html of the demo build: Chromium renders its jobs, their waits and the limit") {
    ScratchDir work;
    std::filesystem::copy(std::filesystem::path(MEMGOV_SOURCE_DIR) / "tools/demo/project", work.path() + "/project",
                          std::filesystem::copy_options::recursive);
    TestCgroup cgroup(800 * MiB);  // as tools/demo/run.sh builds it: two heavy units do not fit together
    std::string trace_path = work.path() + "/trace.json";
    auto outcome = run_memgov({"--profiles-dir", work.path() + "/profiles", "--ledger", "off", "--trace", trace_path},
                              {"make", "-s", "-j4", "-C", work.path() + "/project"}, &cgroup);
    INFO("memgov stderr: ", outcome.err);
    REQUIRE(outcome.exit_status == 0);
    CHECK(outcome.stats["oom_kills"] == 0);
    std::string page_path = work.path() + "/page.html";
    std::string text;
    REQUIRE(run({memgov_bin(), "report", trace_path, "--html", page_path}, &text) == 0);
    CHECK(text.find("held for memory: ") != std::string::npos);
    CHECK(read_file(page_path).find("parser.cpp") != std::string::npos);

    std::string screenshot = work.path() + "/page.png";
    std::string err;
    REQUIRE_MESSAGE(run({"timeout", "120", "chromium", "--headless", "--no-sandbox", "--disable-gpu",
                         "--window-size=1250,1000", "--screenshot=" + screenshot, "file://" + page_path},
                        nullptr, &err) == 0,
                    "Chromium (tools/install-deps.sh installs it) could not render the page: ", err);
    std::string counts;
    std::vector<std::string> argv{"python3", std::string(MEMGOV_SOURCE_DIR) + "/tests/helpers/png_colours.py",
                                  screenshot, waiting_colour, limit_colour};
    argv.insert(argv.end(), std::begin(job_colours), std::end(job_colours));
    REQUIRE(run(argv, &counts) == 0);
    auto pixels = nlohmann::json::parse(counts);
    // More than the legend's 12x12 swatch of each: the jobs' bars and the limit's line are drawn.
    CHECK(pixels[waiting_colour].get<int>() > 1000);  // two heavy units cannot run together: one waits
    int running = 0;
    for (const char* colour : job_colours) running += pixels[colour].get<int>();
    CHECK(running > 3000);  // the jobs run most of the build, on a page 1,100 pixels wide
    CHECK(pixels[limit_colour].get<int>() > 300);
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
