// The tracker's promises, checked against the kernel's own ru_maxrss.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>

#include "harness.h"

using harness::memhog_bin;
using harness::run_memgov;

namespace {

const nlohmann::json* find_process(const nlohmann::json& stats, pid_t pid) {
    for (const auto& process : stats["processes"])
        if (process["pid"] == pid) return &process;
    return nullptr;
}

void check_every_memhog_peak(const harness::Outcome& outcome, std::size_t expected_processes) {
    auto kernel = harness::memhog_maxrss(outcome.out);
    REQUIRE(kernel.size() == expected_processes);
    for (auto [pid, maxrss] : kernel) {
        const auto* process = find_process(outcome.stats, pid);
        REQUIRE_MESSAGE(process, "pid ", pid, " missing from --stats-json");
        std::uint64_t tracked = (*process)["peak_rss_bytes"];
        CHECK_MESSAGE(harness::peaks_agree(tracked, maxrss), "pid ", pid, ": memgov ", tracked, " bytes, ru_maxrss ",
                      maxrss, " bytes");
    }
    CHECK(outcome.stats["events_dropped"] == 0);
}

}  // namespace

TEST_CASE("each process's peak equals its ru_maxrss") {
    SUBCASE("one long-lived process") {
        auto outcome = run_memgov({"--no-gate"}, {memhog_bin(), "--mb", "300", "--hold-ms", "200"});
        REQUIRE(outcome.exit_status == 0);
        check_every_memhog_peak(outcome, 1);
    }
    SUBCASE("a 200 MB spike held 5 ms") {
        for (int attempt = 0; attempt < 5; ++attempt) {
            auto outcome = run_memgov({"--no-gate"}, {memhog_bin(), "--mb", "200", "--hold-ms", "5"});
            REQUIRE(outcome.exit_status == 0);
            check_every_memhog_peak(outcome, 1);
        }
    }
    SUBCASE("a parent with children of different sizes") {
        auto outcome = run_memgov(
            {"--no-gate"}, {memhog_bin(), "--mb", "64", "--children", "4", "--child-mb", "120", "--hold-ms", "100"});
        REQUIRE(outcome.exit_status == 0);
        check_every_memhog_peak(outcome, 5);
    }
}

TEST_CASE("a job's peak is the peak of the sum of its processes") {
    // The parent and two children hold their memory at the same time.
    auto outcome = run_memgov({"--no-gate", "--gate", "memhog"}, {memhog_bin(), "--mb", "150", "--children", "2",
                                                                  "--child-mb", "100", "--hold-ms", "400"});
    REQUIRE(outcome.exit_status == 0);
    auto kernel = harness::memhog_maxrss(outcome.out);
    REQUIRE(kernel.size() == 3);
    std::uint64_t sum = 0;
    std::uint64_t largest = 0;
    for (auto [pid, maxrss] : kernel) {
        sum += maxrss;
        largest = std::max(largest, maxrss);
    }
    REQUIRE(outcome.stats["jobs"].size() == 1);
    const auto& job = outcome.stats["jobs"][0];
    std::uint64_t job_peak = job["peak_bytes"];
    CHECK(job_peak > largest + (150ull << 20));
    CHECK_MESSAGE(harness::peaks_agree(job_peak, sum), "job peak ", job_peak, ", sum of peaks ", sum);
    for (const auto& process : outcome.stats["processes"]) CHECK(process["job"] == job["job"]);
}

TEST_CASE("a thread's memory counts toward its process, and the thread is no process") {
    auto outcome = run_memgov({"--no-gate"}, {memhog_bin(), "--mb", "20", "--thread-mb", "200", "--hold-ms", "150"});
    REQUIRE(outcome.exit_status == 0);
    CHECK(outcome.stats["procs_seen"] == 1);
    CHECK(outcome.stats["processes"].size() == 1);
    check_every_memhog_peak(outcome, 1);
    CHECK(outcome.stats["processes"][0]["peak_rss_bytes"].get<std::uint64_t>() > (220ull << 20));
}

TEST_CASE("a process outside the build changes nothing") {
    pid_t outsider = fork();
    if (outsider == 0) {
        execl(memhog_bin().c_str(), "memhog", "--mb", "500", "--hold-ms", "3000", nullptr);
        _exit(127);
    }
    usleep(500'000);  // the outsider now holds its 500 MB
    auto outcome = run_memgov({"--no-gate"}, {memhog_bin(), "--mb", "10", "--hold-ms", "300"});
    kill(outsider, SIGKILL);
    waitpid(outsider, nullptr, 0);
    REQUIRE(outcome.exit_status == 0);
    CHECK(outcome.stats["processes"].size() == 1);
    CHECK(outcome.stats["peak_bytes"].get<std::uint64_t>() < (100ull << 20));
    check_every_memhog_peak(outcome, 1);
}

TEST_CASE("1000 short-lived execs all arrive with exact argv and nothing dropped") {
    constexpr int count = 1000;
    std::string script = "i=0; while [ $i -lt " + std::to_string(count) +
                         " ]; do i=$((i+1)); /bin/true \"arg-$i\" \"with space $i\" ''; done";
    auto outcome = run_memgov({"--no-gate"}, {"/bin/sh", "-c", script});
    REQUIRE(outcome.exit_status == 0);
    CHECK(outcome.stats["events_dropped"] == 0);
    CHECK(outcome.stats["undecodable_records"] == 0);
    std::set<int> seen;
    for (const auto& process : outcome.stats["processes"]) {
        const auto& argv = process["argv"];
        if (argv.size() != 4 || argv[0] != "/bin/true") continue;
        std::string first = argv[1];
        int i = std::stoi(first.substr(4));
        CHECK(first == "arg-" + std::to_string(i));
        CHECK(argv[2] == "with space " + std::to_string(i));
        CHECK(argv[3] == "");
        CHECK(process["exit_code"] == 0);
        seen.insert(i);
    }
    CHECK(seen.size() == count);
}

TEST_CASE("exit status and signal deaths pass through") {
    CHECK(run_memgov({"--no-gate"}, {"/bin/sh", "-c", "exit 7"}).exit_status == 7);
    CHECK(run_memgov({}, {"/bin/sh", "-c", "kill -TERM $$"}).exit_status == 128 + SIGTERM);
    auto missing = run_memgov({}, {"/nonexistent/compiler"});
    CHECK(missing.exit_status == 127);
    CHECK(missing.err.find("command not found") != std::string::npos);
}

TEST_CASE("without BPF privilege memgov refuses with its own diagnosis") {
    std::string err;
    int status = harness::run({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                               "--bounding-set=-all", harness::memgov_bin(), "--", "true"},
                              nullptr, &err);
    CHECK(status == 125);
    CHECK_MESSAGE(err.find("no permission to load BPF programs") != std::string::npos, err);
    CHECK(err.find("ulimit") == std::string::npos);
    CHECK(std::count(err.begin(), err.end(), '\n') == 1);

    std::string out;
    status = harness::run({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                           "--bounding-set=-all", harness::memgov_bin(), "check"},
                          &out, nullptr);
    CHECK(status == 1);
    CHECK(out.find("FAIL  privilege") != std::string::npos);
}
