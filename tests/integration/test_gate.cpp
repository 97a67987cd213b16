// The exec gate stops a job before its first instruction; the crash guard resumes every
// stopped job when the controller dies, however it dies.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
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

// Polls until `count` held exec events arrived (or 10 s passed); returns their pids.
std::vector<pid_t> wait_for_held(Tracker& tracker, std::size_t count) {
    std::vector<pid_t> held;
    auto deadline = std::chrono::steady_clock::now() + 10s;
    Tracker::EventHandler handler = [&](const TrackerEvent& event) {
        if (auto* exec = std::get_if<ExecEvent>(&event); exec && exec->waiting) held.push_back(exec->pid);
    };
    while (held.size() < count && std::chrono::steady_clock::now() < deadline) tracker.poll(100ms, handler);
    return held;
}

}  // namespace

TEST_CASE("a gated exec is stopped before user code runs, and resumed by the controller") {
    auto tracker = BpfTracker::open(gate_memhog());
    Runner runner({{harness::memhog_bin(), "--mb", "1"}, std::nullopt});
    tracker->track(runner.pid());
    REQUIRE(runner.start() == 0);

    auto held = wait_for_held(*tracker, 1);
    REQUIRE(held.size() == 1);
    CHECK(held[0] == runner.pid());
    std::this_thread::sleep_for(50ms);  // it would have run (and exited) by now
    CHECK(harness::process_state(runner.pid()) == 'T');
    CHECK(harness::process_utime(runner.pid()) == 0);
    CHECK_FALSE(runner.try_wait());

    tracker->resume(runner.pid());
    CHECK(runner.wait() == 0);
}

TEST_CASE("the kernel starts granted execs without stopping them, and only as many as granted") {
    auto tracker = BpfTracker::open(gate_memhog());
    // A shell that runs three gated jobs one after another, each holding 300 ms.
    Runner runner(
        {{"/bin/sh", "-c", fmt::format("for i in 1 2 3; do {} --mb 1 --hold-ms 300; done", harness::memhog_bin())},
         std::nullopt});
    tracker->track(runner.pid());
    tracker->grant(2);
    REQUIRE(runner.start() == 0);

    std::vector<ExecEvent> jobs;
    auto deadline = std::chrono::steady_clock::now() + 10s;
    Tracker::EventHandler handler = [&](const TrackerEvent& event) {
        if (auto* exec = std::get_if<ExecEvent>(&event); exec && exec->job_root) jobs.push_back(*exec);
    };
    while (jobs.size() < 3 && std::chrono::steady_clock::now() < deadline) tracker->poll(100ms, handler);
    REQUIRE(jobs.size() == 3);
    for (int i = 0; i < 2; ++i) {
        CHECK(jobs[i].granted);
        CHECK_FALSE(jobs[i].waiting);
    }
    CHECK_FALSE(jobs[2].granted);  // the grant was spent: the third waits for us
    REQUIRE(jobs[2].waiting);
    for (int i = 0; i < 100 && harness::process_state(jobs[2].pid) != 'T'; ++i) std::this_thread::sleep_for(10ms);
    CHECK(harness::process_state(jobs[2].pid) == 'T');  // the stop is queued before the record
    CHECK(tracker->take_back_grant() == 2);
    tracker->resume(jobs[2].pid);
    CHECK(runner.wait() == 0);
}

TEST_CASE("glue is never gated, and a gated program under a job is part of it, not a new job") {
    TrackerOptions options = gate_memhog();
    options.gate_names.push_back("bash");
    auto tracker = BpfTracker::open(options);
    // sh (glue) runs bash (gated: a job), which runs memhog (gated, but under a job).
    Runner runner({{"/bin/sh", "-c", "/bin/bash -c '" + harness::memhog_bin() + " --mb 1; true'; true"}, std::nullopt});
    tracker->track(runner.pid());
    REQUIRE(runner.start() == 0);
    std::vector<ExecEvent> execs;
    Tracker::EventHandler handler = [&](const TrackerEvent& event) {
        if (auto* exec = std::get_if<ExecEvent>(&event)) {
            execs.push_back(*exec);
            if (exec->waiting) tracker->resume(exec->pid);
        }
    };
    while (!runner.try_wait()) tracker->poll(50ms, handler);
    tracker->poll(0ms, handler);
    REQUIRE(execs.size() == 3);
    CHECK_FALSE(execs[0].job_root);  // sh
    CHECK(execs[0].job == 0);
    CHECK(execs[1].job_root);  // bash
    CHECK(execs[1].waiting);
    CHECK_FALSE(execs[2].job_root);  // memhog
    CHECK_FALSE(execs[2].waiting);
    CHECK(execs[2].job == execs[1].pid);
    CHECK(*runner.try_wait() == 0);
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
        auto held = wait_for_held(*tracker, jobs);
        for (pid_t pid : held) (void)!write(report[1], &pid, sizeof(pid));
        close(report[1]);
        pause();  // until SIGKILLed: nobody resumes the jobs but the guard
        _exit(0);
    }
    close(report[1]);
    std::vector<pid_t> held;
    pid_t pid;
    while (read(report[0], &pid, sizeof(pid)) == sizeof(pid)) held.push_back(pid);
    close(report[0]);
    REQUIRE(held.size() == jobs);
    // The exec record can arrive before the queued SIGSTOP has taken effect: give it a moment.
    for (pid_t job : held) {
        for (int tries = 0; tries < 100 && harness::process_state(job) != 'T'; ++tries)
            std::this_thread::sleep_for(10ms);
        CHECK(harness::process_state(job) == 'T');
    }

    kill(controller, SIGKILL);
    waitpid(controller, nullptr, 0);

    int exited_ok = 0;
    for (pid_t job : held) {
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

TEST_CASE("stop_job stops every process of the job, under the guard, teardown resumes them") {
    auto tracker = BpfTracker::open(gate_memhog());
    Runner runner({{harness::memhog_bin(), "--mb", "1", "--children", "2", "--hold-ms", "600"}, std::nullopt});
    tracker->track(runner.pid());
    REQUIRE(runner.start() == 0);
    auto held = wait_for_held(*tracker, 1);
    REQUIRE(held.size() == 1);
    tracker->resume(runner.pid());
    std::this_thread::sleep_for(100ms);  // the children exist now
    CHECK(tracker->stop_job(runner.pid()));
    std::this_thread::sleep_for(50ms);
    std::vector<pid_t> members;
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
        pid_t pid = std::atoi(entry.path().filename().c_str());
        if (pid <= 0) continue;
        std::ifstream status(entry.path() / "status");
        std::string line;
        while (std::getline(status, line))
            if (line.starts_with("PPid:") && std::atoi(line.c_str() + 5) == runner.pid()) members.push_back(pid);
    }
    REQUIRE(members.size() == 2);
    CHECK(harness::process_state(runner.pid()) == 'T');
    for (pid_t child : members) CHECK(harness::process_state(child) == 'T');
    tracker.reset();  // the teardown path resumes what it stopped
    CHECK(runner.wait() == 0);
}
