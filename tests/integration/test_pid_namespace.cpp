// memgov in a child pid namespace with its own /proc (what a container looks like), and a build
// step that enters a pid namespace of its own: the build is followed, gated and measured with
// the pids memgov's namespace gives its processes (its crash in one: test_faults.cpp); and in a
// cgroup namespace, where its cgroup shows as "/": its container's memory limit is found.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "harness.h"
#include "test_cgroup.h"

using namespace harness;

namespace {

constexpr std::uint64_t MiB = 1ull << 20;

const std::vector<std::string> own_pid_namespace{"unshare", "--pid", "--fork", "--mount-proc"};

// memgov <args> --stats-json FILE -- <command>, run inside `around`.
Outcome run_memgov_in(const std::vector<std::string>& around, const std::vector<std::string>& memgov_args,
                      const std::vector<std::string>& command) {
    ScratchDir stats;
    std::vector<std::string> argv = around;
    argv.push_back(memgov_bin());
    argv.insert(argv.end(), memgov_args.begin(), memgov_args.end());
    argv.insert(argv.end(), {"--ledger", "off", "--stats-json", stats.path() + "/stats.json", "--"});
    argv.insert(argv.end(), command.begin(), command.end());
    Outcome outcome;
    outcome.exit_status = run(argv, &outcome.out, &outcome.err);
    std::ifstream in(stats.path() + "/stats.json");
    std::stringstream text;
    text << in.rdbuf();
    if (!text.str().empty()) outcome.stats = nlohmann::json::parse(text.str());
    return outcome;
}

}  // namespace

TEST_CASE("in a child pid namespace with its own /proc, memgov follows, gates and measures the build") {
    ScratchDir build;
    ScratchDir profiles;
    build.write("Makefile", fmt::format("all: a b\na:\n\t{0} --mb 120 --hold-ms 300\nb:\n\t{0} --mb 121 --hold-ms 300\n"
                                        ".PHONY: all a b\n",
                                        memhog_bin()));
    auto outcome = run_memgov_in(
        own_pid_namespace,
        {"--gate", "memhog", "--limit", "200M", "--cold-estimate", "150M", "--profiles-dir", profiles.path()},
        {"make", "-s", "-j2", "-C", build.path()});
    INFO("memgov stderr: ", outcome.err);
    REQUIRE(outcome.exit_status == 0);
    REQUIRE(outcome.stats["jobs"].size() == 2);
    CHECK(outcome.stats["jobs_waited"] == 1);  // 2 x 150M predicted do not fit in 200M
    // memhog reports its pid as it sees it, in the namespace: the same numbers memgov reports.
    auto kernel = memhog_maxrss(outcome.out);
    REQUIRE(kernel.size() == 2);
    for (const auto& job : outcome.stats["jobs"]) {
        pid_t pid = job["job"].get<pid_t>();
        CAPTURE(pid);
        REQUIRE(kernel.contains(pid));
        CHECK(peaks_agree(job["peak_bytes"].get<std::uint64_t>(), kernel.at(pid)));
        CHECK(job["peak_bytes"].get<std::uint64_t>() > 100 * MiB);
    }
}

TEST_CASE("a build step that enters a pid namespace of its own is followed into it") {
    // From the host's namespace, and from a child one, where the step's namespace is a grandchild.
    for (bool memgov_in_a_namespace : {false, true}) {
        CAPTURE(memgov_in_a_namespace);
        ScratchDir build;
        build.write("Makefile", fmt::format("all:\n\tunshare --pid --fork {} --mb 130 --hold-ms 200\n", memhog_bin()));
        auto outcome = run_memgov_in(memgov_in_a_namespace ? own_pid_namespace : std::vector<std::string>{},
                                     {"--gate", "memhog"}, {"make", "-s", "-C", build.path()});
        INFO("memgov stderr: ", outcome.err);
        REQUIRE(outcome.exit_status == 0);
        REQUIRE(outcome.stats["jobs"].size() == 1);
        CHECK(outcome.stats["jobs"][0]["peak_bytes"].get<std::uint64_t>() > 130 * MiB);
        CHECK(outcome.stats["events_dropped"] == 0);
    }
}

TEST_CASE("in a cgroup namespace, memgov finds its container's memory limit in the host's hierarchy") {
    TestCgroup cgroup(700 * MiB);
    auto outcome = run_memgov_in(cgroup.wrap({"unshare", "--cgroup"}), {}, {"true"});
    INFO("memgov stderr: ", outcome.err);
    REQUIRE(outcome.exit_status == 0);
    CHECK(outcome.stats["limit_bytes"] == 700 * MiB);
    CHECK(outcome.stats["limit_set_by"] == "cgroup " + cgroup.dir());
    CHECK(outcome.err.find("warning") == std::string::npos);
}

TEST_CASE("in a child pid namespace whose /proc is the parent's, memgov refuses with 125 and says what to do") {
    auto outcome = run_memgov_in({"unshare", "--pid", "--fork"}, {}, {"true"});
    CHECK(outcome.exit_status == 125);
    CHECK(outcome.err.find("mount /proc in it") != std::string::npos);
    CHECK(std::count(outcome.err.begin(), outcome.err.end(), '\n') == 1);
}
