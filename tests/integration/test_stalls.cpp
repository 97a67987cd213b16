// What held a job up, from the kernel's own per-task figures (read as each thread exits):
// waiting for a CPU, for block I/O, in direct reclaim; and memgov report's reading of them.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <filesystem>
#include <fstream>

#include "harness.h"
#include "test_cgroup.h"

using namespace harness;

namespace {

constexpr std::uint64_t MiB = 1ull << 20;

// Sets a sysctl (a /proc/sys file) for the test, and back as it was after.
class Sysctl {
public:
    Sysctl(std::string path, const std::string& value) : path_(std::move(path)) {
        std::ifstream(path_) >> before_;
        std::ofstream(path_) << value;
    }
    ~Sysctl() { std::ofstream(path_) << before_; }
    Sysctl(const Sysctl&) = delete;
    Sysctl& operator=(const Sysctl&) = delete;

private:
    std::string path_;
    std::string before_;
};

}  // namespace

TEST_CASE("two jobs on one CPU: each one's wait for it is measured, and the report calls the build CPU-bound") {
    ScratchDir build;
    std::string spin = fmt::format("taskset -c 0 {} --spin-ms 500", memhog_bin());
    build.write("Makefile", fmt::format("all: a b\na:\n\t{0}\nb:\n\t{0}\n.PHONY: all a b\n", spin));
    ScratchDir work;
    auto outcome = run_memgov({"--gate", "memhog", "--ledger", "off", "--profiles-dir", work.path()},
                              {"make", "-s", "-j2", "-C", build.path()});
    REQUIRE(outcome.exit_status == 0);
    REQUIRE(outcome.stats["jobs"].size() == 2);
    double waited = 0;
    for (const auto& job : outcome.stats["jobs"]) {
        CHECK(job["cpu_seconds"].get<double>() > 0.45);
        waited += job["run_delay_seconds"].get<double>();
    }
    // Half a second of CPU each on one CPU: together they waited about as long as one ran.
    CHECK(waited > 0.3);
    std::string stats_path = work.path() + "/stats.json";
    std::ofstream(stats_path) << outcome.stats.dump();
    std::string report;
    REQUIRE(run({memgov_bin(), "report", stats_path}, &report) == 0);
    CHECK(report.find("CPU-bound: jobs waited for a CPU") != std::string::npos);
}

TEST_CASE("with delay accounting on, a job's waits for I/O and in direct reclaim are measured") {
    ScratchDir work;
    std::string data = work.path() + "/data.bin";
    REQUIRE(run({"dd", "if=/dev/urandom", "of=" + data, "bs=1M", "count=300", "status=none"}) == 0);
    REQUIRE(run({"sync"}) == 0);
    std::ofstream("/proc/sys/vm/drop_caches") << "1";  // read from the disk, not the page cache
    Sysctl delay_accounting("/proc/sys/kernel/task_delayacct", "1");
    TestCgroup cgroup(100 * MiB);  // 300 MB through a 100 MiB cgroup: its page cache is reclaimed
    auto outcome = run_memgov({"--gate", "cat", "--ledger", "off", "--profiles-dir", work.path()},
                              {"sh", "-c", "cat " + data + " > /dev/null"}, &cgroup);
    REQUIRE(outcome.exit_status == 0);
    REQUIRE(outcome.stats["jobs"].size() == 1);
    const auto& job = outcome.stats["jobs"][0];
    INFO(job.dump());
    CHECK(job["io_delay_seconds"].get<double>() > 0);
    CHECK(job["reclaim_delay_seconds"].get<double>() > 0);
}
