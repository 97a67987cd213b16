// How memgov runs the build: signals, interruption, and the identity under sudo.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "harness.h"

using namespace harness;
using namespace std::chrono_literals;

TEST_CASE("SIGINT mid-build: the build gets it, no process is left stopped, the store is saved") {
    ScratchDir build;
    ScratchDir profiles;
    std::string makefile = "all: a b c d\n";
    for (const char* target : {"a", "b", "c", "d"})
        makefile += fmt::format("{}:\n\t{} --mb 150 --hold-ms 3000\n", target, memhog_bin());
    build.write("Makefile", makefile + ".PHONY: all a b c d\n");
    std::string stats = build.path() + "/stats.json";

    pid_t memgov = fork();
    if (memgov == 0) {
        execl(memgov_bin().c_str(), "memgov", "--gate", "memhog", "--limit", "200M", "--profiles-dir",
              profiles.path().c_str(), "--stats-json", stats.c_str(), "-q", "--", "make", "-s", "-j4", "-C",
              build.path().c_str(), nullptr);
        _exit(127);
    }
    std::this_thread::sleep_for(1500ms);  // one job runs, three wait at exec
    kill(memgov, SIGINT);
    int status = 0;
    waitpid(memgov, &status, 0);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 128 + SIGINT);  // make died of the SIGINT memgov forwarded

    std::ifstream in(stats);
    auto report = nlohmann::json::parse(in);
    int memhogs = 0;
    std::this_thread::sleep_for(500ms);
    for (const auto& process : report["processes"]) {
        if (process["comm"] != "memhog") continue;
        ++memhogs;
        CHECK_MESSAGE(process_state(process["pid"]) != 'T', "memhog ", process["pid"], " left stopped");
    }
    CHECK(memhogs == 4);
    CHECK(report["jobs_waited"].get<int>() >= 1);
    CHECK(std::filesystem::exists(profiles.path() + "/profiles.json"));
}

TEST_CASE("under sudo the build runs as the invoking user, without capabilities") {
    ScratchDir build(true);
    ScratchDir profiles(true);  // memgov creates store/ in it, as the user
    std::string script = fmt::format(
        "id -u; id -g; echo \"$HOME $USER $LOGNAME\"; grep -E '^Cap(Eff|Prm|Amb):' /proc/self/status; "
        "touch {0}/made-by-build; {1} --mb 5",
        build.path(), memhog_bin());
    std::string out;
    std::string err;
    int status = run({"env", "SUDO_UID=65534", "SUDO_GID=65534", "SUDO_USER=nobody", memgov_bin(), "--gate", "memhog",
                      "--profiles-dir", profiles.path() + "/store", "--stats-json", build.path() + "/stats.json", "--",
                      "/bin/sh", "-c", script},
                     &out, &err);
    INFO("stdout: ", out, "\nstderr: ", err);
    REQUIRE(status == 0);
    CHECK(out.starts_with("65534\n65534\n"));
    CHECK(out.find(" nobody nobody\n") != std::string::npos);
    CHECK(out.find("CapEff:\t0000000000000000") != std::string::npos);
    CHECK(out.find("CapPrm:\t0000000000000000") != std::string::npos);
    CHECK(out.find("CapAmb:\t0000000000000000") != std::string::npos);
    for (const char* file : {"/made-by-build", "/stats.json"}) {
        struct stat info {};
        REQUIRE(stat((build.path() + file).c_str(), &info) == 0);
        CHECK_MESSAGE(info.st_uid == 65534, file);
    }
    struct stat store {};
    REQUIRE(stat((profiles.path() + "/store/profiles.json").c_str(), &store) == 0);
    CHECK(store.st_uid == 65534);
    CHECK(store.st_gid == 65534);
}
