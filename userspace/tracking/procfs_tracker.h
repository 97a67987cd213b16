// Tracker that polls /proc, the approach of a patched make that polls /proc: from the build's root, follow children
// (/proc/PID/task/TID/children) and read each process's RSS every interval. It is the
// fallback when BPF cannot be used (--backend=procfs) and the baseline benchmarks compare
// BPF against. Its limits are the reason BPF exists: a peak between two scans is missed,
// a process shorter than the interval may never be seen, and jobs are stopped only when a
// scan finds them (up to one interval after they started), not at exec.
#pragma once

#include <chrono>
#include <map>
#include <set>
#include <string>

#include "tracker.h"

namespace memgov {

class ProcfsTracker final : public Tracker {
public:
    ProcfsTracker(const TrackerOptions& options, std::chrono::milliseconds interval, std::string proc_root = "/proc");
    ~ProcfsTracker() override;  // continues every process it stopped

    void track(pid_t pid) override;
    int poll(std::chrono::milliseconds timeout, const EventHandler& handler) override;
    void resume(pid_t pid) override;
    bool stop_job(pid_t job) override;
    void resume_job(pid_t job) override;
    void restop_held() override;
    void signal_all(int signo) override;
    std::optional<JobUsage> job_usage(pid_t job) const override;
    TrackerTotals totals() const override;

private:
    struct Process {
        pid_t ppid = 0;
        pid_t job = 0;
        std::string exe;  // readlink of /proc/PID/exe: changes on exec
        std::uint64_t rss_bytes = 0;
        std::uint64_t peak_rss_bytes = 0;
    };
    int scan(const EventHandler& handler);
    void discover_children(pid_t pid, std::vector<pid_t>& found) const;
    void report_exec(pid_t pid, Process& process, const EventHandler& handler);

    TrackerOptions options_;
    std::chrono::milliseconds interval_;
    std::string proc_;
    std::set<std::string> gates_;
    std::map<pid_t, Process> processes_;
    std::map<pid_t, JobUsage> jobs_;
    std::set<pid_t> held_;
    std::chrono::steady_clock::time_point next_scan_;
    TrackerTotals totals_;
    long page_size_;
};

}  // namespace memgov
