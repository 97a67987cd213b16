// memhog: a process with a known memory shape, for tests and benchmarks.
//   memhog [--mb N] [--ramp-ms R] [--hold-ms T] [--children K] [--child-mb M] [--thread-mb M]
//          [--shape linear|steps|late-spike|slow-jump] [--plateaus P] [--spin-ms S]
// Touches N MiB (spread over R ms, as a compiler grows), holds them T ms (children and a thread run alongside), then
// prints
//   memhog pid=<pid> maxrss_kb=<getrusage ru_maxrss>
// for itself and for each child, so tests can compare the kernel's figure with memgov's.
// --shape: how the N MiB grow over the R ms (each process and the thread alike); the growth is irregular so that
// benchmarks can test predictions that a job's early memory says little about:
//   linear      20 equal steps, one every R/20 ms (the default)
//   steps       P plateaus (--plateaus, 4) with pauses between: a jump to k/P of N at k*R/(P+1) ms
//   late-spike  a slow ramp to 35 % of N until 50 ms before R, then the rest within those 50 ms
//   slow-jump   15 % of N within R/10, flat until 0.8*R, then all of N at once
// Shapes other than linear keep to the clock (memset time included), so ramp + hold take R + T ms.
// --spin-ms: first, S ms of CPU time in a busy loop (however long that takes on a busy CPU).
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

namespace {

enum class Growth { linear, steps, late_spike, slow_jump };

struct Shape {
    Growth growth = Growth::linear;
    long plateaus = 4;  // --shape steps
    long mb = 0;
    long hold_ms = 0;
    long ramp_ms = 0;
    long children = 0;
    long child_mb = -1;  // -1: same as mb
    long thread_mb = 0;
    long spin_ms = 0;
};

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr,
                 "memhog: %s\nusage: memhog [--mb N] [--ramp-ms R] [--hold-ms T] [--children K] "
                 "[--child-mb M] [--thread-mb M] [--shape linear|steps|late-spike|slow-jump] "
                 "[--plateaus P] [--spin-ms S]\n",
                 why);
    std::exit(2);
}

Shape parse(int argc, char** argv) {
    Shape shape;
    for (int i = 1; i < argc; ++i) {
        std::string flag = argv[i];
        if (i + 1 >= argc) usage(("missing value for " + flag).c_str());
        if (flag == "--shape") {
            std::string name = argv[++i];
            if (name == "linear")
                shape.growth = Growth::linear;
            else if (name == "steps")
                shape.growth = Growth::steps;
            else if (name == "late-spike")
                shape.growth = Growth::late_spike;
            else if (name == "slow-jump")
                shape.growth = Growth::slow_jump;
            else
                usage(("bad value for " + flag).c_str());
            continue;
        }
        char* end = nullptr;
        long value = std::strtol(argv[++i], &end, 10);
        if (*end || value < 0) usage(("bad value for " + flag).c_str());
        if (flag == "--mb")
            shape.mb = value;
        else if (flag == "--hold-ms")
            shape.hold_ms = value;
        else if (flag == "--ramp-ms")
            shape.ramp_ms = value;
        else if (flag == "--children")
            shape.children = value;
        else if (flag == "--child-mb")
            shape.child_mb = value;
        else if (flag == "--thread-mb")
            shape.thread_mb = value;
        else if (flag == "--spin-ms")
            shape.spin_ms = value;
        else if (flag == "--plateaus" && value > 0)
            shape.plateaus = value;
        else if (flag == "--plateaus")
            usage(("bad value for " + flag).c_str());
        else
            usage(("unknown option " + flag).c_str());
    }
    if (shape.child_mb < 0) shape.child_mb = shape.mb;
    return shape;
}

void hold(long ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// A point of a growth curve: by `at_ms` after the start, `fraction` of the memory is touched.
struct Point {
    double at_ms;
    double fraction;
};

// The curve of a shape other than linear over a ramp of `ramp_ms`, in time order, ending at 1.
std::vector<Point> curve(Growth growth, long ramp_ms, long plateaus) {
    double ramp = static_cast<double>(ramp_ms);
    std::vector<Point> points;
    auto slope = [&](double from_ms, double to_ms, double from, double to, int count) {
        for (int k = 1; k <= count; ++k)
            points.push_back({from_ms + (to_ms - from_ms) * k / count, from + (to - from) * k / count});
    };
    switch (growth) {
        case Growth::steps:
            for (long k = 1; k <= plateaus; ++k)
                points.push_back({ramp * k / (plateaus + 1), static_cast<double>(k) / plateaus});
            break;
        case Growth::late_spike: {
            double spike_ms = std::min(50.0, ramp / 2);  // the rest lands within the last 50 ms
            slope(0, ramp - spike_ms, 0, 0.35, 20);
            slope(ramp - spike_ms, ramp, 0.35, 1.0, 5);
            break;
        }
        case Growth::slow_jump:
            slope(0, ramp / 10, 0, 0.15, 4);
            points.push_back({ramp * 0.8, 1.0});  // one memset: as fast as the machine faults pages in
            break;
        case Growth::linear: break;
    }
    return points;
}

char* map(std::size_t bytes) {
    auto* block = static_cast<char*>(mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (block == MAP_FAILED) {
        std::perror("memhog: mmap");
        std::exit(3);
    }
    return block;
}

using Clock = std::chrono::steady_clock;

// Touches mb MiB along the shape's curve, then holds them until hold_ms after the ramp, by the clock.
void grow(long mb, const Shape& shape) {
    auto start = Clock::now();
    auto since_start = [&](double ms) { return start + std::chrono::microseconds(static_cast<long>(ms * 1000)); };
    if (mb > 0) {
        std::size_t bytes = static_cast<std::size_t>(mb) << 20;
        char* block = map(bytes);
        std::size_t done = 0;
        for (Point point : curve(shape.growth, shape.ramp_ms, shape.plateaus)) {
            std::this_thread::sleep_until(since_start(point.at_ms));
            auto target = std::min(bytes, static_cast<std::size_t>(point.fraction * bytes + 4095) / 4096 * 4096);
            if (target > done) std::memset(block + done, 0x5a, target - done);
            done = std::max(done, target);
        }
        if (done < bytes) std::memset(block + done, 0x5a, bytes - done);
    }
    std::this_thread::sleep_until(since_start(static_cast<double>(shape.ramp_ms + shape.hold_ms)));
}

void touch(long mb, long ramp_ms = 0) {
    if (mb == 0) return;
    std::size_t bytes = static_cast<std::size_t>(mb) << 20;
    char* block = map(bytes);
    constexpr long steps = 20;
    std::size_t step = (bytes + steps - 1) / steps;
    for (std::size_t done = 0; done < bytes; done += step) {
        std::memset(block + done, 0x5a, std::min(step, bytes - done));
        if (ramp_ms > 0) hold(ramp_ms / steps);
    }
}

void touch_and_hold(long mb, const Shape& shape) {
    if (shape.growth != Growth::linear) return grow(mb, shape);
    touch(mb, shape.ramp_ms);  // linear: as memhog always did (sleeps add to memset time)
    hold(shape.hold_ms);
}

void report() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    std::printf("memhog pid=%d maxrss_kb=%ld\n", getpid(), usage.ru_maxrss);
    std::fflush(stdout);
}

}  // namespace

// Burns `ms` of this process's CPU time.
void spin(long ms) {
    auto cpu_ms = [] {
        timespec now{};
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
        return now.tv_sec * 1000L + now.tv_nsec / 1'000'000L;
    };
    volatile unsigned long sink = 0;
    for (long until = cpu_ms() + ms; cpu_ms() < until;)
        for (int i = 0; i < 100000; ++i) sink = sink + static_cast<unsigned long>(i);
}

int main(int argc, char** argv) {
    Shape shape = parse(argc, argv);
    spin(shape.spin_ms);
    std::vector<pid_t> children;
    for (long i = 0; i < shape.children; ++i) {
        pid_t pid = fork();
        if (pid < 0) {
            std::perror("memhog: fork");
            return 3;
        }
        if (pid == 0) {
            touch_and_hold(shape.child_mb, shape);
            report();
            _exit(0);
        }
        children.push_back(pid);
    }
    std::thread worker;
    if (shape.thread_mb > 0) worker = std::thread([&] { touch_and_hold(shape.thread_mb, shape); });
    touch_and_hold(shape.mb, shape);
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
