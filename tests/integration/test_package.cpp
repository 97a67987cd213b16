// The Debian package (cpack -G DEB): what it holds, and what its postinst does on this machine:
// a memgov group whose members run memgov without sudo, and the host ledger they share.
#include <doctest/doctest.h>
#include <grp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "harness.h"

using namespace harness;

namespace {

// Removes the package, and what its postinst made, whatever the test's outcome.
struct Installed {
    ~Installed() { run({"dpkg", "--purge", "memgov"}); }
};

}  // namespace

TEST_CASE("the Debian package: its files, and a memgov group member runs memgov without sudo") {
    ScratchDir out;
    std::string log;
    REQUIRE_MESSAGE(run({"cpack", "--config", std::string(MEMGOV_BINARY_DIR) + "/CPackConfig.cmake", "-B", out.path()},
                        &log, &log) == 0,
                    log);
    std::string deb = out.path() + "/memgov_0.1.0_amd64.deb";
    REQUIRE(std::filesystem::exists(deb));
    std::string contents;
    REQUIRE(run({"dpkg-deb", "-c", deb}, &contents) == 0);
    for (const char* file :
         {"./usr/bin/memgov", "./usr/share/man/man1/memgov.1.gz", "./usr/share/bash-completion/completions/memgov",
          "./usr/lib/tmpfiles.d/memgov.conf", "./usr/lib/systemd/system/memgov.service"}) {
        CAPTURE(file);
        CHECK(contents.find(std::string(" ") + file + "\n") != std::string::npos);
    }
    std::string depends;
    REQUIRE(run({"dpkg-deb", "-f", deb, "Depends"}, &depends) == 0);
    CHECK(depends.find("libbpf1") != std::string::npos);

    if (std::filesystem::exists("/usr/bin/memgov")) {
        MESSAGE("/usr/bin/memgov exists already: the install half is skipped, not to replace it");
        return;
    }
    Installed installed;
    REQUIRE_MESSAGE(run({"dpkg", "-i", deb}, &log, &log) == 0, log);
    const group* memgov_group = getgrnam("memgov");
    REQUIRE(memgov_group);
    struct stat binary {};
    REQUIRE(stat("/usr/bin/memgov", &binary) == 0);
    CHECK(binary.st_gid == memgov_group->gr_gid);
    CHECK((binary.st_mode & 07777) == 0750);
    std::string caps;
    run({"getcap", "/usr/bin/memgov"}, &caps);
    CHECK(caps.find("cap_bpf") != std::string::npos);
    CHECK(caps.find("cap_perfmon") != std::string::npos);
    CHECK(caps.find("=ep") != std::string::npos);
    struct stat ledger {};
    REQUIRE(stat("/run/memgov/ledger", &ledger) == 0);
    CHECK((ledger.st_mode & 07777) == 03770);  // setgid memgov, sticky: no member removes another's entry
    CHECK(ledger.st_gid == memgov_group->gr_gid);

    // A member (through a shell: setpriv's own exec would still pass root's permission checks):
    // memgov's BPF programs load without sudo, and a build is governed, sharing the ledger.
    auto as_nobody = [&](const std::string& groups, const std::string& command, std::string* out, std::string* err) {
        return run({"setpriv", "--reuid=65534", "--regid=65534", groups, "sh", "-c", command}, out, err);
    };
    std::string member = "--groups=" + std::to_string(memgov_group->gr_gid);
    std::string check;
    CHECK_MESSAGE(as_nobody(member, "/usr/bin/memgov check", &check, nullptr) == 0, check);
    CHECK(check.find("CAP_BPF and CAP_PERFMON") != std::string::npos);
    ScratchDir home(true);
    std::string err;
    CHECK_MESSAGE(
        as_nobody(member, "/usr/bin/memgov -q --profiles-dir " + home.path() + "/p -- true", nullptr, &err) == 0, err);
    CHECK(err.find("warning") == std::string::npos);  // the ledger is theirs to use
    // Anyone else may not run it.
    CHECK(as_nobody("--clear-groups", "/usr/bin/memgov check", nullptr, nullptr) == 126);

    // The daemon's unit is well formed (systemd-analyze: the man page aside, which needs man-db),
    // and the daemon runs as memgov.service runs it: user memgov, CAP_BPF and CAP_PERFMON only
    // (ambient, bounding set, no new privileges). A member's build is followed through it.
    if (std::filesystem::exists("/usr/bin/systemd-analyze")) {
        std::string verify;
        run({"systemd-analyze", "verify", "/usr/lib/systemd/system/memgov.service"}, &verify, &verify);
        std::string problems;
        for (std::size_t at = 0; at < verify.size();) {
            std::size_t end = verify.find('\n', at);
            std::string line = verify.substr(at, end - at);
            if (!line.empty() && line.find("man memgov(1)") == std::string::npos) problems += line + "\n";
            at = end == std::string::npos ? verify.size() : end + 1;
        }
        CHECK_MESSAGE(problems.empty(), problems);
    }
    ScratchDir run_dir(true);
    std::string socket = run_dir.path() + "/memgov.sock";
    pid_t daemon = fork();
    if (daemon == 0) {
        execlp("setpriv", "setpriv", "--reuid=memgov", "--regid=memgov", "--init-groups", "--no-new-privs",
               "--inh-caps=-all,+bpf,+perfmon", "--ambient-caps=-all,+bpf,+perfmon",
               "--bounding-set=-all,+bpf,+perfmon", "/usr/bin/memgov", "daemon", "--socket", socket.c_str(),
               static_cast<char*>(nullptr));
        _exit(127);
    }
    for (int i = 0; i < 300 && !std::filesystem::exists(socket); ++i) usleep(10'000);
    CHECK(std::filesystem::exists(socket));
    std::string through;
    CHECK(as_nobody(member, "/usr/bin/memgov --socket " + socket + " check", &through, nullptr) == 0);
    CHECK(through.find("listening on " + socket) != std::string::npos);
    CHECK_MESSAGE(as_nobody(member,
                            "/usr/bin/memgov -q --socket " + socket + " --profiles-dir " + home.path() +
                                "/p -- make -s -C " + home.path() + " --version",
                            nullptr, &err) == 0,
                  err);
    // And a client in a container (its own pid namespace): the daemon, without ptrace rights
    // over it, still numbers its processes as the container does.
    std::string contained = "/usr/bin/memgov -q --socket " + socket + " --profiles-dir " + home.path() +
                            "/p -- make -s -C " + home.path() + " --version";
    CHECK_MESSAGE(run({"unshare", "--pid", "--fork", "--mount-proc", "setpriv", "--reuid=65534", "--regid=65534",
                       member, "sh", "-c", contained},
                      nullptr, &err) == 0,
                  err);
    kill(daemon, SIGTERM);
    waitpid(daemon, nullptr, 0);
}
