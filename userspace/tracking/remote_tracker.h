// Tracker backed by `memgov daemon` (docs/DESIGN.md §12): for a memgov without BPF privilege.
// The daemon follows the build and sends its events; this side decides, as memgov always
// does, and stops and continues the build's processes itself (they are its user's own),
// entering them in the daemon's guard first, so that nothing stays stopped if memgov dies.
// If the daemon goes away, everything held is continued and the build goes on ungoverned,
// which memgov says in one line.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>

#include "daemon_protocol.h"
#include "host_ledger.h"
#include "tracker.h"

namespace memgov {

// One message on a SOCK_SEQPACKET socket, with a descriptor riding along when `pass_fd` >= 0.
bool send_datagram(int fd, std::span<const std::uint8_t> bytes, int pass_fd = -1);

class RemoteTracker final : public Tracker {
public:
    // Connects to the daemon's socket; nullptr, with `error` set, when nobody listens there.
    // `say` gets the one line that tells the user the daemon went away.
    static std::unique_ptr<RemoteTracker> connect(const std::string& socket_path, std::string& error,
                                                  std::function<void(const std::string&)> say);
    ~RemoteTracker() override;
    RemoteTracker(const RemoteTracker&) = delete;
    RemoteTracker& operator=(const RemoteTracker&) = delete;

    // Registers the build's root with the daemon: it must be our child, not yet exec'd.
    void track(pid_t pid) override;
    int poll(std::chrono::milliseconds timeout, const EventHandler& handler) override;
    void resume(pid_t pid) override;
    bool stop_job(pid_t job) override;
    void resume_job(pid_t job) override;
    void restop_held() override;
    void signal_all(int signo) override;
    std::optional<JobUsage> job_usage(pid_t job) const override;
    TrackerTotals totals() const override;

    // Whether jobs are stopped at exec (as --no-gate says); before track().
    void set_gate(bool gate) { gate_ = gate; }
    // The build's --nice, for the daemon to hold its ledger entry to (negative: root only).
    void set_nice(int nice) { nice_ = nice; }
    // This build's place in the host ledger, kept by the daemon (which may write the ledger
    // where the user may not); asked for when the build registers, so before track(). Until
    // then, and if the daemon keeps none (it says why, in one line), the build is alone.
    std::unique_ptr<Ledger> ledger(const LedgerBuild& build);

private:
    explicit RemoteTracker(int fd, std::function<void(const std::string&)> say) : fd_(fd), say_(std::move(say)) {}
    // The daemon may be found gone in any call, const ones included (a usage request): the
    // state that changes then is mutable.
    bool send(const DaemonRequest& request, int pass_fd = -1) const;
    // Sends and waits for the reply; events that arrive meanwhile are kept for poll().
    // nullopt once the daemon is gone.
    std::optional<DaemonMessage> ask(const DaemonRequest& request, int pass_fd = -1) const;
    // One message, waiting up to `timeout_ms`; nullopt: none came, or the daemon is gone.
    std::optional<DaemonMessage> receive(int timeout_ms) const;
    // Continues everything we hold and says once that the build goes on ungoverned.
    void lose(const std::string& why) const;
    // The jobs' use and the build's totals, asked for at most every 2 ms (`now`: at once).
    void refresh_usage(bool now = false) const;
    // Keeps track of what the gate holds and which jobs run, as each event arrives.
    void note(const TrackerEvent& event) const;
    class DaemonLedger;
    friend class DaemonLedger;

    int fd_;
    std::function<void(const std::string&)> say_;
    bool gate_ = true;
    int nice_ = 0;
    mutable bool lost_ = false;
    mutable std::deque<TrackerEvent> pending_;
    mutable std::set<pid_t> held_;        // stopped by us (at exec by the gate, or a job by stop_job)
    mutable std::set<pid_t> known_jobs_;  // jobs exec'd and not yet ended: whose use is asked for
    mutable std::map<pid_t, JobUsage> usage_;
    mutable TrackerTotals totals_;
    mutable std::uint64_t usage_read_ns_ = 0;
    std::optional<LedgerBuild> ledger_build_;  // asked for
    bool ledger_kept_ = false;                 // the daemon keeps our entry
};

}  // namespace memgov
