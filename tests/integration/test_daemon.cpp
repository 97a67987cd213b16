// `memgov daemon` and its clients without privilege (docs/DESIGN.md §12): a build of an
// unprivileged user governed through it, what a client may not do, and the failures: the
// daemon or a client killed mid-build, malformed messages, many clients at once.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <thread>

#include "daemon_protocol.h"
#include "harness.h"
#include "remote_tracker.h"
#include "test_cgroup.h"

using namespace harness;
using namespace std::chrono_literals;

namespace {

constexpr std::uint64_t MiB = 1ull << 20;
constexpr uid_t nobody = 65534;

// A daemon of the build tree's memgov on a private socket, stopped (SIGTERM) at the end.
class Daemon {
public:
    explicit Daemon(const std::string& directory, std::vector<std::string> extra = {})
        : socket_(directory + "/memgov.sock"), log_(directory + "/daemon.log") {
        std::vector<std::string> argv{memgov_bin(), "daemon",   "--socket",   socket_, "--gate",
                                      "memhog",     "--ledger", ledger_dir(), "-v"};
        argv.insert(argv.end(), extra.begin(), extra.end());
        pid_ = fork();
        if (pid_ == 0) {
            int out = open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
            dup2(out, STDERR_FILENO);
            std::vector<char*> raw;
            for (auto& arg : argv) raw.push_back(arg.data());
            raw.push_back(nullptr);
            execv(raw[0], raw.data());
            _exit(127);
        }
        // Listening, not only bound: a dead daemon's socket file may be there still.
        for (int i = 0; i < 500 && !listening(); ++i) std::this_thread::sleep_for(10ms);
        REQUIRE_MESSAGE(listening(), "the daemon did not start: ", log());
    }
    ~Daemon() {
        if (pid_ > 0) {
            kill(pid_, SIGTERM);
            waitpid(pid_, nullptr, 0);
        }
    }
    void kill9() {
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }
    const std::string& socket() const { return socket_; }
    // Where it keeps its clients' host-ledger entries (private to the test).
    std::string ledger_dir() const { return std::filesystem::path(socket_).parent_path() / "ledger"; }
    bool listening() const {
        int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strncpy(address.sun_path, socket_.c_str(), sizeof(address.sun_path) - 1);
        bool connected = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
        close(fd);
        return connected;
    }
    std::string log() const {
        std::ifstream in(log_);
        return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    }

private:
    std::string socket_;
    std::string log_;
    pid_t pid_ = -1;
};

// memgov as nobody, without any capability, through the daemon: its argv.
std::vector<std::string> as_nobody(const Daemon& daemon, const ScratchDir& home, std::vector<std::string> memgov_args,
                                   const std::vector<std::string>& command) {
    std::vector<std::string> argv{
        "setpriv",    "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
        memgov_bin(), "--socket",      daemon.socket(), "--profiles-dir", home.path() + "/profiles"};
    argv.insert(argv.end(), memgov_args.begin(), memgov_args.end());
    argv.push_back("--");
    argv.insert(argv.end(), command.begin(), command.end());
    return argv;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A raw client: connects as `uid`, sends `bytes` (with `pass_fd`), returns the reply's
// error ("" when accepted), or "no reply".
std::string ask_as(uid_t uid, const std::string& socket_path, const std::vector<std::uint8_t>& bytes, int pass_fd) {
    int pipe_fds[2];
    REQUIRE(pipe(pipe_fds) == 0);
    pid_t child = fork();
    if (child == 0) {
        close(pipe_fds[0]);
        if (setresgid(uid, uid, uid) != 0 || setresuid(uid, uid, uid) != 0) _exit(1);
        int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strncpy(address.sun_path, socket_path.c_str(), sizeof(address.sun_path) - 1);
        if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) _exit(2);
        memgov::send_datagram(fd, bytes, pass_fd);
        std::vector<std::uint8_t> reply(memgov::max_daemon_message);
        ssize_t got = recv(fd, reply.data(), reply.size(), 0);
        std::string error = "no reply";
        if (got > 0) {
            auto parsed = memgov::parse_message({reply.data(), static_cast<std::size_t>(got)}, error);
            if (parsed) error = parsed->ok ? "" : parsed->error;
        }
        (void)!write(pipe_fds[1], error.data(), error.size());
        _exit(0);
    }
    close(pipe_fds[1]);
    std::string answer;
    char buffer[512];
    for (ssize_t n; (n = read(pipe_fds[0], buffer, sizeof buffer)) > 0;)
        answer.append(buffer, static_cast<std::size_t>(n));
    close(pipe_fds[0]);
    waitpid(child, nullptr, 0);
    return answer;
}

// A Makefile of `jobs` memhog jobs of `mb` MB each, ramping over `ramp_ms`.
void write_makefile(const ScratchDir& dir, int jobs, int mb, int ramp_ms, int hold_ms) {
    std::string names, rules;
    for (int i = 0; i < jobs; ++i) {
        names += fmt::format(" j{}", i);
        rules += fmt::format("j{}:\n\t{} --mb {} --ramp-ms {} --hold-ms {}\n", i, memhog_bin(), mb, ramp_ms, hold_ms);
    }
    dir.write("Makefile", "all:" + names + "\n" + rules + ".PHONY: all" + names + "\n");
}

// The memhog processes, once `count` of them have exec'd (or after 3 s).
std::vector<pid_t> wait_for_memhogs(std::size_t count) {
    std::vector<pid_t> memhogs;
    for (int i = 0; i < 300 && memhogs.size() < count; ++i) {
        std::this_thread::sleep_for(10ms);
        memhogs = pgrep({"-f", memhog_bin()});
    }
    return memhogs;
}

bool any_stopped(const std::vector<pid_t>& pids) {
    for (pid_t pid : pids)
        if (process_state(pid) == 'T') return true;
    return false;
}

// The three memhogs of a -j3 build once they run, one of them held by its client.
std::vector<pid_t> three_memhogs_one_held() {
    auto memhogs = wait_for_memhogs(3);
    REQUIRE(memhogs.size() == 3);
    std::this_thread::sleep_for(200ms);
    REQUIRE(any_stopped(memhogs));
    return memhogs;
}

// The client: the memgov that setpriv made user nobody.
pid_t client_memgov() {
    auto pids = pgrep({"-u", "65534", "-x", "memgov"});
    REQUIRE_FALSE(pids.empty());
    return pids.front();
}

// Runs argv in the background, its output discarded: its pid.
pid_t start_quietly(std::vector<std::string> argv) {
    pid_t pid = fork();
    if (pid == 0) {
        std::vector<char*> raw;
        for (auto& arg : argv) raw.push_back(arg.data());
        raw.push_back(nullptr);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        execvp(raw[0], raw.data());
        _exit(127);
    }
    return pid;
}

// A build of user nobody in a cgroup where plain make is OOM-killed, governed through a daemon,
// cold then warm: gated, its peaks exact against the kernel's, its own profile store.
// `client_argv` runs memgov with --stats-json `stats` on make -j4 in `home`.
using ClientArgv = std::function<std::vector<std::string>(const Daemon& daemon, const ScratchDir& work,
                                                          const ScratchDir& home, const std::string& stats)>;
void check_governed_through_daemon(const ClientArgv& client_argv) {
    ScratchDir work;
    ScratchDir home(true);
    write_makefile(home, 4, 100, 300, 200);
    Daemon daemon(work.path());
    TestCgroup cgroup(300 * MiB);  // two at once fit, four do not
    std::uint64_t before = cgroup.oom_kills();
    CHECK(run(cgroup.wrap({"make", "-s", "-j4", "-C", home.path()})) != 0);
    REQUIRE_MESSAGE(cgroup.oom_kills() > before, "plain make was not OOM-killed: the test would prove nothing");

    std::string stats = home.path() + "/stats.json";
    for (const std::string pass : {"cold", "warm"}) {
        CAPTURE(pass);
        before = cgroup.oom_kills();
        std::string out, err;
        int status = run(cgroup.wrap(client_argv(daemon, work, home, stats)), &out, &err);
        INFO("memgov: ", err, "\ndaemon: ", daemon.log());
        REQUIRE(status == 0);
        CHECK(cgroup.oom_kills() == before);
        auto json = nlohmann::json::parse(read_file(stats));
        CHECK(json["jobs"].size() == 4);
        CHECK(json["oom_kills"] == 0);
        auto kernel = memhog_maxrss(out);
        REQUIRE(kernel.size() == 4);
        for (const auto& job : json["jobs"]) {
            pid_t pid = job["job"].get<pid_t>();
            REQUIRE(kernel.contains(pid));
            CHECK(peaks_agree(job["peak_bytes"].get<std::uint64_t>(), kernel[pid]));
        }
        if (std::string(pass) == "cold") CHECK(err.find("WAITING") != std::string::npos);
        CHECK(std::filesystem::exists(home.path() + "/profiles/profiles.json"));  // the user's own store
    }
    CHECK(daemon.log().find("registered build") != std::string::npos);
}

}  // namespace

TEST_CASE("daemon: a build of a user without privilege is governed through it: gated, exact, no OOM kill") {
    check_governed_through_daemon(
        [](const Daemon& daemon, const ScratchDir&, const ScratchDir& home, const std::string& stats) {
            return as_nobody(daemon, home, {"--stats-json", stats, "-v"}, {"make", "-s", "-j4", "-C", home.path()});
        });
}

TEST_CASE("daemon: two builds of users without privilege at once in one cgroup: their ledger entries kept by it") {
    ScratchDir work;
    Daemon daemon(work.path());
    TestCgroup cgroup(1100 * MiB);  // one build's heavy job and both light ones; not two builds' heavy ones
    std::string rules;
    int sizes[] = {600, 600, 200, 200};
    for (int i = 0; i < 4; ++i)
        rules += fmt::format("j{}:\n\t{} --mb {} --ramp-ms 400 --hold-ms 300\n", i, memhog_bin(), sizes[i]);
    ScratchDir first(true), second(true);
    for (const auto* home : {&first, &second}) home->write("Makefile", "all: j0 j1 j2 j3\n" + rules + ".PHONY: all\n");
    for (const std::string pass : {"cold", "warm"}) {
        CAPTURE(pass);
        std::uint64_t before = cgroup.oom_kills();
        auto build = [&](const ScratchDir& home, std::string* err) {
            return run(cgroup.wrap(as_nobody(daemon, home, {"--stats-json", home.path() + "/stats.json", "-v"},
                                             {"timeout", "120", "make", "-s", "-j4", "-C", home.path()})),
                       nullptr, err);
        };
        std::string first_err, second_err;
        auto one = std::async(std::launch::async, [&] { return build(first, &first_err); });
        int other = build(second, &second_err);
        INFO("first: ", first_err, "\nsecond: ", second_err, "\ndaemon: ", daemon.log());
        CHECK(one.get() == 0);
        CHECK(other == 0);
        CHECK(cgroup.oom_kills() == before);
        CHECK(first_err.find("will not see this build") == std::string::npos);
        int waited = 0;
        for (const auto* home : {&first, &second})
            waited += nlohmann::json::parse(read_file(home->path() + "/stats.json"))["jobs_waited"].get<int>();
        CHECK(waited > 0);  // each saw the other's jobs
    }
    for (const auto& entry : std::filesystem::directory_iterator(daemon.ledger_dir()))
        CHECK(entry.path().filename() == "lock");  // the entries left with their builds
}

TEST_CASE("daemon: a client may register only its own child, of its own user") {
    ScratchDir work;
    Daemon daemon(work.path());
    auto request = memgov::encode_request({.op = memgov::DaemonRequest::Op::register_build});
    // Root's process, and nobody's that is not the client's child: refused, with the reason.
    pid_t sleeper = fork();
    if (sleeper == 0) {
        execlp("sleep", "sleep", "30", static_cast<char*>(nullptr));
        _exit(127);
    }
    int pidfd = static_cast<int>(syscall(SYS_pidfd_open, sleeper, 0));
    REQUIRE(pidfd >= 0);
    std::string refused = ask_as(nobody, daemon.socket(), request, pidfd);
    CHECK(refused.find("is not a child of the client") != std::string::npos);
    close(pidfd);
    kill(sleeper, SIGKILL);
    waitpid(sleeper, nullptr, 0);
    CHECK(ask_as(nobody, daemon.socket(), request, -1).find("no pidfd") != std::string::npos);
    // A request before registering, and garbage: the client is dropped, the daemon serves on.
    auto hold = memgov::encode_request({.op = memgov::DaemonRequest::Op::hold, .job = 1});
    CHECK(ask_as(nobody, daemon.socket(), hold, -1) == "no reply");
    CHECK(ask_as(nobody, daemon.socket(), {0xff, 0x00, 0x13}, -1) == "no reply");
    std::vector<std::uint8_t> huge(memgov::max_daemon_message + 100, 0xa0);
    CHECK(ask_as(nobody, daemon.socket(), huge, -1) == "no reply");
    std::string log = daemon.log();
    CHECK(log.find("asked before registering") != std::string::npos);
    CHECK(log.find("not a CBOR map") != std::string::npos);
    CHECK(log.find("too large") != std::string::npos);
    CHECK(ask_as(nobody, daemon.socket(), request, -1).find("no pidfd") != std::string::npos);  // still serving
}

TEST_CASE("daemon: only root may put its build ahead of other users' (--nice below 0)") {
    ScratchDir work;
    ScratchDir home(true);
    write_makefile(home, 1, 10, 0, 0);
    Daemon daemon(work.path());
    // The client refuses itself; a client that does not is refused by the daemon.
    std::string err;
    CHECK(run(as_nobody(daemon, home, {"--nice", "-1"}, {"make", "-s", "-C", home.path()}), nullptr, &err) == 2);
    CHECK(err.find("--nice -1 puts this build's jobs ahead of other users': only root may") != std::string::npos);
    auto ahead = memgov::encode_request({.op = memgov::DaemonRequest::Op::register_build, .nice = -1});
    pid_t child = fork();
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);  // not left behind by a test that throws
        pause();
        _exit(0);
    }
    int pidfd = static_cast<int>(syscall(SYS_pidfd_open, child, 0));
    CHECK(ask_as(nobody, daemon.socket(), ahead, pidfd).find("only root may") != std::string::npos);
    close(pidfd);
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    // Nicer is anyone's to choose.
    CHECK(run(as_nobody(daemon, home, {"--nice", "10"}, {"make", "-s", "-C", home.path()})) == 0);
}

TEST_CASE("daemon: killed mid-build, its clients say so and their builds finish, nothing left stopped") {
    ScratchDir work;
    ScratchDir home(true);
    write_makefile(home, 4, 100, 1500, 500);
    auto daemon = std::make_unique<Daemon>(work.path());
    // memgov holds two of the four (--limit); ungoverned, all four fit the cgroup, so the
    // build finishes after the daemon died, with nothing OOM-killed (memgov under ASan is large).
    TestCgroup cgroup(800 * MiB);
    std::string out_path = home.path() + "/out", err_path = home.path() + "/err";
    pid_t client = fork();
    if (client == 0) {
        freopen(out_path.c_str(), "w", stdout);
        freopen(err_path.c_str(), "w", stderr);
        auto argv =
            cgroup.wrap(as_nobody(*daemon, home, {"--limit", "300M"}, {"make", "-s", "-j4", "-C", home.path()}));
        std::vector<char*> raw;
        for (auto& arg : argv) raw.push_back(arg.data());
        raw.push_back(nullptr);
        execvp(raw[0], raw.data());
        _exit(127);
    }
    // Once jobs wait at the gate (two run, two are held), the daemon dies.
    auto memhogs = wait_for_memhogs(4);
    REQUIRE(memhogs.size() == 4);
    std::this_thread::sleep_for(200ms);
    CHECK(any_stopped(memhogs));  // held at the gate
    daemon->kill9();
    std::this_thread::sleep_for(200ms);
    CHECK_FALSE(any_stopped(memhogs));
    int status = 0;
    waitpid(client, &status, 0);
    INFO(read_file(err_path));
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(read_file(err_path).find("lost the memgov daemon") != std::string::npos);

    // A daemon started again serves new builds.
    Daemon again(work.path());
    std::string err;
    CHECK(run(as_nobody(again, home, {"-q"}, {"true"}), nullptr, &err) == 0);
    CHECK(err.empty());
}

TEST_CASE("daemon: a client killed while it holds jobs leaves nothing stopped, nor any job its build starts later") {
    ScratchDir work;
    ScratchDir home(true);
    write_makefile(home, 6, 100, 1500, 300);
    Daemon daemon(work.path());
    // memgov holds the third job (--limit); ungoverned, all three fit the cgroup, so make goes
    // on starting jobs after its client died instead of stopping at an OOM-killed one.
    TestCgroup cgroup(500 * MiB);
    pid_t client = start_quietly(
        cgroup.wrap(as_nobody(daemon, home, {"-q", "--limit", "250M"}, {"make", "-s", "-j3", "-C", home.path()})));
    auto memhogs = three_memhogs_one_held();
    kill(client_memgov(), SIGKILL);
    std::this_thread::sleep_for(200ms);
    CHECK_FALSE(any_stopped(memhogs));
    // make goes on, ungoverned: the jobs it starts now are neither stopped nor reported.
    bool ended = false;
    for (int i = 0; i < 300 && !ended; ++i) {
        std::this_thread::sleep_for(100ms);
        std::string left;
        ended = run({"pgrep", "-f", "--", "-C " + home.path()}, &left) != 0;
    }
    CHECK_MESSAGE(ended, "make did not finish: a job it started after its client died is stopped");
    run({"pkill", "-KILL", "-f", "--", home.path()});
    waitpid(client, nullptr, 0);
    CHECK(daemon.log().find("it hung up") != std::string::npos);  // its build forgotten
}

// What a container that bind-mounts the daemon's socket looks like: its own pid namespace and
// /proc, a mount namespace where the daemon's directory (`work`) is hidden and only the socket
// is there (at another path), a user without privilege. Its pids are not the daemon's; its init
// is a shell. The argv that runs make in `home` there under memgov.
std::vector<std::string> in_container(const Daemon& daemon, const ScratchDir& work, const ScratchDir& home,
                                      const std::string& memgov_args, const std::string& make_args,
                                      const std::string& then = "true") {
    std::string inside = home.path() + "/run";
    std::filesystem::create_directories(inside);
    return {"unshare",
            "--pid",
            "--fork",
            "--mount-proc",
            "sh",
            "-c",
            fmt::format("mount -t tmpfs none {0} && touch {0}/memgov.sock && mount --bind {1} {0}/memgov.sock && "
                        "mount -t tmpfs none {2} && setpriv --reuid=65534 --regid=65534 --clear-groups "
                        "--inh-caps=-all {3} --socket {0}/memgov.sock --profiles-dir {4}/profiles {5} -- make -s {6} "
                        "-C {4}; {7}",
                        inside, daemon.socket(), work.path(), memgov_bin(), home.path(), memgov_args, make_args, then)};
}

// `sudo make install` in a build: its client may not signal what runs as root from outside its
// session (`setsid`), so it must never be stopped at its exec: the client could not continue it.
TEST_CASE("daemon: a setuid step that becomes root is measured, never stopped, and the client says so") {
    ScratchDir work;  // root's, 0755: nobody else can put anything in it
    ScratchDir home(true);
    std::string sudo = install_become_root(work.path());
    std::string rule = fmt::format("\tsetsid -w {} {} --mb 200 --ramp-ms 300 --hold-ms 500\n", sudo, memhog_bin());
    home.write("Makefile", "all: j0 j1\nj0:\n" + rule + "j1:\n" + rule + ".PHONY: all j0 j1\n");
    Daemon daemon(work.path());
    std::string stats = home.path() + "/stats.json";
    std::string out, err;
    // Under this limit one of the two would wait, were it stopped at its exec.
    int status = run(as_nobody(daemon, home, {"--stats-json", stats, "--limit", "300M", "-v"},
                               {"timeout", "-k", "5", "30", "make", "-s", "-j2", "-C", home.path()}),
                     &out, &err);
    auto stopped = pgrep({"-f", "-r", "T", memhog_bin()});
    for (pid_t pid : pgrep({"-f", memhog_bin()})) kill(pid, SIGKILL);  // after a failure: not left for others
    INFO("memgov: ", err, "\ndaemon: ", daemon.log());
    CHECK(status == 0);
    CHECK(stopped.empty());
    CHECK(err.find("2 jobs ran as another user (a setuid step) and could not be held") != std::string::npos);
    auto json = nlohmann::json::parse(read_file(stats));
    REQUIRE(json["jobs"].size() == 2);
    auto kernel = memhog_maxrss(out);
    for (const auto& job : json["jobs"]) {
        CHECK(job["other_user"] == true);
        CHECK(job["waited"] == false);
        pid_t pid = job["job"].get<pid_t>();
        REQUIRE(kernel.contains(pid));
        CHECK(peaks_agree(job["peak_bytes"].get<std::uint64_t>(), kernel[pid]));  // still measured exactly
    }
}

// A client that publishes what it likes: every job about to take all there is, jobs running
// that it does not have, a job waiting since the daemon started. Its one real job sleeps.
// The daemon holds its entry to what it sees of its build (vouched_for), and a build whose
// running jobs change nothing rests after the stall timeout (ProgressWatch).
TEST_CASE("daemon: a client's ledger claims cannot make another user's build wait for ever") {
    ScratchDir work;
    ScratchDir home(true);
    write_makefile(home, 2, 100, 300, 300);
    Daemon daemon(work.path());

    std::string error;
    auto hostile = memgov::RemoteTracker::connect(daemon.socket(), error, [](const std::string&) {});
    REQUIRE_MESSAGE(hostile, error);
    hostile->set_gate(false);
    auto ledger = hostile->ledger({.pid = getpid(), .uid = 0, .command = "hostile"});
    int barrier[2];
    REQUIRE(pipe(barrier) == 0);
    pid_t sleeper = fork();
    if (sleeper == 0) {
        char go;
        close(barrier[1]);
        if (read(barrier[0], &go, 1) != 1) _exit(1);
        execl(memhog_bin().c_str(), "memhog", "--mb", "20", "--hold-ms", "120000", static_cast<char*>(nullptr));
        _exit(127);
    }
    close(barrier[0]);
    hostile->track(sleeper);
    REQUIRE(write(barrier[1], "g", 1) == 1);
    close(barrier[1]);
    std::atomic<bool> done{false};
    std::atomic<int> published{0};
    auto claims = std::async(std::launch::async, [&] {
        while (!done) {
            hostile->poll(0ms, [](const memgov::TrackerEvent&) {});
            auto turn = ledger->take_turn(200ms);
            memgov::LedgerState state;
            state.published_at = memgov::Clock::now() + 1h;
            state.share = {.imminent_bytes = 1ull << 40,
                           .near_growth_bytes = 1ull << 40,
                           .kept_bytes = 1ull << 40,
                           .running = 64,
                           .oldest_waiting = memgov::OtherBuilds::Waiting{memgov::Clock::time_point{}, 1ull << 40}};
            ledger->publish(state);
            turn.reset();
            ++published;
            std::this_thread::sleep_for(100ms);
        }
    });
    // The other build starts once the claims stand in the ledger (a slow host, under ASan,
    // started it before them once: its jobs were admitted at once, then stopped by its net).
    for (int i = 0; i < 100 && published < 3; ++i) std::this_thread::sleep_for(50ms);
    REQUIRE(published >= 3);

    std::string stats = home.path() + "/stats.json";
    std::string err;
    auto started = std::chrono::steady_clock::now();
    int status = run(as_nobody(daemon, home, {"--stats-json", stats, "-v"},
                               {"timeout", "-k", "5", "90", "make", "-s", "-j2", "-C", home.path()}),
                     nullptr, &err);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    done = true;
    claims.get();
    kill(sleeper, SIGKILL);
    waitpid(sleeper, nullptr, 0);
    INFO("memgov: ", err, "\ndaemon: ", daemon.log());
    CHECK(status == 0);
    CHECK(seconds < 60);  // the stall timeout (10 s) and the jobs, not the sleeper's two minutes
    // The hostile build rests (its job changes nothing): ours starts as if alone on the host.
    CHECK(err.find("PROCEEDING (nothing else running") != std::string::npos);
    CHECK(nlohmann::json::parse(read_file(stats))["jobs"].size() == 2);
}

TEST_CASE("daemon: a containerised client is governed with its own pids: gated, exact, no OOM kill") {
    // Each memhog reports its own getpid(): the container's numbers, which the stats must use.
    check_governed_through_daemon(
        [](const Daemon& daemon, const ScratchDir& work, const ScratchDir& home, const std::string& stats) {
            return in_container(daemon, work, home, "--stats-json " + stats + " -v", "-j4");
        });
}

TEST_CASE("daemon: a container's client killed while it holds jobs, then the container: nothing left stopped") {
    ScratchDir work;
    ScratchDir home(true);
    write_makefile(home, 3, 100, 1500, 300);
    Daemon daemon(work.path());
    // memgov holds one job; the container lives on after memgov, until the test kills it.
    pid_t container = start_quietly(in_container(daemon, work, home, "-q --limit 250M", "-j3", "sleep 60"));
    auto memhogs = three_memhogs_one_held();
    kill(client_memgov(), SIGKILL);
    std::this_thread::sleep_for(200ms);
    CHECK_FALSE(any_stopped(memhogs));                         // the guard continued what the client held, by host pid
    for (pid_t memhog : memhogs) CHECK(kill(memhog, 0) == 0);  // and they live: the container does
    // The container exits (its init killed): the kernel ends everything in it.
    auto init = pgrep({"-P", std::to_string(container)});
    REQUIRE_FALSE(init.empty());
    kill(init.front(), SIGKILL);
    waitpid(container, nullptr, 0);
    bool gone = false;
    for (int i = 0; i < 100 && !gone; ++i) {
        std::this_thread::sleep_for(20ms);
        gone = wait_for_memhogs(0).empty();
    }
    CHECK(gone);
    for (int i = 0; i < 100 && daemon.log().find("it hung up") == std::string::npos; ++i)
        std::this_thread::sleep_for(20ms);
    CHECK(daemon.log().find("it hung up") != std::string::npos);  // its build forgotten
}

// The net's stop and resume go through the daemon (hold, release): with the container's pids.
TEST_CASE("daemon: a containerised client's emergency stops and resumes reach its own processes") {
    ScratchDir work;
    ScratchDir home(true);
    write_makefile(home, 3, 300, 1500, 300);
    Daemon daemon(work.path());
    TestCgroup cgroup(800 * MiB);  // two fit, three do not
    std::uint64_t before = cgroup.oom_kills();
    std::string stats = home.path() + "/stats.json";
    // Guessed at 100 MB each, all three start; one is stopped as they grow.
    std::string out, err;
    int status = run(
        cgroup.wrap(in_container(daemon, work, home,
                                 "--stats-json " + stats + " -v --cold-estimate 100M --emergency-floor 100M", "-j3")),
        &out, &err);
    INFO("memgov: ", err, "\ndaemon: ", daemon.log());
    REQUIRE(status == 0);
    CHECK(cgroup.oom_kills() == before);
    auto json = nlohmann::json::parse(read_file(stats));
    CHECK(json["emergency_stops"].get<int>() >= 1);
    CHECK(err.find("Memory is back") != std::string::npos);
}

TEST_CASE("daemon: fifty clients at once are all served") {
    ScratchDir work;
    ScratchDir home(true);
    Daemon daemon(work.path(), {"--max-builds-per-user", "64"});
    std::vector<pid_t> clients;
    for (int i = 0; i < 50; ++i) {
        pid_t child = fork();
        if (child == 0) {
            auto argv = as_nobody(daemon, home, {"-q"}, {"true"});
            std::vector<char*> raw;
            for (auto& arg : argv) raw.push_back(arg.data());
            raw.push_back(nullptr);
            execvp(raw[0], raw.data());
            _exit(127);
        }
        clients.push_back(child);
    }
    int served = 0;
    for (pid_t child : clients) {
        int status = 0;
        waitpid(child, &status, 0);
        served += WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    CHECK(served == 50);
}
