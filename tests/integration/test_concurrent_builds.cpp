// Several builds at once in one memory cgroup: each memgov leaves the others what their jobs
// are about to take, through the host ledger (a private one per test: --ledger DIR).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <future>

#include "harness.h"
#include "test_cgroup.h"

using namespace harness;

namespace {

constexpr std::uint64_t MiB = 1ull << 20;

// Two 600 MB and two 200 MB jobs: alone, a build fits (one heavy and both light at once).
std::string two_heavy_two_light() {
    std::string rules;
    int sizes[] = {600, 600, 200, 200};
    for (int i = 0; i < 4; ++i)
        rules += fmt::format("j{}:\n\t{} --mb {} --ramp-ms 400 --hold-ms 300\n", i, memhog_bin(), sizes[i]);
    return "all: j0 j1 j2 j3\n" + rules + ".PHONY: all j0 j1 j2 j3\n";
}

struct Pair {
    ScratchDir first;
    ScratchDir second;
    ScratchDir first_profiles;
    ScratchDir second_profiles;
    ScratchDir ledger_parent;
    TestCgroup cgroup{1100 * MiB};

    Pair() {
        first.write("Makefile", two_heavy_two_light());
        second.write("Makefile", two_heavy_two_light());
    }
    std::vector<std::string> args(const ScratchDir& profiles, bool ledger) const {
        return {"--gate",
                "memhog",
                "--profiles-dir",
                profiles.path(),
                "--ledger",
                ledger ? ledger_parent.path() + "/ledger" : "off",
                "-v"};
    }
    static std::vector<std::string> make(const ScratchDir& build) {
        return {"timeout", "120", "make", "-s", "-j4", "-C", build.path()};
    }
    // Both builds at once, each under its own memgov.
    std::pair<Outcome, Outcome> run_both(bool ledger) const {
        auto one = std::async(std::launch::async,
                              [&] { return run_memgov(args(first_profiles, ledger), make(first), &cgroup); });
        auto other = run_memgov(args(second_profiles, ledger), make(second), &cgroup);
        return {one.get(), other};
    }
};

void check_clean(const Outcome& outcome) {
    INFO("memgov stderr: ", outcome.err);
    CHECK(outcome.exit_status == 0);
    CHECK(outcome.stats["oom_kills"] == 0);
    CHECK(outcome.stats["jobs"].size() == 4);
    CHECK(outcome.err.find("will not see this build") == std::string::npos);
}

}  // namespace

TEST_CASE("two builds at once in one cgroup: 0 OOM kills with the host ledger, cold and warm") {
    Pair pair;
    for (const std::string pass : {"cold", "warm"}) {
        CAPTURE(pass);
        std::uint64_t before = pair.cgroup.oom_kills();
        auto [one, other] = pair.run_both(true);
        check_clean(one);
        check_clean(other);
        CHECK(pair.cgroup.oom_kills() == before);
        // Each saw the other: one waited for memory the other's jobs were about to take.
        CHECK(one.stats["jobs_waited"].get<int>() + other.stats["jobs_waited"].get<int>() > 0);
    }
    // The ledger's entries left with their memgov runs.
    CHECK(std::filesystem::is_empty(pair.ledger_parent.path() + "/ledger") == false);  // the lock file stays
    for (const auto& entry : std::filesystem::directory_iterator(pair.ledger_parent.path() + "/ledger"))
        CHECK(entry.path().filename() == "lock");
}

TEST_CASE("two builds at once in one cgroup, each governed as if alone (--ledger off): OOM-killed") {
    Pair pair;
    // Learned first, alone: each then admits one heavy and both light jobs at once, which
    // fits its build alone, and not two builds.
    for (const auto* build : {&pair.first, &pair.second}) {
        const ScratchDir& profiles = build == &pair.first ? pair.first_profiles : pair.second_profiles;
        auto alone = run_memgov(pair.args(profiles, false), Pair::make(*build), &pair.cgroup);
        REQUIRE(alone.exit_status == 0);
    }
    std::uint64_t before = pair.cgroup.oom_kills();
    auto [one, other] = pair.run_both(false);
    CHECK(pair.cgroup.oom_kills() > before);
    CHECK((one.stats["oom_kills"].get<int>() + other.stats["oom_kills"].get<int>()) > 0);
}

TEST_CASE("memgov status shows a build's running and waiting jobs while it runs, and no build after") {
    ScratchDir build;
    ScratchDir profiles;
    ScratchDir ledger_parent;
    std::string ledger = ledger_parent.path() + "/ledger";
    build.write("Makefile", fmt::format("all: a b\na:\n\t{0} --mb 300 --ramp-ms 300 --hold-ms 2500\n"
                                        "b:\n\t{0} --mb 301 --ramp-ms 300 --hold-ms 500\n.PHONY: all a b\n",
                                        memhog_bin()));
    auto governed = std::async(std::launch::async, [&] {
        return run_memgov({"--gate", "memhog", "--profiles-dir", profiles.path(), "--ledger", ledger, "--limit", "450M",
                           "--cold-estimate", "300M"},
                          {"make", "-s", "-j2", "-C", build.path()});
    });
    nlohmann::json seen;
    for (int attempt = 0; attempt < 100; ++attempt) {
        std::string out;
        REQUIRE(run({memgov_bin(), "status", "--json", "--ledger", ledger}, &out) == 0);
        seen = nlohmann::json::parse(out);
        if (!seen["builds"].empty() && seen["builds"][0]["jobs"].size() == 2) break;
        usleep(100'000);
    }
    INFO("status: ", seen.dump(1));
    REQUIRE(seen["builds"].size() == 1);
    const auto& shown = seen["builds"][0];
    CHECK(shown["user"] == "root");
    CHECK(shown["command"].get<std::string>().starts_with("make -s -j2"));
    CHECK(shown["running"] == 1);
    CHECK(shown["waiting"] == 1);
    REQUIRE(shown["jobs"].size() == 2);
    CHECK(shown["jobs"][0]["state"] == "running");
    CHECK(shown["jobs"][1]["state"] == "waiting");
    for (const auto& job : shown["jobs"]) {
        CHECK(job["key"].get<std::string>().find("memhog") != std::string::npos);
        CHECK(job["predicted_bytes"].get<std::uint64_t>() >= 300 * MiB);
    }
    std::string text;
    REQUIRE(run({memgov_bin(), "status", "--ledger", ledger}, &text) == 0);
    CHECK(text.find("1 build governed on this host") != std::string::npos);
    CHECK(text.find("build of root") != std::string::npos);
    CHECK(text.find("1 running, 1 waiting, 0 stopped") != std::string::npos);

    std::string metrics = ledger_parent.path() + "/memgov.prom";
    REQUIRE(run({memgov_bin(), "status", "--ledger", ledger, "--metrics-file", metrics}) == 0);
    std::ifstream exposition(metrics);
    std::string scraped((std::istreambuf_iterator<char>(exposition)), std::istreambuf_iterator<char>());
    CHECK(scraped.find("memgov_builds 1\n") != std::string::npos);
    CHECK(scraped.find(",user=\"root\",state=\"waiting\"} 1\n") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(metrics + ".tmp"));

    // The ledger is root's: another user is told what to do, in one line.
    std::string err;
    CHECK(
        run({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", memgov_bin(), "status", "--ledger", ledger},
            nullptr, &err) == 1);
    CHECK(err.starts_with("memgov status: cannot read"));
    CHECK(std::count(err.begin(), err.end(), '\n') == 1);

    auto outcome = governed.get();
    CHECK(outcome.exit_status == 0);
    REQUIRE(run({memgov_bin(), "status", "--ledger", ledger}, &text) == 0);
    CHECK(text.starts_with("memgov status: no build is governed on this host"));
}
