// memgov status's words and JSON, from ledger entries and a memory reading.
#include <doctest/doctest.h>

#include <sstream>

#include "host_status.h"

using namespace memgov;

namespace {

constexpr std::uint64_t MiB = 1ull << 20;

HostStatus one_build() {
    LedgerEntry entry{.build = {.pid = 4242, .uid = 1000, .command = "make -j64", .cgroup = "/sys/fs/cgroup/ci"}};
    entry.state.share = {.imminent_bytes = 600 * MiB, .kept_bytes = 100 * MiB, .running = 1};
    entry.state.grant_bytes = 50 * MiB;
    entry.state.build_bytes = 900 * MiB;
    entry.state.waiting = 2;
    entry.state.jobs = std::vector<LedgerJob>{{{7, JobView::State::running, 1000 * MiB, 400 * MiB}, "/src/a.cpp"},
                                              {{8, JobView::State::waiting, 300 * MiB, 0}, "/src/b.cpp"}};
    return {.ledger_dir = "/run/memgov/ledger", .memory = {16384 * MiB, 8192 * MiB}, .builds = {entry}};
}

std::string named(uid_t uid) { return uid == 1000 ? "alice" : std::to_string(uid); }

}  // namespace

TEST_CASE("status text: no build, and a build with its jobs and what is not listed") {
    HostStatus none{.ledger_dir = "/run/memgov/ledger", .memory = {}, .builds = {}};
    CHECK(host_status_text(none, named) ==
          "memgov status: no build is governed on this host (ledger /run/memgov/ledger)\n");
    CHECK(host_status_text(one_build(), named) ==
          "memgov status: 1 build governed on this host (ledger /run/memgov/ledger)\n"
          "memory: 16.0 GiB total, 8.00 GiB available; the builds use 900 MiB, are about to take 600 MiB more and "
          "keep 150 MiB free for surprises and granted starts\n"
          "\n"
          "build of alice (memgov pid 4242): make -j64\n"
          "  1 running, 2 waiting, 0 stopped; uses 900 MiB, 600 MiB imminent; memory cgroup /sys/fs/cgroup/ci\n"
          "       PID  STATE       CURRENT  PREDICTED  KEY\n"
          "         7  running     400 MiB   1000 MiB  /src/a.cpp\n"
          "         8  waiting           -    300 MiB  /src/b.cpp\n"
          "  … and 1 more\n");
}

TEST_CASE("status JSON: the host's memory and every build with its jobs") {
    auto json = host_status_json(one_build(), named);
    CHECK(json["memory"]["total_bytes"] == 16384 * MiB);
    CHECK(json["memory"]["imminent_bytes"] == 600 * MiB);
    CHECK(json["memory"]["kept_bytes"] == 150 * MiB);
    REQUIRE(json["builds"].size() == 1);
    const auto& build = json["builds"][0];
    CHECK(build["user"] == "alice");
    CHECK(build["uid"] == 1000);
    CHECK(build["memgov_pid"] == 4242);
    CHECK(build["waiting"] == 2);
    REQUIRE(build["jobs"].size() == 2);
    CHECK(build["jobs"][0]["state"] == "running");
    CHECK(build["jobs"][0]["current_bytes"] == 400 * MiB);
    CHECK(build["jobs"][1]["predicted_bytes"] == 300 * MiB);
    CHECK(build["jobs"][1]["key"] == "/src/b.cpp");
}

TEST_CASE("status for Prometheus: the host's memory and each build's series, labels escaped") {
    HostStatus status = one_build();
    status.builds[0].state.emergency_stops = 3;
    status.builds[0].state.seconds_waited = 12.5;
    std::string text = host_status_prometheus(status, [](uid_t) { return std::string("a\"b"); });
    CHECK(
        text.starts_with("# HELP memgov_builds Builds governed on this host.\n# TYPE memgov_builds gauge\n"
                         "memgov_builds 1\n"));
    CHECK(text.find("memgov_available_bytes 8589934592\n") != std::string::npos);
    CHECK(text.find("memgov_jobs{memgov_pid=\"4242\",user=\"a\\\"b\",state=\"running\"} 1\n") != std::string::npos);
    CHECK(text.find("memgov_jobs{memgov_pid=\"4242\",user=\"a\\\"b\",state=\"waiting\"} 2\n") != std::string::npos);
    CHECK(text.find("# TYPE memgov_emergency_stops_total counter\n"
                    "memgov_emergency_stops_total{memgov_pid=\"4242\",user=\"a\\\"b\"} 3\n") != std::string::npos);
    CHECK(text.find("memgov_job_wait_seconds_total{memgov_pid=\"4242\",user=\"a\\\"b\"} 12.500\n") !=
          std::string::npos);
    CHECK(text.find("memgov_imminent_bytes{memgov_pid=\"4242\",user=\"a\\\"b\"} 629145600\n") != std::string::npos);
    // Every line is a comment or `name{labels} value`.
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        CAPTURE(line);
        CHECK((line.starts_with("# ") || line.find(' ') != std::string::npos));
    }
}
