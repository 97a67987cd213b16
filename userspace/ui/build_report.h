// What a run learned about the build, assembled from tracker events: every process and
// every job with its peak, and the build-wide figures. Pure: events in, report out.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "job_key.h"
#include "tracker.h"

namespace memgov {

struct ProcessRecord {
    pid_t pid = 0;
    pid_t ppid = 0;
    pid_t job = 0;
    std::string comm;
    std::string filename;
    std::vector<std::string> argv;
    bool argv_truncated = false;
    std::uint64_t peak_rss_bytes = 0;
    std::optional<int> wait_status;  // set when it exited
    bool oom_killed = false;
    TaskCosts costs;
};

struct JobRecord {
    pid_t job = 0;
    JobKey key;
    std::vector<std::string> argv;
    std::uint64_t started_ns = 0;   // exec, CLOCK_MONOTONIC (the BPF clock)
    std::uint64_t handled_ns = 0;   // the controller began handling its exec event
    std::uint64_t admitted_ns = 0;  // SIGCONT sent (0: never held)
    bool waited = false;            // refused at least once before admission
    std::uint64_t ended_ns = 0;
    std::uint64_t peak_bytes = 0;
    std::optional<int> wait_status;
    bool oom_killed = false;
    bool other_user = false;  // its client could not hold it: measured only (ExecEvent)
    TaskCosts costs;          // of its processes that have exited
};

// An exit as --stats-json and the trace give it: exit_code (128+N for signal N, null while
// running) and signal.
void put_status(nlohmann::json& entry, const std::optional<int>& wait_status);
// The costs as --stats-json and the trace give them: seconds and a count.
void put_costs(nlohmann::json& entry, const TaskCosts& costs);

struct BuildSummary {
    std::vector<std::string> command;
    int exit_status = 0;
    double wall_seconds = 0;
    TrackerTotals totals;
    std::size_t jobs_waited = 0;  // jobs the governor held back at least once
    double seconds_waited = 0;    // summed over those jobs
    std::size_t emergency_stops = 0;
    std::size_t repredictions = 0;    // running jobs that outgrew their prediction
    std::uint64_t ceiling_bytes = 0;  // the limit that applied (0: unknown)
    std::string bound_by;             // what set it: MemAvailable, cgroup …, --limit
    std::string backend = "bpf";
    double controller_cpu_seconds = 0;  // memgov's own user + system time
    std::uint64_t controller_max_rss_bytes = 0;
};

class BuildReport {
public:
    // `keep_everything`: every process and each job's argv stay for to_json(); without it
    // (no --stats-json), a process's record goes when it exits and a job keeps only what
    // the summary shows, so memgov's memory stays flat over a build of millions of processes.
    explicit BuildReport(bool keep_everything = true) : keep_everything_(keep_everything) {}

    // `key`: a job root's key (the controller's, see job_key); ignored for other processes.
    void on_exec(const ExecEvent& event, const JobKey& key, std::uint64_t handled_ns = 0);
    void on_exit(const ExitEvent& event);
    void on_oom_kill(const OomKillEvent& event);
    void on_admitted(pid_t job, std::uint64_t monotonic_ns, bool waited);
    // A job's source, found after its exec (JobKey::pending).
    void on_key_found(pid_t job, const std::string& key);

    const std::vector<ProcessRecord>& processes() const { return processes_; }
    const std::vector<JobRecord>& jobs() const { return jobs_; }
    const JobRecord* job(pid_t job_id) const;

    // Jobs, largest peak first, at most `limit`.
    std::vector<const JobRecord*> top_jobs(std::size_t limit) const;

    nlohmann::json to_json(const BuildSummary& summary) const;
    std::string summary_text(const BuildSummary& summary, std::size_t top) const;

private:
    ProcessRecord& live_process(pid_t pid);
    JobRecord* live_job(pid_t job_id);

    bool keep_everything_;
    std::vector<ProcessRecord> processes_;
    std::vector<JobRecord> jobs_;
    // Pids are reused over a long build: these map only processes and jobs still running.
    std::map<pid_t, std::size_t> live_processes_;
    std::map<pid_t, std::size_t> live_jobs_;
};

}  // namespace memgov
