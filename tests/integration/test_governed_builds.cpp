// memgov governing real builds: where plain make is OOM-killed inside a memory cgroup,
// memgov finishes, cold and warm; and make (recursive), ninja and CMake builds are governed.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "harness.h"
#include "test_cgroup.h"

using namespace harness;

namespace {

constexpr std::uint64_t MiB = 1ull << 20;

// Heavy-tailed job sizes (MB): three big ones first, so that plain make -j8 starts them together.
const std::vector<int> memstorm_sizes = {420, 420, 420, 60, 80, 100, 70, 120, 90, 300, 60, 80, 200, 70, 110, 65};

std::string memstorm_makefile() {
    std::string all = "all:";
    std::string rules;
    for (std::size_t i = 0; i < memstorm_sizes.size(); ++i) {
        all += fmt::format(" j{}", i);
        rules += fmt::format("j{}:\n\t{} --mb {} --ramp-ms 300 --hold-ms 200\n", i, memhog_bin(), memstorm_sizes[i]);
    }
    return all + "\n" + rules + ".PHONY: all" + all.substr(4) + "\n";
}

void check_clean_governed_run(const Outcome& outcome, const TestCgroup& cgroup, std::uint64_t oom_before,
                              std::size_t jobs) {
    INFO("memgov stderr: ", outcome.err);
    CHECK(outcome.exit_status == 0);
    CHECK(cgroup.oom_kills() == oom_before);
    CHECK(outcome.stats["oom_kills"] == 0);
    CHECK(outcome.stats["events_dropped"] == 0);
    REQUIRE(outcome.stats["jobs"].size() == jobs);
    for (const auto& job : outcome.stats["jobs"]) CHECK(job["exit_code"] == 0);
}

}  // namespace

TEST_CASE("memstorm: plain make -j8 is OOM-killed in 1 GiB, memgov finishes cold and warm, warm beats -j1") {
    ScratchDir build;
    ScratchDir profiles;
    build.write("Makefile", memstorm_makefile());
    TestCgroup cgroup(1024 * MiB);

    std::uint64_t before = cgroup.oom_kills();
    int plain_status = run(cgroup.wrap({"make", "-s", "-j8", "-C", build.path()}));
    CHECK(plain_status != 0);
    REQUIRE_MESSAGE(cgroup.oom_kills() > before, "plain make was not OOM-killed: the test would prove nothing");

    std::vector<std::string> memgov_args{"--gate", "memhog", "--profiles-dir", profiles.path(), "-v"};
    std::vector<std::string> make{"make", "-s", "-j8", "-C", build.path()};
    std::uint64_t oom_before_cold = cgroup.oom_kills();
    auto cold = run_memgov(memgov_args, make, &cgroup);
    check_clean_governed_run(cold, cgroup, oom_before_cold, memstorm_sizes.size());
    CHECK(std::filesystem::exists(profiles.path() + "/profiles.json"));
    // Each job the net did not stop learned its growth curve (a stopped job's timing says
    // nothing of its next run): it ran its 300 + 200 ms (longer side by side), and reached half
    // its peak during its ramp, well before its 200 ms hold at the peak ended. (The ramp's
    // speed depends on the machine's load; the shape does not.)
    std::ifstream store(profiles.path() + "/profiles.json");
    auto learned = nlohmann::json::parse(store)["profiles"];
    REQUIRE(learned.size() == std::set<int>(memstorm_sizes.begin(), memstorm_sizes.end()).size());  // one key a size
    std::size_t curves = 0;
    for (const auto& [key, profile] : learned.items()) curves += profile.contains("duration_ms");
    CHECK(curves + cold.stats["emergency_stops"].get<std::size_t>() >= learned.size());
    REQUIRE(curves > 0);
    for (const auto& [key, profile] : learned.items()) {
        CAPTURE(key);
        if (!profile.contains("duration_ms")) continue;
        int duration = profile["duration_ms"].get<int>();
        CHECK(duration >= 500);
        CHECK(duration < 10000);
        CHECK(profile["reach_ms"][7].get<int>() < duration - 200);
        CHECK(profile["reach_ms"][15].get<int>() <= duration);
    }
    std::string shown;
    auto items = learned.items();
    auto with_curve = std::find_if(items.begin(), items.end(),
                                   [](const auto& entry) { return entry.value().contains("duration_ms"); });
    REQUIRE(run({memgov_bin(), "profiles", "show", "--profiles-dir", profiles.path(), with_curve.key()}, &shown) == 0);
    CHECK(shown.find("growth     25% by") != std::string::npos);

    auto warm = run_memgov(memgov_args, make, &cgroup);
    check_clean_governed_run(warm, cgroup, oom_before_cold, memstorm_sizes.size());
    CHECK(warm.err.find("cold: nothing known yet") == std::string::npos);

    int serial_status = 0;
    double serial = timed_run(cgroup.wrap({"make", "-s", "-j1", "-C", build.path()}), &serial_status);
    REQUIRE(serial_status == 0);
    double warm_seconds = warm.stats["wall_seconds"];
    MESSAGE(fmt::format("memstorm: cold {:.2f}s, warm {:.2f}s, make -j1 {:.2f}s",
                        cold.stats["wall_seconds"].get<double>(), warm_seconds, serial));
    CHECK(warm_seconds < serial);
}

TEST_CASE("real g++: two heavy translation units OOM plain make -j2 in 600 MiB, memgov builds them") {
    ScratchDir build;
    ScratchDir profiles;
    auto demo = std::filesystem::path(MEMGOV_SOURCE_DIR) / "tools/demo/project/src";
    std::filesystem::copy_file(demo / "heavy.h", std::filesystem::path(build.path()) / "heavy.h");
    std::filesystem::copy_file(demo / "parser.cpp", std::filesystem::path(build.path()) / "a.cpp");
    std::filesystem::copy_file(demo / "parser.cpp", std::filesystem::path(build.path()) / "b.cpp");
    build.write("Makefile",
                "all: a.o b.o\n%.o: %.cpp heavy.h\n\tg++ -O2 -std=c++17 -c $< -o $@\nclean:\n\trm -f *.o\n");
    TestCgroup cgroup(600 * MiB);

    std::uint64_t before = cgroup.oom_kills();
    CHECK(run(cgroup.wrap({"make", "-s", "-j2", "-C", build.path()})) != 0);
    REQUIRE_MESSAGE(cgroup.oom_kills() > before, "plain make was not OOM-killed: the test would prove nothing");

    for (const std::string pass : {"cold", "warm"}) {
        CAPTURE(pass);
        run({"make", "-s", "-C", build.path(), "clean"});
        std::uint64_t oom_before = cgroup.oom_kills();
        auto outcome =
            run_memgov({"--profiles-dir", profiles.path(), "-v"}, {"make", "-s", "-j2", "-C", build.path()}, &cgroup);
        check_clean_governed_run(outcome, cgroup, oom_before, 2);
        for (const auto& job : outcome.stats["jobs"]) {
            std::string key = job["key"];
            CHECK((key.ends_with("/a.cpp") || key.ends_with("/b.cpp")));
            CHECK(job["peak_bytes"].get<std::uint64_t>() > 200 * MiB);
        }
    }
}

namespace {

std::string memhog_rule(int mb) { return fmt::format("{} --mb {} --ramp-ms 100 --hold-ms 100", memhog_bin(), mb); }

// Four 150 MB jobs under --limit 350M: at most two run at once.
void check_governed(const Outcome& outcome, std::size_t jobs) {
    INFO("memgov stderr: ", outcome.err);
    CHECK(outcome.exit_status == 0);
    REQUIRE(outcome.stats["jobs"].size() == jobs);
    CHECK(outcome.stats["jobs_waited"].get<int>() > 0);
    CHECK(outcome.stats["peak_bytes"].get<std::uint64_t>() < 350 * MiB);
}

}  // namespace

TEST_CASE("recursive make is governed through the sub-make") {
    ScratchDir build;
    ScratchDir profiles;
    build.write("Makefile", "all:\n\t$(MAKE) -s -C sub\n");
    std::string sub = "all: a b c d\n";
    for (const char* target : {"a", "b", "c", "d"}) sub += fmt::format("{}:\n\t{}\n", target, memhog_rule(150));
    build.write("sub/Makefile", sub + ".PHONY: all a b c d\n");
    auto outcome = run_memgov({"--gate", "memhog", "--limit", "350M", "--profiles-dir", profiles.path()},
                              {"make", "-s", "-j4", "-C", build.path()});
    check_governed(outcome, 4);
}

TEST_CASE("ninja is governed") {
    ScratchDir build;
    ScratchDir profiles;
    std::string ninja = fmt::format("rule hog\n  command = {} && touch $out\n", memhog_rule(150));
    for (const char* target : {"a", "b", "c", "d"}) ninja += fmt::format("build {}: hog\n", target);
    build.write("build.ninja", ninja);
    auto outcome = run_memgov({"--gate", "memhog", "--limit", "350M", "--profiles-dir", profiles.path()},
                              {"ninja", "-j4", "-C", build.path()});
    check_governed(outcome, 4);
}

TEST_CASE("a CMake-generated build is governed, jobs keyed on their sources") {
    ScratchDir source;
    ScratchDir build;
    ScratchDir profiles;
    auto demo = std::filesystem::path(MEMGOV_SOURCE_DIR) / "tools/demo/project/src";
    for (const char* file : {"heavy.h", "util.cpp", "lexer.cpp"})
        std::filesystem::copy_file(demo / file, std::filesystem::path(source.path()) / file);
    source.write("CMakeLists.txt",
                 "cmake_minimum_required(VERSION 3.16)\nproject(governed CXX)\n"
                 "add_library(governed STATIC util.cpp lexer.cpp)\n");
    REQUIRE(run({"cmake", "-S", source.path(), "-B", build.path(), "-G", "Unix Makefiles"}) == 0);
    auto outcome = run_memgov({"--profiles-dir", profiles.path()}, {"cmake", "--build", build.path(), "-j2"});
    INFO("memgov stderr: ", outcome.err);
    CHECK(outcome.exit_status == 0);
    std::set<std::string> keys;
    for (const auto& job : outcome.stats["jobs"]) keys.insert(job["key"].get<std::string>());
    CHECK(keys.contains(source.path() + "/util.cpp"));
    CHECK(keys.contains(source.path() + "/lexer.cpp"));
}

TEST_CASE("the procfs backend governs without any privilege, as the fallback") {
    ScratchDir build(true);
    ScratchDir profiles(true);
    std::string makefile = "all: a b c d\n";
    for (const char* target : {"a", "b", "c", "d"})
        makefile += fmt::format("{}:\n\t{} --mb 150 --ramp-ms 500 --hold-ms 500\n", target, memhog_bin());
    build.write("Makefile", makefile + ".PHONY: all a b c d\n");
    std::string out;
    std::string err;
    int status = run({"setpriv",
                      "--reuid=65534",
                      "--regid=65534",
                      "--clear-groups",
                      memgov_bin(),
                      "--backend=procfs",
                      "--poll-interval",
                      "50",
                      "--gate",
                      "memhog",
                      "--limit",
                      "350M",
                      "--profiles-dir",
                      profiles.path() + "/store",
                      "--stats-json",
                      build.path() + "/stats.json",
                      "--",
                      "make",
                      "-s",
                      "-j4",
                      "-C",
                      build.path()},
                     &out, &err);
    INFO(err);
    REQUIRE(status == 0);
    std::ifstream in(build.path() + "/stats.json");
    auto stats = nlohmann::json::parse(in);
    CHECK(stats["backend"] == "procfs");
    CHECK(stats["jobs"].size() == 4);
    CHECK(stats["jobs_waited"].get<int>() > 0);
    CHECK(stats["peak_bytes"].get<std::uint64_t>() < 350 * MiB);
}
