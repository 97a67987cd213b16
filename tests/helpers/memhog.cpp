// memhog: a process with a known memory shape, for tests and benchmarks.
//   memhog [--mb N] [--ramp-ms R] [--hold-ms T] [--children K] [--child-mb M] [--thread-mb M]
// Touches N MiB (spread over R ms, as a compiler grows), holds them T ms (children and a thread run alongside), then prints
//   memhog pid=<pid> maxrss_kb=<getrusage ru_maxrss>
// for itself and for each child, so tests can compare the kernel's figure with memgov's.
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Shape {
    long mb = 0;
    long hold_ms = 0;
    long ramp_ms = 0;
    long children = 0;
    long child_mb = -1;  // -1: same as mb
    long thread_mb = 0;
};

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr, "memhog: %s\nusage: memhog [--mb N] [--ramp-ms R] [--hold-ms T] [--children K] "
                         "[--child-mb M] [--thread-mb M]\n", why);
    std::exit(2);
}

Shape parse(int argc, char** argv) {
    Shape shape;
    for (int i = 1; i < argc; ++i) {
        std::string flag = argv[i];
        if (i + 1 >= argc) usage(("missing value for " + flag).c_str());
        char* end = nullptr;
        long value = std::strtol(argv[++i], &end, 10);
        if (*end || value < 0) usage(("bad value for " + flag).c_str());
        if (flag == "--mb") shape.mb = value;
        else if (flag == "--hold-ms") shape.hold_ms = value;
        else if (flag == "--ramp-ms") shape.ramp_ms = value;
        else if (flag == "--children") shape.children = value;
        else if (flag == "--child-mb") shape.child_mb = value;
        else if (flag == "--thread-mb") shape.thread_mb = value;
        else usage(("unknown option " + flag).c_str());
    }
    if (shape.child_mb < 0) shape.child_mb = shape.mb;
    return shape;
}

void hold(long ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

void touch(long mb, long ramp_ms = 0) {
    if (mb == 0) return;
    std::size_t bytes = static_cast<std::size_t>(mb) << 20;
    auto* block = static_cast<char*>(
        mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (block == MAP_FAILED) {
        std::perror("memhog: mmap");
        std::exit(3);
    }
    constexpr long steps = 20;
    std::size_t step = (bytes + steps - 1) / steps;
    for (std::size_t done = 0; done < bytes; done += step) {
        std::memset(block + done, 0x5a, std::min(step, bytes - done));
        if (ramp_ms > 0) hold(ramp_ms / steps);
    }
}

void report() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    std::printf("memhog pid=%d maxrss_kb=%ld\n", getpid(), usage.ru_maxrss);
    std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
    Shape shape = parse(argc, argv);
    std::vector<pid_t> children;
    for (long i = 0; i < shape.children; ++i) {
        pid_t pid = fork();
        if (pid < 0) {
            std::perror("memhog: fork");
            return 3;
        }
        if (pid == 0) {
            touch(shape.child_mb, shape.ramp_ms);
            hold(shape.hold_ms);
            report();
            _exit(0);
        }
        children.push_back(pid);
    }
    std::thread worker;
    if (shape.thread_mb > 0)
        worker = std::thread([&] {
            touch(shape.thread_mb, shape.ramp_ms);
            hold(shape.hold_ms);
        });
    touch(shape.mb, shape.ramp_ms);
    hold(shape.hold_ms);
    if (worker.joinable()) worker.join();
    int failed = 0;
    for (pid_t pid : children) {
        int status = 0;
        waitpid(pid, &status, 0);
        failed += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    report();
    return failed ? 1 : 0;
}
