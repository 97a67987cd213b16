// Distributed workers governed by memgov: `memgov -- distccd …` in a memory cgroup on the
// worker's side, driven over loopback by a client `make -j16` that sends it every compile; and
// `memgov -- iceccd …` as an icecream worker in a network namespace of its own, sent every
// compile of a client through icecream's scheduler.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>
#include <utility>

#include "harness.h"
#include "test_cgroup.h"

using namespace harness;
using namespace std::chrono_literals;

namespace {

constexpr std::uint64_t MiB = 1ull << 20;
constexpr int heavy_units = 6;

int free_port() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{.sin_family = AF_INET, .sin_port = 0, .sin_addr = {htonl(INADDR_LOOPBACK)}, .sin_zero = {}};
    bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
    socklen_t length = sizeof address;
    getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    close(fd);
    return ntohs(address.sin_port);
}

bool listening(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{.sin_family = AF_INET,
                        .sin_port = htons(static_cast<std::uint16_t>(port)),
                        .sin_addr = {htonl(INADDR_LOOPBACK)},
                        .sin_zero = {}};
    bool connected = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    close(fd);
    return connected;
}

// `argv` in the background, in a process group of its own (its output dropped): the test stops
// the whole of it at once.
pid_t start_in_group(const std::vector<std::string>& argv) {
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        std::vector<char*> args;
        for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
        args.push_back(nullptr);
        execvp(args[0], args.data());
        _exit(127);
    }
    return pid;
}

// SIGTERM to what start_in_group started (memgov passes it on to its build), then after at
// most 10 s SIGKILL to whatever its group left behind; its exit status. Never for pid 0 or less (not started, or
// stopped already): kill(0 or -1, …) would reach far more than ours.
int stop_group(pid_t pid) {
    if (pid <= 0) return 0;
    kill(pid, SIGTERM);
    int status = 0;
    for (int i = 0; i < 200 && waitpid(pid, &status, WNOHANG) == 0; ++i) std::this_thread::sleep_for(50ms);
    kill(-pid, SIGKILL);
    waitpid(pid, &status, 0);  // at once if it was reaped above (ECHILD), else after SIGKILL
    return status;
}

// A worker (argv, in the cgroup) in the background until stopped.
class Worker {
public:
    Worker(const TestCgroup& cgroup, std::vector<std::string> prefix, int port, const std::string& log) {
        std::vector<std::string> argv = std::move(prefix);
        argv.insert(argv.end(), {"distccd", "--no-detach", "--daemon", "--allow", "127.0.0.1", "--listen", "127.0.0.1",
                                 "--port", std::to_string(port), "--jobs", "16", "--log-file", log});
        pid_ = start_in_group(cgroup.wrap(argv));
        for (int i = 0; i < 100 && !listening(port); ++i) std::this_thread::sleep_for(50ms);
    }
    ~Worker() { stop_group(pid_); }  // a test that failed half-way leaves none behind
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;
    // Stops the worker; returns its exit status.
    int stop() { return stop_group(std::exchange(pid_, 0)); }

private:
    pid_t pid_ = 0;
};

// Six heavy translation units (the demo project's parser.cpp, ~480 MB each under g++ -O2).
void write_project(const ScratchDir& project) {
    auto demo = std::filesystem::path(MEMGOV_SOURCE_DIR) / "tools/demo/project/src";
    std::filesystem::copy_file(demo / "heavy.h", std::filesystem::path(project.path()) / "heavy.h");
    std::string objects;
    for (int i = 0; i < heavy_units; ++i) {
        std::filesystem::copy_file(demo / "parser.cpp",
                                   std::filesystem::path(project.path()) / fmt::format("u{}.cpp", i));
        objects += fmt::format(" u{}.o", i);
    }
    project.write("Makefile", fmt::format("all:{}\n%.o: %.cpp heavy.h\n\t$(CXX) -O2 -std=c++17 -c $< -o $@\n"
                                          "clean:\n\trm -f *.o\n.PHONY: all clean\n",
                                          objects));
}

// The client: every compile goes to the worker, none is done here.
int client_make(const ScratchDir& project, int port) {
    run({"make", "-s", "-C", project.path(), "clean"});
    std::string hosts = fmt::format("127.0.0.1:{}/16", port);
    return run({"env", "DISTCC_HOSTS=" + hosts, "DISTCC_FALLBACK=0", "DISTCC_SKIP_LOCAL_RETRY=1",
                "DISTCC_IO_TIMEOUT=600", "timeout", "300", "make", "-s", "-j16", "-C", project.path(),
                "CXX=distcc g++"});
}

// The worker's compiles (g++ and what it runs, on distccd's temporary file), by pid.
std::vector<pid_t> compilers() { return pgrep({"-f", "distccd_"}); }

}  // namespace

TEST_CASE("a distcc worker: plain distccd is OOM-killed in its cgroup, memgov's worker finishes and learns") {
    ScratchDir project;
    ScratchDir work(true);  // distccd, as its own user, writes its log here
    write_project(project);
    TestCgroup cgroup(1100 * MiB);

    int port = free_port();
    std::uint64_t before = cgroup.oom_kills();
    Worker plain(cgroup, {}, port, work.path() + "/plain.log");
    int plain_client = client_make(project, port);
    plain.stop();
    CHECK(plain_client != 0);
    REQUIRE_MESSAGE(cgroup.oom_kills() > before, "plain distccd was not OOM-killed: the test would prove nothing");

    std::string profiles = work.path() + "/profiles";
    for (const std::string pass : {"cold", "warm"}) {
        CAPTURE(pass);
        port = free_port();
        std::uint64_t oom_before = cgroup.oom_kills();
        std::string stats = work.path() + fmt::format("/{}.json", pass);
        Worker governed(cgroup,
                        {memgov_bin(), "-q", "--ledger", "off", "--profiles-dir", profiles, "--stats-json", stats, "-v",
                         "--log", work.path() + fmt::format("/{}.log", pass)},
                        port, work.path() + "/governed.log");
        int client = client_make(project, port);
        governed.stop();
        CHECK(client == 0);
        CHECK(cgroup.oom_kills() == oom_before);
        for (int i = 0; i < heavy_units; ++i)
            CHECK(std::filesystem::exists(fmt::format("{}/u{}.o", project.path(), i)));
    }
    // Each unit was learned under the source the client compiled (from the preprocessed file's
    // line markers), not under the worker's temporary file, so the warm run knew them all.
    std::ifstream store(profiles + "/profiles.json");
    auto learned = nlohmann::json::parse(store)["profiles"];
    for (int i = 0; i < heavy_units; ++i) CHECK(learned.contains(fmt::format("u{}.cpp", i)));
    std::ifstream warm_log(work.path() + "/warm.log");
    std::string warm((std::istreambuf_iterator<char>(warm_log)), std::istreambuf_iterator<char>());
    CHECK(warm.find("distccd_") == std::string::npos);
    CHECK(warm.find("u0.cpp: needs") != std::string::npos);
}

TEST_CASE("a distcc worker: a client that hangs up while its compiles are held leaves none stopped") {
    ScratchDir project;
    ScratchDir work(true);
    write_project(project);
    TestCgroup cgroup(1100 * MiB);
    int port = free_port();
    // Room for one compile at a time: the client's others are held at their exec.
    Worker governed(cgroup, {memgov_bin(), "-q", "--ledger", "off", "--limit", "600M", "--cold-estimate", "500M"}, port,
                    work.path() + "/governed.log");
    pid_t client =
        start_in_group({"env", fmt::format("DISTCC_HOSTS=127.0.0.1:{}/16", port), "DISTCC_FALLBACK=0", "make", "-s",
                        "-j3", "-C", project.path(), "CXX=distcc g++", "u0.o", "u1.o", "u2.o"});
    bool held = false;
    for (int i = 0; i < 600 && !held; ++i) {
        std::this_thread::sleep_for(50ms);
        for (pid_t pid : compilers()) held = held || process_state(pid) == 'T';
    }
    REQUIRE_MESSAGE(held, "no compile was held: the test would prove nothing");
    kill(-client, SIGKILL);  // make and its distcc clients: their connections close
    waitpid(client, nullptr, 0);
    // The held compiles are started as memory allows and end; none stays stopped.
    bool ended = false;
    for (int i = 0; i < 1200 && !ended; ++i) {
        std::this_thread::sleep_for(100ms);
        ended = compilers().empty();
    }
    CHECK_MESSAGE(ended, "a compile of the client that hung up is still there");
    // The worker goes on serving.
    CHECK(client_make(project, port) == 0);
    for (int i = 0; i < heavy_units; ++i) CHECK(std::filesystem::exists(fmt::format("{}/u{}.o", project.path(), i)));
    governed.stop();
}

namespace {

// An icecream network on this host: a scheduler, a worker (`prefix` iceccd, in the cgroup) in
// a network namespace of its own (icecream tells nodes apart by address) and a mount
// namespace (its daemon socket directory), and a client daemon that compiles nothing itself.
// Their own netname, so that an icecream already on the host neither joins nor is joined.
// A network namespace for a worker, joined to ours by a veth pair: HOST (ours) and WORKER
// (its) in 198.18.77.0/24, a range kept for benchmarking networks (RFC 2544), not routed.
// Removed with its links when it goes, however the test ends.
class WorkerNetwork {
public:
    static constexpr const char* host_address = "198.18.77.1";
    static constexpr const char* worker_address = "198.18.77.2";

    WorkerNetwork()
        : name_(fmt::format("memgov-ice-{}", getpid())), host_end_(fmt::format("mgi{}a", getpid() % 100000)) {
        std::string worker_end = fmt::format("mgi{}b", getpid() % 100000);
        std::string in_use;
        run({"ip", "-o", "addr", "show"}, &in_use);
        REQUIRE_MESSAGE(in_use.find(" 198.18.77.") == std::string::npos, "198.18.77.0/24 is in use on this host");
        for (const auto& command : std::vector<std::vector<std::string>>{
                 {"ip", "netns", "add", name_},
                 {"ip", "link", "add", host_end_, "type", "veth", "peer", "name", worker_end},
                 {"ip", "link", "set", worker_end, "netns", name_},
                 {"ip", "addr", "add", std::string(host_address) + "/24", "dev", host_end_},
                 {"ip", "link", "set", host_end_, "up"},
                 {"ip", "netns", "exec", name_, "ip", "addr", "add", std::string(worker_address) + "/24", "dev",
                  worker_end},
                 {"ip", "netns", "exec", name_, "ip", "link", "set", worker_end, "up"},
                 {"ip", "netns", "exec", name_, "ip", "link", "set", "lo", "up"}})
            if (run(command) != 0) {
                remove();
                FAIL("cannot set up a network namespace for the worker: ip ", command[1], " ", command[2]);
            }
    }
    ~WorkerNetwork() { remove(); }
    WorkerNetwork(const WorkerNetwork&) = delete;
    WorkerNetwork& operator=(const WorkerNetwork&) = delete;
    // Runs what follows in the namespace. nsenter, not `ip netns exec`: that mounts a sysfs of
    // its own, without the cgroup hierarchies, and memgov would not see the cgroup's limit.
    std::vector<std::string> enter() const { return {"nsenter", "--net=/run/netns/" + name_}; }

private:
    void remove() const {
        run({"ip", "link", "del", host_end_});
        run({"ip", "netns", "del", name_});
    }
    std::string name_;
    std::string host_end_;
};

// An icecream network on this host: a scheduler, a worker (`prefix` iceccd, in the cgroup) in
// a network namespace of its own (icecream tells nodes apart by address) and a mount
// namespace (its daemon socket directory), and a client daemon that compiles nothing itself.
// Their own netname, so that an icecream already on the host neither joins nor is joined.
class Icecream {
public:
    // Its logs are `work`/`name`-{scheduler,worker,client}.log.
    Icecream(const TestCgroup& cgroup, const std::vector<std::string>& prefix, const ScratchDir& work,
             const std::string& name)
        : logs_(work.path() + "/" + name), work_(work.path()) {
        scheduler_ = fmt::format("{}:{}", WorkerNetwork::host_address, free_port());
        scheduler_pid_ =
            start_in_group({"icecc-scheduler", "-n", netname, "-p", scheduler_.substr(scheduler_.find(':') + 1), "-l",
                            logs_ + "-scheduler.log", "-vv"});
        std::vector<std::string> worker = network_.enter();
        worker.insert(worker.end(), {"unshare", "-m", "sh", "-c",
                                     "mount -t tmpfs tmpfs /run && mkdir /run/icecc && exec \"$@\"", "sh"});
        worker.insert(worker.end(), prefix.begin(), prefix.end());
        worker.insert(worker.end(), {"iceccd", "-n", netname, "-s", scheduler_, "-N", "worker", "-m", "8", "-b",
                                     work_ + "/worker-envs", "-l", logs_ + "-worker.log", "-vv"});
        worker_pid_ = start_in_group(cgroup.wrap(worker));
    }
    ~Icecream() {
        for (pid_t pid : {worker_pid_, scheduler_pid_}) stop_group(pid);
    }
    // Stops the worker (memgov passes SIGTERM on); its exit status.
    int stop_worker() { return stop_group(std::exchange(worker_pid_, 0)); }
    // `make -j6` of `project` on the client: its own daemon (own socket directory, no local
    // jobs), once both daemons have logged in to the scheduler. The make's status (124: it
    // did not end within `seconds`).
    int client_make(const ScratchDir& project, int seconds) const {
        std::string script = fmt::format(
            "mount -t tmpfs tmpfs /run && mkdir /run/icecc || exit 90\n"
            "iceccd -n {0} -s {1} -N client -m 0 --no-remote -p {2} -b {3}/client-envs -l {6}-client.log -vv &\n"
            "daemon=$!\n"
            "for i in $(seq 300); do\n"
            "  [ $(grep -l 'Connected to scheduler' {6}-client.log {6}-worker.log 2>/dev/null | wc -l) = 2 ] && break\n"
            "  sleep 0.1\n"
            "done\n"
            "make -s -C {4} clean\n"
            "PATH=/usr/lib/icecc/bin:$PATH timeout {5} make -s -j6 -C {4} CXX=g++\n"
            "status=$?\n"
            "kill $daemon; wait $daemon\n"
            "exit $status\n",
            netname, scheduler_, free_port(), work_, project.path(), seconds, logs_);
        return run({"unshare", "-m", "sh", "-c", script});
    }
    std::string log(const std::string& name) const {
        std::ifstream in(logs_ + "-" + name + ".log");
        return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    }

private:
    static constexpr const char* netname = "memgov-test";
    WorkerNetwork network_;  // first: gone last
    std::string logs_;
    std::string work_;
    std::string scheduler_;
    pid_t scheduler_pid_ = 0;
    pid_t worker_pid_ = 0;
};

}  // namespace

TEST_CASE("an icecream worker: plain iceccd fails in its cgroup, memgov's worker finishes in time and learns") {
    REQUIRE_MESSAGE(run({"sh", "-c", "command -v iceccd && command -v icecc-scheduler && command -v ip"}) == 0,
                    "icecream (package icecc) and iproute2 are needed: tools/install-deps.sh installs them");
    ScratchDir project;
    ScratchDir work(true);  // iceccd compiles as user icecc in environments unpacked here
    write_project(project);
    TestCgroup cgroup(1100 * MiB);

    // Six compiles of ~500 MB at once in 1100 MiB: the kernel OOM-kills some, or (no swap) the
    // cgroup thrashes at its limit for minutes. Either way not done within the minute that
    // memgov's worker needs a fraction of. (icecream compiles a failed remote job again on the
    // client, so the client's make alone does not show an OOM kill.)
    std::uint64_t before = cgroup.oom_kills();
    {
        Icecream plain(cgroup, {}, work, "plain");
        int status = plain.client_make(project, 60);
        REQUIRE_MESSAGE((status == 124 || cgroup.oom_kills() > before),
                        "plain iceccd neither was OOM-killed nor ran out of time: the test would prove nothing");
    }

    std::string profiles = work.path() + "/profiles";
    for (const std::string pass : {"cold", "warm"}) {
        CAPTURE(pass);
        std::uint64_t oom_before = cgroup.oom_kills();
        std::string stats = work.path() + fmt::format("/{}.json", pass);
        Icecream governed(cgroup,
                          {memgov_bin(), "-q", "--ledger", "off", "--always-stop", "--profiles-dir", profiles,
                           "--stats-json", stats, "-v", "--log", work.path() + fmt::format("/{}-memgov.log", pass)},
                          work, pass);
        int client = governed.client_make(project, 60);
        governed.stop_worker();
        INFO("worker: ", governed.log("worker"), "\nclient: ", governed.log("client"));
        CHECK(client == 0);
        CHECK(cgroup.oom_kills() == oom_before);
        // Every compile ran on the worker, under memgov: none was sent back to the client.
        auto jobs = nlohmann::json::parse(std::ifstream(stats))["jobs"];
        CHECK(jobs.size() == heavy_units);
        for (int i = 0; i < heavy_units; ++i)
            CHECK(std::filesystem::exists(fmt::format("{}/u{}.o", project.path(), i)));
    }
    // Each unit was learned under the source its pipe named, so the warm run knew them all.
    auto learned = nlohmann::json::parse(std::ifstream(profiles + "/profiles.json"))["profiles"];
    for (int i = 0; i < heavy_units; ++i) CHECK(learned.contains(fmt::format("u{}.cpp", i)));
    std::ifstream warm_log(work.path() + "/warm-memgov.log");
    std::string warm((std::istreambuf_iterator<char>(warm_log)), std::istreambuf_iterator<char>());
    CHECK(warm.find("never named") == std::string::npos);
    CHECK(warm.find("u0.cpp: needs") != std::string::npos);
}
