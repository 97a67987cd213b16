// A distcc worker governed by memgov: `memgov -- distccd …` in a memory cgroup on the worker's
// side, driven over loopback by a client `make -j16` that sends it every compile.
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

// A worker (argv, in the cgroup) in the background until stopped.
class Worker {
public:
    Worker(const TestCgroup& cgroup, std::vector<std::string> prefix, int port, const std::string& log) {
        std::vector<std::string> argv = std::move(prefix);
        argv.insert(argv.end(), {"distccd", "--no-detach", "--daemon", "--allow", "127.0.0.1", "--listen", "127.0.0.1",
                                 "--port", std::to_string(port), "--jobs", "16", "--log-file", log});
        argv = cgroup.wrap(argv);
        pid_ = fork();
        if (pid_ == 0) {
            setpgid(0, 0);  // its own group: the test stops the whole worker at once
            std::vector<char*> args;
            for (auto& arg : argv) args.push_back(arg.data());
            args.push_back(nullptr);
            execvp(args[0], args.data());
            _exit(127);
        }
        for (int i = 0; i < 100 && !listening(port); ++i) std::this_thread::sleep_for(50ms);
    }
    // Stops the worker (memgov passes SIGTERM on to distccd); returns its exit status.
    int stop() {
        kill(pid_, SIGTERM);
        int status = 0;
        waitpid(pid_, &status, 0);
        kill(-pid_, SIGKILL);  // whatever distccd left behind
        return status;
    }

private:
    pid_t pid_;
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
    for (const char* pass : {"cold", "warm"}) {
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
    pid_t client = fork();
    if (client == 0) {
        setpgid(0, 0);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        std::string hosts = fmt::format("127.0.0.1:{}/16", port);
        execlp("env", "env", ("DISTCC_HOSTS=" + hosts).c_str(), "DISTCC_FALLBACK=0", "make", "-s", "-j3", "-C",
               project.path().c_str(), "CXX=distcc g++", "u0.o", "u1.o", "u2.o", nullptr);
        _exit(127);
    }
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
