// The Tracker follows the build's process tree and reports what the kernel saw.
// Only implementations of this interface know how (BPF today, /proc polling later).
#pragma once

#include <sys/types.h>

#include <time.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace memgov {

// A tracker that cannot follow the build (BPF cannot load, the daemon refused it …), with a
// one-line diagnosis that says what to do.
class TrackerError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// CLOCK_MONOTONIC in nanoseconds: the clock of bpf_ktime_get_ns() and so of every event's
// timestamp_ns, for comparing controller times with kernel ones.
inline std::uint64_t monotonic_ns() {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(now.tv_nsec);
}

// A daemon's record of a client's build in a container: the same process's pid, parent and
// job in the client's pid namespace (0: the client shares the daemon's, or is this memgov).
struct ClientPids {
    pid_t pid = 0;
    pid_t ppid = 0;
    pid_t job = 0;
};

struct ExecEvent {
    pid_t pid = 0;
    pid_t build = 0;  // the daemon's build it belongs to (its root); 0: this memgov's own
    pid_t ppid = 0;
    pid_t job = 0;  // 0: glue (make, sh …), not part of a job
    bool job_root = false;
    bool waiting = false;  // held (SIGSTOPped) at exec until Tracker::resume
    bool granted = false;  // started under Tracker::grant, never stopped
    // A daemon's client may not signal it (a setuid step run as another user): never
    // stopped, only measured.
    bool other_user = false;
    bool argv_truncated = false;
    bool argv_unreadable = false;
    std::uint64_t timestamp_ns = 0;
    std::string comm;
    std::string filename;
    std::vector<std::string> argv;
    ClientPids in_client;
};

// What the kernel kept for a process's threads (docs/DESIGN.md §4): CPU time, time runnable
// but waiting for a CPU, time waiting for block I/O and in direct reclaim (0 unless delay
// accounting is on), major page faults.
struct TaskCosts {
    std::uint64_t cpu_ns = 0;
    std::uint64_t run_delay_ns = 0;
    std::uint64_t io_delay_ns = 0;
    std::uint64_t reclaim_delay_ns = 0;
    std::uint64_t major_faults = 0;

    TaskCosts& operator+=(const TaskCosts& other) {
        cpu_ns += other.cpu_ns;
        run_delay_ns += other.run_delay_ns;
        io_delay_ns += other.io_delay_ns;
        reclaim_delay_ns += other.reclaim_delay_ns;
        major_faults += other.major_faults;
        return *this;
    }
};

struct ExitEvent {
    pid_t pid = 0;
    pid_t build = 0;
    pid_t ppid = 0;
    pid_t job = 0;
    int wait_status = 0;  // as from wait(2)
    std::uint64_t timestamp_ns = 0;
    std::uint64_t peak_rss_bytes = 0;
    std::uint64_t job_peak_bytes = 0;
    std::string comm;
    TaskCosts costs;
    ClientPids in_client;
};

struct OomKillEvent {
    pid_t pid = 0;
    pid_t build = 0;
    pid_t job = 0;
    std::uint64_t timestamp_ns = 0;
    std::uint64_t rss_bytes = 0;
    std::uint64_t peak_rss_bytes = 0;
    std::string comm;
    ClientPids in_client;
};

using TrackerEvent = std::variant<ExecEvent, ExitEvent, OomKillEvent>;

struct JobUsage {
    std::uint64_t rss_bytes = 0;
    std::uint64_t peak_bytes = 0;
    std::uint32_t nprocs = 0;
};

struct TrackerTotals {
    std::uint64_t rss_bytes = 0;
    std::uint64_t peak_bytes = 0;
    std::uint64_t procs_live = 0;
    std::uint64_t procs_seen = 0;
    std::uint64_t execs = 0;
    std::uint64_t events_dropped = 0;
    std::uint64_t procs_map_full = 0;
    std::uint64_t jobs_map_full = 0;
    std::uint64_t oom_kills = 0;
    std::uint64_t undecodable_records = 0;  // records the controller could not read
};

struct TrackerOptions {
    std::vector<std::string> gate_names;
    bool pause_job_roots = true;  // false: jobs are still recognised, never stopped
    // The uid memgov signals as when it may signal only its own user's processes (no CAP_KILL:
    // file capabilities): a job root it could not continue (a setuid step) is never stopped.
    std::optional<uid_t> signals_as;
    std::uint32_t max_procs = 32768;
    std::uint32_t max_jobs = 8192;
    bool verbose_libbpf = false;
};

class Tracker {
public:
    using EventHandler = std::function<void(const TrackerEvent&)>;

    virtual ~Tracker() = default;

    // Starts following `pid` and every process it forks from now on.
    virtual void track(pid_t pid) = 0;
    // Waits up to `timeout` for events and hands each to `handler`; returns how many.
    virtual int poll(std::chrono::milliseconds timeout, const EventHandler& handler) = 0;
    // Continues a process the gate stopped.
    virtual void resume(pid_t pid) = 0;
    // Stops every process of a job (the driver and its compiler proper, linker …) such
    // that a crash of the controller still resumes them; resume_job undoes it. False when
    // none could be stopped (a full guard map, a daemon's refusal, another user's processes):
    // the job runs on. A process of it that could not be stopped while others were runs on
    // too (another user's, after a setuid step); the job counts as stopped.
    virtual bool stop_job(pid_t job) = 0;
    virtual void resume_job(pid_t job) = 0;
    // Stops again every process held now: after the whole process group was continued
    // (Ctrl-Z then fg), which also continued them.
    virtual void restop_held() = 0;
    // Sends `signo` to every process of the build.
    virtual void signal_all(int signo) = 0;
    virtual std::optional<JobUsage> job_usage(pid_t job) const = 0;
    virtual TrackerTotals totals() const = 0;
    // The gate's in-kernel fast path (BPF only): up to `jobs` gated execs may start without
    // being stopped, reported with ExecEvent::granted. take_back_grant() ends the grant and
    // returns how many execs were ever started under one (at least; final until the next
    // grant), so the caller knows how many it has not heard of yet.
    virtual void grant(std::int64_t jobs) { (void)jobs; }
    virtual std::uint64_t take_back_grant() { return 0; }
};

}  // namespace memgov
