// One build governed by a BuildController with a fake tracker on a fake clock, for the
// controller's tests and the host ledger's (memory in MiB for readability).
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "build_controller.h"
#include "temp_dir.h"

namespace fake_build {

using namespace memgov;
using namespace std::chrono_literals;

constexpr std::uint64_t MiB = 1ull << 20;

// Records what the controller asks of the kernel; the test says what the kernel sees.
class FakeTracker final : public Tracker {
public:
    void track(pid_t) override {}
    int poll(std::chrono::milliseconds, const EventHandler&) override { return 0; }
    void resume(pid_t pid) override { resumed.push_back(pid); }
    bool stop_job(pid_t job) override {
        stop_attempts.push_back(job);
        if (unstoppable.contains(job)) return false;
        stopped.insert(job);
        return true;
    }
    void resume_job(pid_t job) override {
        stopped.erase(job);
        resumed_jobs.push_back(job);
    }
    void restop_held() override {}
    void signal_all(int signo) override { signals.push_back(signo); }
    std::optional<JobUsage> job_usage(pid_t job) const override {
        auto it = usage.find(job);
        return it == usage.end() ? std::nullopt : std::optional(it->second);
    }
    TrackerTotals totals() const override {
        TrackerTotals totals;
        for (const auto& [job, use] : usage) totals.rss_bytes += use.rss_bytes;
        return totals;
    }
    void grant(std::int64_t jobs) override { granted = jobs; }
    std::uint64_t take_back_grant() override {
        granted = 0;
        return spent;
    }

    std::map<pid_t, JobUsage> usage;
    std::vector<pid_t> resumed;       // continued at exec (admitted)
    std::vector<pid_t> resumed_jobs;  // continued after a stop, or released
    std::set<pid_t> stopped;
    std::vector<pid_t> stop_attempts;
    std::set<pid_t> unstoppable;  // stop_job stops nothing of these (a full guard map, a daemon refusal)
    std::vector<int> signals;
    std::int64_t granted = 0;
    std::uint64_t spent = 0;  // execs ever started under a grant
};

class CapturedLines final : public LineSink {
public:
    void write_line(std::string line) override { lines.push_back(std::move(line)); }
    bool color() const override { return false; }
    bool has(const std::string& text) const {
        return std::any_of(lines.begin(), lines.end(),
                           [&](const std::string& line) { return line.find(text) != std::string::npos; });
    }
    std::vector<std::string> lines;
};

inline ControllerSettings settings_for(std::uint64_t limit_mib, std::uint64_t cold_mib) {
    ControllerSettings settings;
    settings.budget.limit_bytes = limit_mib * MiB;
    settings.cold_estimate = cold_mib * MiB;
    settings.governor.kept_free_bytes = settings.governor.emergency_floor_bytes;  // as run_command sets it
    return settings;
}

// One build: a controller on a fake clock with a --limit, so that memory is the limit less
// what the fake tracker's jobs use.
struct Build {
    explicit Build(
        ControllerSettings settings_in, Ledger* ledger_in = nullptr,
        std::function<MemoryReading()> memory_in =
            [] {
                return MemoryReading{64ull << 30, 64ull << 30};
            })
        : settings(std::move(settings_in)), ledger(ledger_in), memory(std::move(memory_in)) {}

    void exec(pid_t pid, const std::string& source, bool granted = false) {
        exec_command(pid, {"cc", "-c", source, "-o", source + ".o"}, granted);
    }
    void exec_command(pid_t pid, std::vector<std::string> argv, bool granted = false) {
        ExecEvent event{.pid = pid,
                        .ppid = 1,
                        .job = pid,
                        .job_root = true,
                        .waiting = !granted,
                        .granted = granted,
                        .timestamp_ns = static_cast<std::uint64_t>(
                            std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count()),
                        .comm = "cc",
                        .filename = "/usr/bin/cc",
                        .argv = std::move(argv)};
        tracker.usage[pid] = JobUsage{0, 0, 1};
        controller.handle(event);
    }
    void use(pid_t pid, std::uint64_t mib) {
        auto& usage = tracker.usage[pid];
        usage.rss_bytes = mib * MiB;
        usage.peak_bytes = std::max(usage.peak_bytes, mib * MiB);
    }
    void exit(pid_t pid, int wait_status = 0) {
        std::uint64_t peak = tracker.usage[pid].peak_bytes;
        tracker.usage.erase(pid);
        controller.handle(ExitEvent{.pid = pid,
                                    .ppid = 1,
                                    .job = pid,
                                    .wait_status = wait_status,
                                    .peak_rss_bytes = peak,
                                    .job_peak_bytes = peak,
                                    .comm = "cc"});
    }
    // Time passes by `step` per tick.
    void run_for(Clock::duration time, Clock::duration step = 20ms) {
        for (auto end = now + time; now < end;) {
            now += step;
            controller.tick();
        }
    }
    bool resumed(pid_t pid) const {
        return std::find(tracker.resumed.begin(), tracker.resumed.end(), pid) != tracker.resumed.end();
    }
    const Profile& only_profile() const {
        REQUIRE(store.profiles().size() == 1);
        return store.profiles().begin()->second;
    }

    ControllerSettings settings;
    Ledger* ledger;
    std::function<MemoryReading()> memory;
    std::function<std::string(pid_t)> cwd_of = [](pid_t) { return std::string("/src"); };
    std::function<std::string(const std::string&)> file_head = [](const std::string&) { return std::string(); };
    FakeTracker tracker;
    TempDir dir;
    ProfileStore store{dir.path()};
    CapturedLines log_lines;
    Log log{2, log_lines};
    Clock::time_point now = Clock::time_point(1000s);
    BuildController controller{
        settings,
        {.tracker = tracker,
         .store = store,
         .log = log,
         .environment = {.now = [this] { return now; },
                         .read_memory = [this] { return memory(); },
                         .process_cwd = [this](pid_t pid) { return cwd_of(pid); },
                         .file_head = [this](const std::string& path) { return file_head(path); },
                         .wall_time = [] { return std::time_t(1'800'000'000); }},
         .ledger = ledger}};
};

}  // namespace fake_build
