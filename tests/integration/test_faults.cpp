// Faults memgov must survive without costing the user their build, their profiles or a
// stopped process (docs/RELIABILITY.md).
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "harness.h"
#include "test_cgroup.h"

using namespace harness;
using namespace std::chrono_literals;

namespace {

constexpr std::uint64_t MiB = 1ull << 20;

// Jobs that leave a file behind, so a test can tell the build really finished.
std::string touching_makefile(int jobs, int mb, int hold_ms) {
    std::string all = "all:";
    std::string rules;
    for (int i = 0; i < jobs; ++i) {
        all += fmt::format(" out{}", i);
        rules += fmt::format("out{0}:\n\t{1} --mb {2} --hold-ms {3} > /dev/null && touch $@\n", i, memhog_bin(), mb,
                             hold_ms);
    }
    return all + "\n" + rules;
}

pid_t spawn(const std::vector<std::string>& argv) {
    pid_t pid = fork();
    if (pid == 0) {
        std::vector<char*> args;
        for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
        args.push_back(nullptr);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execvp(args[0], args.data());
        _exit(127);
    }
    return pid;
}

// Pids of live processes whose command line (arguments joined by spaces) is exactly
// `command`: a test must never touch another run's processes (a benchmark's memhog jobs, say).
std::vector<pid_t> processes_running(const std::string& command) {
    std::vector<pid_t> found;
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
        pid_t pid = std::atoi(entry.path().filename().c_str());
        if (pid <= 0 || pid == getpid()) continue;
        std::ifstream in(entry.path() / "cmdline");
        std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (!cmdline.empty() && cmdline.back() == '\0') cmdline.pop_back();
        std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
        if (cmdline == command) found.push_back(pid);
    }
    return found;
}

bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds limit) {
    for (auto end = std::chrono::steady_clock::now() + limit; std::chrono::steady_clock::now() < end;) {
        if (done()) return true;
        std::this_thread::sleep_for(50ms);
    }
    return done();
}

}  // namespace

namespace {

// Runs memgov (inside `around`, a command that runs its arguments, when given), waits until
// jobs are held, kills memgov with SIGKILL and checks that none stays stopped and the build
// still finishes.
void kill_memgov_mid_build(const std::vector<std::string>& around) {
    ScratchDir build;
    ScratchDir profiles;
    build.write("Makefile", touching_makefile(6, 30, 1500));
    // An impossible floor: every admitted job but one is emergency-stopped, the rest wait.
    std::vector<std::string> memgov_argv{memgov_bin(),
                                         "--gate",
                                         "memhog",
                                         "--emergency-floor",
                                         "1000G",
                                         "--cold-estimate",
                                         "1M",
                                         "--profiles-dir",
                                         profiles.path(),
                                         "--",
                                         "make",
                                         "-j6",
                                         "-C",
                                         build.path()};
    std::vector<std::string> argv = around;
    argv.insert(argv.end(), memgov_argv.begin(), memgov_argv.end());
    pid_t spawned = spawn(argv);
    std::string tag = build.path();
    std::string job = memhog_bin() + " --mb 30 --hold-ms 1500";
    std::vector<pid_t> stopped;
    wait_until(
        [&] {
            stopped.clear();
            for (pid_t pid : processes_running(job))
                if (process_state(pid) == 'T') stopped.push_back(pid);
            return stopped.size() >= 4;
        },
        10s);
    REQUIRE_MESSAGE(stopped.size() >= 4, "expected held jobs before the kill");
    std::string memgov_command;
    for (const auto& arg : memgov_argv) memgov_command += (memgov_command.empty() ? "" : " ") + arg;
    auto memgov = around.empty() ? std::vector<pid_t>{spawned} : processes_running(memgov_command);
    REQUIRE(memgov.size() == 1);
    kill(memgov.front(), SIGKILL);
    if (around.empty()) waitpid(spawned, nullptr, 0);

    CHECK(wait_until(
        [&] {
            for (pid_t pid : processes_running(job))
                if (process_state(pid) == 'T') return false;
            return true;
        },
        3s));
    // make, orphaned, still finishes the build.
    CHECK(wait_until([&] { return processes_running("make -j6 -C " + tag).empty(); }, 30s));
    for (int i = 0; i < 6; ++i) CHECK(std::filesystem::exists(fmt::format("{}/out{}", tag, i)));
    if (!around.empty()) {
        kill(spawned, SIGKILL);  // unshare ignores SIGTERM while it waits; --kill-child passes this on
        waitpid(spawned, nullptr, 0);
    }

    // The next run reads the store without complaint (it may be empty: nothing was saved yet).
    auto next = run_memgov({"--profiles-dir", profiles.path()}, {"true"});
    CHECK(next.exit_status == 0);
    CHECK(next.err.find("warning") == std::string::npos);
}

}  // namespace

TEST_CASE("kill -9 of memgov with jobs waiting and stopped: none stays stopped, the build ends") {
    kill_memgov_mid_build({});
}

// After memgov is gone its build runs ungoverned, nothing of it stopped. CI once saw the race
// the kernel half now closes (controller_gone in bpf/memgov.bpf.c): make started a job while
// the dying memgov's programs were still attached, after its guard had run, and that job was
// stopped for good. That window is too narrow to provoke here; this checks the outcome.
TEST_CASE("kill -9 of memgov: the jobs its build starts afterwards are not stopped") {
    ScratchDir build;
    ScratchDir profiles;
    std::string job = memhog_bin() + " --mb 10 --hold-ms 1000";
    build.write("Makefile", fmt::format("all: second\nfirst:\n\t{0} > /dev/null && touch first\n"
                                        "second: first\n\t{0} > /dev/null && touch second\n",
                                        job));
    // Room for no start beside a running job: no kernel grant, every start is held at its exec.
    pid_t memgov = spawn({memgov_bin(), "-q", "--gate", "memhog", "--limit", "100M", "--cold-estimate", "80M",
                          "--profiles-dir", profiles.path(), "--", "make", "-s", "-C", build.path()});
    REQUIRE(wait_until([&] { return !processes_running(job).empty(); }, 10s));
    kill(memgov, SIGKILL);  // while the first job runs: make starts the second after it
    waitpid(memgov, nullptr, 0);
    CHECK(wait_until([&] { return std::filesystem::exists(build.path() + "/second"); }, 10s));
    for (pid_t pid : processes_running(job)) CHECK(process_state(pid) != 'T');
    run({"pkill", "-KILL", "-f", "--", build.path()});
}

TEST_CASE("kill -9 of memgov in a child pid namespace (not its init): none stays stopped, the build ends") {
    // The namespace's init is a shell that outlives memgov (the namespace, and the build with
    // it, would die with its init); --kill-child ends it when unshare is killed.
    kill_memgov_mid_build(
        {"unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "sh", "-c", "\"$@\"; sleep 60", "sh"});
}

TEST_CASE("SIGTERM and SIGHUP mid-build: the build gets them, memgov exits 128+N, the store is saved") {
    for (int signo : {SIGTERM, SIGHUP}) {
        CAPTURE(signo);
        ScratchDir build;
        ScratchDir profiles;
        build.write("Makefile", touching_makefile(3, 20, 4000) + "quick:\n\t" + memhog_bin() + " --mb 5\n");
        pid_t memgov = spawn({memgov_bin(), "--gate", "memhog", "--profiles-dir", profiles.path(), "--", "make", "-j4",
                              "-C", build.path(), "quick", "all"});
        std::this_thread::sleep_for(1500ms);  // quick is done and learned; the others run
        kill(memgov, signo);
        int status = 0;
        waitpid(memgov, &status, 0);
        REQUIRE(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 128 + signo);
        std::ifstream in(profiles.path() + "/profiles.json");
        std::string store((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        CHECK(store.find("--mb 5") != std::string::npos);
        CHECK(wait_until([&] { return processes_running(memhog_bin() + " --mb 20 --hold-ms 4000").empty(); }, 5s));
    }
}

TEST_CASE("a job that forks 2000 children is followed exactly, with nothing dropped") {
    auto outcome = run_memgov({"--gate", "memhog"},
                              {memhog_bin(), "--children", "2000", "--child-mb", "0", "--mb", "1", "--hold-ms", "300"});
    REQUIRE(outcome.exit_status == 0);
    CHECK(outcome.stats["procs_seen"].get<int>() == 2001);
    CHECK(outcome.stats["events_dropped"] == 0);
    CHECK(outcome.stats["procs_untracked_map_full"] == 0);
    REQUIRE(outcome.stats["jobs"].size() == 1);
    for (const auto& process : outcome.stats["processes"]) CHECK(process["job"] == outcome.stats["jobs"][0]["job"]);
}

TEST_CASE("more processes than --max-procs are counted and reported, not silently lost") {
    auto outcome =
        run_memgov({"--max-procs", "64"}, {memhog_bin(), "--children", "200", "--child-mb", "0", "--hold-ms", "300"});
    REQUIRE(outcome.exit_status == 0);
    CHECK(outcome.stats["procs_untracked_map_full"].get<int>() > 0);
    CHECK(outcome.err.find("not tracked (maps full)") != std::string::npos);
}

TEST_CASE("a daemon that double-forks out of the build does not keep memgov waiting") {
    auto started = std::chrono::steady_clock::now();
    auto outcome = run_memgov({}, {"/bin/sh", "-c", "(sleep 20.25 > /dev/null 2>&1 &) ; exit 0"});
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    CHECK(outcome.exit_status == 0);
    CHECK(seconds < 10);
    for (pid_t pid : processes_running("sleep 20.25")) kill(pid, SIGKILL);
}

TEST_CASE("a job that exits while waiting at the gate is forgotten and the build goes on") {
    ScratchDir build;
    // The small job starts after the big one has been admitted, so it is the one held: make starts
    // both recipes at once, and which exec reaches memgov first is otherwise a race.
    build.write("Makefile", "all: big small\nbig:\n\t" + memhog_bin() +
                                " --mb 100 --hold-ms 1500\n"
                                "small:\n\t-sleep 0.3; " +
                                memhog_bin() + " --mb 1\n");
    pid_t killer = fork();
    if (killer == 0) {  // kill the small job while it waits behind the big one
        for (int i = 0; i < 100; ++i) {
            for (pid_t pid : processes_running(memhog_bin() + " --mb 1"))
                if (process_state(pid) == 'T') {
                    kill(pid, SIGKILL);
                    _exit(0);
                }
            usleep(20'000);
        }
        _exit(1);
    }
    ScratchDir profiles;
    auto outcome =
        run_memgov({"--gate", "memhog", "--limit", "60M", "--cold-estimate", "50M", "--profiles-dir", profiles.path()},
                   {"make", "-s", "-j2", "-C", build.path()});
    int killer_status = 0;
    waitpid(killer, &killer_status, 0);
    CHECK(WEXITSTATUS(killer_status) == 0);
    CHECK(outcome.exit_status == 0);  // make ignores the small job's failure ("-")
}

TEST_CASE("the cgroup limit lowered mid-build: memgov stops growing jobs instead of an OOM kill") {
    ScratchDir build;
    ScratchDir profiles;
    std::string makefile = "all: a b c\n";
    for (const char* job : {"a", "b", "c"})
        makefile += fmt::format("{}:\n\t{} --mb 300 --ramp-ms 3000 --hold-ms 500\n", job, memhog_bin());
    build.write("Makefile", makefile);
    TestCgroup cgroup(2048 * MiB);
    std::uint64_t oom_before = cgroup.oom_kills();
    pid_t lowerer = fork();
    if (lowerer == 0) {  // after a second, three jobs at ~100 MB each will still grow to 900 MB
        usleep(1'000'000);
        cgroup.set_limit(800 * MiB);
        _exit(0);
    }
    // The floor leaves room for the oldest job to finish while the two others stay stopped.
    auto outcome = run_memgov({"--gate", "memhog", "--cold-estimate", "300M", "--emergency-floor", "200M",
                               "--profiles-dir", profiles.path(), "-v"},
                              {"make", "-s", "-j3", "-C", build.path()}, &cgroup);
    waitpid(lowerer, nullptr, 0);
    INFO(outcome.err);
    CHECK(outcome.exit_status == 0);
    CHECK(cgroup.oom_kills() == oom_before);
    CHECK(outcome.stats["emergency_stops"].get<int>() >= 1);
}

TEST_CASE("two memgov runs sharing one profile store lose nothing") {
    ScratchDir profiles;
    ScratchDir first;
    ScratchDir second;
    for (auto* dir : {&first, &second}) {
        std::string makefile = "all:";
        std::string rules;
        for (int i = 0; i < 8; ++i) {
            makefile += fmt::format(" {}.o", i);
            rules += fmt::format("{0}.o: {0}.c\n\tcc -c {0}.c -o {0}.o\n", i);
            dir->write(fmt::format("{}.c", i), fmt::format("int f{}(void) {{ return {}; }}\n", i, i));
        }
        dir->write("Makefile", makefile + "\n" + rules);
    }
    pid_t a = spawn({memgov_bin(), "--profiles-dir", profiles.path(), "--", "make", "-j4", "-C", first.path()});
    pid_t b = spawn({memgov_bin(), "--profiles-dir", profiles.path(), "--", "make", "-j4", "-C", second.path()});
    int status_a = 0;
    int status_b = 0;
    waitpid(a, &status_a, 0);
    waitpid(b, &status_b, 0);
    CHECK(WEXITSTATUS(status_a) == 0);
    CHECK(WEXITSTATUS(status_b) == 0);
    std::ifstream in(profiles.path() + "/profiles.json");
    auto store = nlohmann::json::parse(in);
    int from_first = 0;
    int from_second = 0;
    for (const auto& [key, profile] : store["profiles"].items()) {
        from_first += key.starts_with(first.path() + "/");
        from_second += key.starts_with(second.path() + "/");
    }
    CHECK(from_first == 8);
    CHECK(from_second == 8);
}

TEST_CASE("a job that stops itself and is continued by its parent, and one that sends itself SIGCONT") {
    auto outcome = run_memgov({"--gate", "memhog", "--gate", "bash"},
                              {"/bin/bash", "-c",
                               "kill -CONT $$; " + memhog_bin() +
                                   " --mb 5 & child=$!; "
                                   "sleep 0.2; kill -STOP $child; sleep 0.2; kill -CONT $child; wait $child"});
    CHECK(outcome.exit_status == 0);
    CHECK(outcome.stats["jobs"].size() == 1);  // bash is the job; memhog runs inside it
}

TEST_CASE("a fork bomb bounded by the test is followed without losing memgov's footing") {
    // 6 generations of 2 children each: 127 processes, all short-lived.
    auto outcome = run_memgov({}, {"/bin/sh", "-c",
                                   "bomb() { [ $1 -gt 0 ] || return 0; bomb $(($1-1)) & bomb $(($1-1)) & wait; }; "
                                   "bomb 6"});
    CHECK(outcome.exit_status == 0);
    CHECK(outcome.stats["procs_seen"].get<int>() >= 127);
    CHECK(outcome.stats["events_dropped"] == 0);
}

TEST_CASE("an enormous argv is cut at 30 KiB and flagged, the job still runs") {
    std::string huge(100'000, 'x');
    auto outcome = run_memgov({"--no-gate"}, {"/bin/sh", "-c", "exec /bin/true \"$0\"", huge});
    CHECK(outcome.exit_status == 0);
    bool seen = false;
    for (const auto& process : outcome.stats["processes"]) {
        if (process["argv"].empty() || process["argv"][0] != "/bin/true") continue;
        seen = true;
        CHECK(process["argv_truncated"] == true);
    }
    CHECK(seen);
}
