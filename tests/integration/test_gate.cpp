// The exec gate stops a job before its first instruction; the crash guard resumes every
// stopped job when the controller dies, however it dies.
#include <doctest/doctest.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <vector>

#include "bpf_tracker.h"
#include "harness.h"
#include "runner.h"

using namespace memgov;
using namespace std::chrono_literals;

namespace {

TrackerOptions gate_memhog() {
    TrackerOptions options;
    options.gate_names = {"memhog"};
    options.pause_job_roots = true;
    return options;
}

// Polls until `count` paused exec events arrived (or 10 s passed); returns their pids.
std::vector<pid_t> wait_for_paused(Tracker& tracker, std::size_t count) {
    std::vector<pid_t> paused;
    auto deadline = std::chrono::steady_clock::now() + 10s;
    Tracker::EventHandler handler = [&](const TrackerEvent& event) {
        if (auto* exec = std::get_if<ExecEvent>(&event); exec && exec->paused) paused.push_back(exec->pid);
    };
    while (paused.size() < count && std::chrono::steady_clock::now() < deadline)
        tracker.poll(100ms, handler);
    return paused;
}

}  // namespace

TEST_CASE("a gated exec is stopped before user code runs, and resumed by the controller") {
    auto tracker = BpfTracker::open(gate_memhog());
    Runner runner({{harness::memhog_bin(), "--mb", "1"}, std::nullopt});
    tracker->track(runner.pid());
    REQUIRE(runner.start() == 0);

    auto paused = wait_for_paused(*tracker, 1);
    REQUIRE(paused.size() == 1);
    CHECK(paused[0] == runner.pid());
    std::this_thread::sleep_for(50ms);  // it would have run (and exited) by now
    CHECK(harness::process_state(runner.pid()) == 'T');
    CHECK(harness::process_utime(runner.pid()) == 0);
    CHECK_FALSE(runner.try_wait());

    tracker->resume(runner.pid());
    CHECK(runner.wait() == 0);
}

TEST_CASE("a glue program is never gated, and a job's children are not jobs") {
    auto tracker = BpfTracker::open(gate_memhog());
    Runner runner({{"/bin/sh", "-c", harness::memhog_bin() + " --children 3 --mb 1 --hold-ms 10"},
                   std::nullopt});
    tracker->track(runner.pid());
    REQUIRE(runner.start() == 0);
    auto paused = wait_for_paused(*tracker, 1);
    REQUIRE(paused.size() == 1);
    tracker->resume(paused[0]);
    CHECK(runner.wait() == 0);
    CHECK(wait_for_paused(*tracker, 1).empty());
}

TEST_CASE("SIGKILL of the controller leaves no process stopped") {
    constexpr int jobs = 20;
    // Jobs are reparented to us when the controller dies, so we can reap them.
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    int report[2];
    REQUIRE(pipe2(report, O_CLOEXEC) == 0);

    pid_t controller = fork();
    if (controller == 0) {
        close(report[0]);
        auto tracker = BpfTracker::open(gate_memhog());
        std::vector<std::unique_ptr<Runner>> runners;
        for (int i = 0; i < jobs; ++i) {
            runners.push_back(std::make_unique<Runner>(
                Runner::Options{{harness::memhog_bin(), "--mb", "2", "--hold-ms", "20"}, std::nullopt}));
            tracker->track(runners.back()->pid());
            runners.back()->start();
        }
        auto paused = wait_for_paused(*tracker, jobs);
        for (pid_t pid : paused) (void)!write(report[1], &pid, sizeof(pid));
        close(report[1]);
        pause();  // until SIGKILLed: nobody resumes the jobs but the guard
        _exit(0);
    }
    close(report[1]);
    std::vector<pid_t> paused;
    pid_t pid;
    while (read(report[0], &pid, sizeof(pid)) == sizeof(pid)) paused.push_back(pid);
    close(report[0]);
    REQUIRE(paused.size() == jobs);
    for (pid_t job : paused) CHECK(harness::process_state(job) == 'T');

    kill(controller, SIGKILL);
    waitpid(controller, nullptr, 0);

    int exited_ok = 0;
    for (pid_t job : paused) {
        int status = 0;
        for (int tries = 0; tries < 100 && waitpid(job, &status, WNOHANG) == 0; ++tries) {
            std::this_thread::sleep_for(50ms);
        }
        char state = harness::process_state(job);
        CHECK_MESSAGE(state != 'T', "pid ", job, " still stopped");
        exited_ok += WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    CHECK(exited_ok == jobs);
    prctl(PR_SET_CHILD_SUBREAPER, 0);
}

TEST_CASE("stop() puts a running process under the guard as well") {
    auto tracker = BpfTracker::open(gate_memhog());
    Runner runner({{harness::memhog_bin(), "--mb", "1", "--hold-ms", "300"}, std::nullopt});
    tracker->track(runner.pid());
    REQUIRE(runner.start() == 0);
    auto paused = wait_for_paused(*tracker, 1);
    REQUIRE(paused.size() == 1);
    tracker->resume(runner.pid());
    std::this_thread::sleep_for(50ms);
    tracker->stop(runner.pid());
    std::this_thread::sleep_for(50ms);
    CHECK(harness::process_state(runner.pid()) == 'T');
    tracker.reset();  // the teardown path resumes what it stopped
    CHECK(runner.wait() == 0);
}
