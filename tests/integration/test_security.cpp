// memgov with file capabilities and no root: it works, and the build it runs has none.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <sys/stat.h>

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
