// Tracker backed by bpf/memgov.bpf.c: one skeleton, loaded and attached in open(),
// torn down (after resuming every pid it stopped) in the destructor.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "tracker.h"

struct mg_proc;

struct memgov_bpf;
struct ring_buffer;

namespace memgov {

// A daemon's client's pid namespace when it is not the daemon's (BpfTracker::track_build).
struct ClientNamespace {
    std::uint32_t level = 0;  // among nested namespaces, the initial one (ours) being 0
    pid_t root = 0;           // the root's and the client's pids in it
    pid_t owner = 0;
};

// Who a daemon's build is for: its client, whose stops the crash guard undoes when it exits.
struct BuildClient {
    pid_t pid = 0;
    uid_t uid = 0;  // a job root it may not signal is not stopped (a setuid step)
    ClientNamespace pid_namespace;
};

class BpfTracker final : public Tracker {
public:
    static std::unique_ptr<BpfTracker> open(const TrackerOptions& options);
    ~BpfTracker() override;
    BpfTracker(const BpfTracker&) = delete;
    BpfTracker& operator=(const BpfTracker&) = delete;

    void track(pid_t pid) override;
    int poll(std::chrono::milliseconds timeout, const EventHandler& handler) override;
    void resume(pid_t pid) override;
    bool stop_job(pid_t job) override;
    void resume_job(pid_t job) override;
    void restop_held() override;
    void signal_all(int signo) override;
    std::optional<JobUsage> job_usage(pid_t job) const override;
    TrackerTotals totals() const override;
    void grant(std::int64_t jobs) override;
    std::uint64_t take_back_grant() override;

    // For `memgov daemon`, which follows builds for clients that decide and signal their own
    // processes (docs/DESIGN.md §12). A build is identified by an id the daemon never reuses
    // (a pid could be: a build's leftover processes would then be another's).
    // Follows `root` (stopped before its exec) and everything it forks as `build`, for
    // `client`: what the gate holds of it is continued by the crash guard when the client
    // exits. A client in another pid namespace than ours (a container) is given its own pids
    // in the records (ClientPids), which the kernel numbers for each process as it forks.
    void track_build(pid_t root, pid_t build, const BuildClient& client, bool gate);
    // `pid` as the client in another pid namespace whose build it is sees it; 0 when it is
    // not followed, or has no number there.
    pid_t pid_for_client(pid_t pid) const;
    // Stops following the build: its processes are neither stopped nor reported any more.
    void forget_build(pid_t build, pid_t owner);
    // Enters every process of `job` in the held map for `owner`, who stops them: the pids.
    std::vector<pid_t> hold_job(pid_t job, pid_t owner);
    void release(pid_t pid);
    std::optional<pid_t> held_by(pid_t pid) const;  // its owner, if held
    std::optional<pid_t> build_of_job(pid_t job) const;
    // The build's processes (of one job only, when given).
    std::vector<pid_t> processes(pid_t build, std::optional<pid_t> job = std::nullopt) const;
    std::optional<TrackerTotals> build_totals(pid_t build) const;
    // Readable when events are waiting (for an epoll loop; poll() then reads them).
    int event_fd() const;

private:
    BpfTracker() = default;
    static int on_record(void* self, void* data, std::size_t size);
    void resume_all_held();
    // Calls fn(pid, what the procs map holds) for every tracked process.
    void for_each_process(const std::function<void(pid_t, const mg_proc&)>& fn) const;
    // Calls fn(pid) for every process in the held map.
    void for_each_held(const std::function<void(pid_t)>& fn) const;

    memgov_bpf* skeleton_ = nullptr;
    ring_buffer* ring_ = nullptr;
    const EventHandler* handler_ = nullptr;
    std::uint64_t undecodable_ = 0;
};

// Why BPF cannot load here, phrased as what to do; empty when nothing obvious is wrong.
std::string diagnose_bpf_failure(int error);

}  // namespace memgov
