// Tracker backed by bpf/memgov.bpf.c: one skeleton, loaded and attached in open(),
// torn down (after resuming every pid it stopped) in the destructor.
#pragma once

#include <functional>
#include <memory>
#include <stdexcept>

#include "tracker.h"

struct mg_proc;

struct memgov_bpf;
struct ring_buffer;

namespace memgov {

// A failure to load or attach, with a one-line diagnosis that says what to do.
class TrackerError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
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
    void stop_job(pid_t job) override;
    void resume_job(pid_t job) override;
    void restop_held() override;
    void signal_all(int signo) override;
    std::optional<JobUsage> job_usage(pid_t job) const override;
    TrackerTotals totals() const override;
    void grant(std::int64_t jobs) override;
    std::uint64_t take_back_grant() override;

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
