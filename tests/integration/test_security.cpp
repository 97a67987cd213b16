// memgov with file capabilities and no root: it works, and the build it runs has none.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "harness.h"

using namespace harness;

TEST_CASE("with cap_bpf,cap_perfmon file capabilities a normal user runs memgov, the build gets no capability") {
    ScratchDir dir(true);
    std::string memgov_copy = dir.path() + "/memgov";
    std::filesystem::copy_file(memgov_bin(), memgov_copy);
    REQUIRE(run({"setcap", "cap_bpf,cap_perfmon+ep", memgov_copy}) == 0);
    std::string out;
    std::string err;
    // grep is made a job, so it is stopped at exec and admitted like a compiler would be.
    int status = run({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", memgov_copy, "--gate", "grep",
                      "--profiles-dir", dir.path() + "/profiles", "--stats-json", dir.path() + "/stats.json", "--",
                      "/bin/sh", "-c", "id -u; grep -E '^Cap(Eff|Prm|Amb|Inh):' /proc/self/status"},
                     &out, &err);
    INFO("stdout: ", out, "\nstderr: ", err);
    REQUIRE(status == 0);
    CHECK(out.starts_with("65534\n"));
    for (const char* set : {"CapEff", "CapPrm", "CapAmb", "CapInh"})
        CHECK(out.find(fmt::format("{}:\t0000000000000000", set)) != std::string::npos);
    CHECK(err.find("1 jobs") != std::string::npos);
    struct stat store {};
    REQUIRE(stat((dir.path() + "/profiles/profiles.json").c_str(), &store) == 0);
    CHECK(store.st_uid == 65534);
}

// A memgov without CAP_KILL (file capabilities) may not continue what runs as another user
// outside its session: a setuid step (`setsid sudo …`) is never stopped at its exec.
TEST_CASE("with file capabilities, a setuid step that becomes root is measured, never stopped") {
    ScratchDir tools;  // root's, 0755: nobody else can put anything in it
    ScratchDir dir(true);
    std::string memgov_copy = tools.path() + "/memgov";
    std::filesystem::copy_file(memgov_bin(), memgov_copy);
    REQUIRE(run({"setcap", "cap_bpf,cap_perfmon+ep", memgov_copy}) == 0);
    std::string sudo = install_become_root(tools.path());
    std::string rule = fmt::format("\tsetsid -w {} {} --mb 200 --ramp-ms 300 --hold-ms 500\n", sudo, memhog_bin());
    dir.write("Makefile", "all: j0 j1\nj0:\n" + rule + "j1:\n" + rule + ".PHONY: all j0 j1\n");
    std::string out, err;
    int status = run({"setpriv",
                      "--reuid=65534",
                      "--regid=65534",
                      "--clear-groups",
                      memgov_copy,
                      "--gate",
                      "memhog",
                      "--ledger",
                      "off",
                      "--limit",
                      "300M",
                      "--profiles-dir",
                      dir.path() + "/profiles",
                      "--",
                      "timeout",
                      "-k",
                      "5",
                      "30",
                      "make",
                      "-s",
                      "-j2",
                      "-C",
                      dir.path()},
                     &out, &err);
    auto stopped = pgrep({"-f", "-r", "T", memhog_bin()});
    for (pid_t pid : pgrep({"-f", memhog_bin()})) kill(pid, SIGKILL);  // after a failure: not left for others
    INFO("stderr: ", err);
    CHECK(status == 0);
    CHECK(stopped.empty());
    CHECK(err.find("2 jobs ran as another user (a setuid step) and could not be held") != std::string::npos);
    CHECK(memhog_maxrss(out).size() == 2);
}
