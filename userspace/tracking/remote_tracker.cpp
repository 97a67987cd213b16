#include "remote_tracker.h"

#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace memgov {
namespace {

using namespace std::chrono_literals;

// A daemon that does not answer in this long is taken for gone (it answers from memory).
constexpr int reply_timeout_ms = 5000;
// Jobs' use is asked for at most this often (the controller reads every job each tick).
constexpr std::uint64_t usage_refresh_ns = 2'000'000;

}  // namespace

std::unique_ptr<RemoteTracker> RemoteTracker::connect(const std::string& socket_path, std::string& error,
                                                      std::function<void(const std::string&)> say) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (socket_path.size() >= sizeof(address.sun_path)) {
        error = fmt::format("{}: a socket path must be shorter than {} bytes", socket_path, sizeof(address.sun_path));
        return nullptr;
    }
    std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
        error = fmt::format("{}: {}", socket_path, std::strerror(errno));
        if (fd >= 0) close(fd);
        return nullptr;
    }
    return std::unique_ptr<RemoteTracker>(new RemoteTracker(fd, std::move(say)));
}

RemoteTracker::~RemoteTracker() {
    // Nothing we hold may outlive us: the daemon's guard would continue it when we exit, but
    // a destroyed tracker in a memgov that goes on (an error path) must not leave it stopped.
    for (pid_t pid : held_) kill(pid, SIGCONT);
    close(fd_);
}

bool send_datagram(int fd, std::span<const std::uint8_t> bytes, int pass_fd) {
    iovec part{const_cast<std::uint8_t*>(bytes.data()), bytes.size()};
    msghdr message{};
    message.msg_iov = &part;
    message.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    if (pass_fd >= 0) {
        message.msg_control = control;
        message.msg_controllen = sizeof(control);
        cmsghdr* header = CMSG_FIRSTHDR(&message);
        header->cmsg_level = SOL_SOCKET;
        header->cmsg_type = SCM_RIGHTS;
        header->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(header), &pass_fd, sizeof(int));
    }
    return sendmsg(fd, &message, MSG_NOSIGNAL) >= 0;
}

bool RemoteTracker::send(const DaemonRequest& request, int pass_fd) const {
    if (lost_) return false;
    if (send_datagram(fd_, encode_request(request), pass_fd)) return true;
    lose(std::strerror(errno));
    return false;
}

std::optional<DaemonMessage> RemoteTracker::receive(int timeout_ms) const {
    if (lost_) return std::nullopt;
    pollfd wait{fd_, POLLIN, 0};
    int ready = ::poll(&wait, 1, timeout_ms);
    if (ready < 0 && errno == EINTR) return std::nullopt;
    if (ready <= 0) return std::nullopt;
    std::vector<std::uint8_t> buffer(max_daemon_message + 1);
    ssize_t got = recv(fd_, buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (got < 0 && (errno == EAGAIN || errno == EINTR)) return std::nullopt;
    if (got <= 0) {
        lose(got == 0 ? "it closed the connection" : std::strerror(errno));
        return std::nullopt;
    }
    std::string error;
    auto message = parse_message({buffer.data(), static_cast<std::size_t>(got)}, error);
    if (!message) lose(error);
    return message;
}

std::optional<DaemonMessage> RemoteTracker::ask(const DaemonRequest& request, int pass_fd) const {
    if (!send(request, pass_fd)) return std::nullopt;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(reply_timeout_ms);
    while (!lost_) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left <= 0ms) {
            lose(fmt::format("no reply in {} s", reply_timeout_ms / 1000));
            break;
        }
        auto message = receive(static_cast<int>(left.count()));
        if (!message) continue;
        if (message->kind == DaemonMessage::Kind::reply) return message;
        note(*message->event);  // what it holds is ours to continue, even before poll() hands it on
        pending_.push_back(*message->event);
    }
    return std::nullopt;
}

void RemoteTracker::lose(const std::string& why) const {
    if (lost_) return;
    lost_ = true;
    for (pid_t pid : held_) kill(pid, SIGCONT);
    held_.clear();
    say_(fmt::format("memgov: lost the memgov daemon ({}): the build goes on ungoverned; nothing of it is held", why));
}

void RemoteTracker::track(pid_t pid) {
    int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
    if (pidfd < 0) throw TrackerError(fmt::format("pidfd_open({}): {}", pid, std::strerror(errno)));
    DaemonRequest request{
        .op = DaemonRequest::Op::register_build, .gate = gate_, .ledger = ledger_build_.has_value(), .nice = nice_};
    if (ledger_build_) {
        request.text = ledger_build_->command.substr(0, max_daemon_text);
        request.cgroup = ledger_build_->cgroup;
    }
    auto reply = ask(request, pidfd);
    close(pidfd);
    if (!reply) throw TrackerError("the memgov daemon did not answer: is it running? (memgov check)");
    if (!reply->ok) throw TrackerError(fmt::format("the memgov daemon refused the build: {}", reply->error));
    ledger_kept_ = ledger_build_ && reply->note.empty();
    if (ledger_build_ && !reply->note.empty())
        say_(
            fmt::format("memgov: warning: other memgov runs on this host will not see this build's memory (the "
                        "daemon keeps no ledger entry for it: {})",
                        reply->note));
}

// The daemon's entry for this build: turns and publications go through the daemon's socket.
class RemoteTracker::DaemonLedger final : public Ledger {
public:
    DaemonLedger(RemoteTracker& tracker, LedgerBuild build) : tracker_(tracker), build_(std::move(build)) {}

    std::optional<LedgerTurn> take_turn(std::chrono::milliseconds patience) override {
        others_.clear();
        if (!tracker_.ledger_kept_ || tracker_.lost_) return LedgerTurn([] {});  // alone
        auto reply =
            tracker_.ask({.op = DaemonRequest::Op::turn, .patience_ms = static_cast<std::uint32_t>(patience.count())});
        if (!reply) return LedgerTurn([] {});
        for (const auto& text : reply->entries)
            if (auto entry = parse_ledger_entry(text)) others_.push_back(std::move(*entry));
        if (!reply->ok) return std::nullopt;
        return LedgerTurn([this] { tracker_.send({.op = DaemonRequest::Op::end_turn}); });
    }
    std::vector<LedgerEntry> others() const override { return others_; }
    void publish(const LedgerState& state) override {
        if (!tracker_.ledger_kept_) return;
        LedgerEntry entry{build_, state};
        std::string text = serialize_ledger_entry(entry);
        if (text.size() > max_daemon_message / 2) {  // its jobs' list is for memgov status only
            entry.state.jobs.reset();
            text = serialize_ledger_entry(entry);
        }
        tracker_.send({.op = DaemonRequest::Op::publish, .text = std::move(text)});
    }
    std::string where() const override { return "the memgov daemon's host ledger"; }

private:
    RemoteTracker& tracker_;
    LedgerBuild build_;
    std::vector<LedgerEntry> others_;
};

std::unique_ptr<Ledger> RemoteTracker::ledger(const LedgerBuild& build) {
    ledger_build_ = build;
    return std::make_unique<DaemonLedger>(*this, build);
}

void RemoteTracker::note(const TrackerEvent& event) const {
    if (const auto* exec = std::get_if<ExecEvent>(&event)) {
        if (exec->job_root) known_jobs_.insert(exec->job);
        if (exec->waiting) held_.insert(exec->pid);
    } else if (const auto* exit = std::get_if<ExitEvent>(&event)) {
        held_.erase(exit->pid);
        if (exit->pid == exit->job) known_jobs_.erase(exit->job);
    }
}

int RemoteTracker::poll(std::chrono::milliseconds timeout, const EventHandler& handler) {
    int count = 0;
    auto deliver = [&](const TrackerEvent& event) {
        handler(event);
        ++count;
    };
    while (!pending_.empty()) {
        TrackerEvent event = std::move(pending_.front());
        pending_.pop_front();
        deliver(event);
    }
    if (lost_) {
        if (count == 0) ::poll(nullptr, 0, static_cast<int>(timeout.count()));
        return count;
    }
    // Wait for the first, then take whatever else is there.
    for (int wait_ms = count ? 0 : static_cast<int>(timeout.count());; wait_ms = 0) {
        auto message = receive(wait_ms);
        if (!message) break;
        if (message->kind != DaemonMessage::Kind::event) continue;
        note(*message->event);
        deliver(*message->event);
    }
    return count;
}

void RemoteTracker::resume(pid_t pid) {
    // Continue first, forget second: a crash in between costs a spare SIGCONT, never a stuck job.
    kill(pid, SIGCONT);
    held_.erase(pid);
    send({.op = DaemonRequest::Op::release, .ids = {pid}});
}

bool RemoteTracker::stop_job(pid_t job) {
    auto reply = ask({.op = DaemonRequest::Op::hold, .job = job});
    if (!reply || !reply->ok) return false;  // not entered in the guard: not stopped
    std::vector<pid_t> not_ours;             // another user's now (a setuid step): out of the guard
    bool stopped = false;
    for (pid_t pid : reply->pids) {
        if (kill(pid, SIGSTOP) == 0) {
            held_.insert(pid);
            stopped = true;
        } else {
            not_ours.push_back(pid);
        }
    }
    if (!not_ours.empty()) send({.op = DaemonRequest::Op::release, .ids = not_ours});
    return stopped;
}

void RemoteTracker::resume_job(pid_t job) {
    auto reply = ask({.op = DaemonRequest::Op::processes, .job = job});
    std::vector<pid_t> continued;
    for (pid_t pid : held_)
        if (!reply || std::find(reply->pids.begin(), reply->pids.end(), pid) != reply->pids.end())
            continued.push_back(pid);
    for (pid_t pid : continued) {
        kill(pid, SIGCONT);
        held_.erase(pid);
    }
    if (!continued.empty()) send({.op = DaemonRequest::Op::release, .ids = continued});
}

void RemoteTracker::restop_held() {
    for (pid_t pid : held_) kill(pid, SIGSTOP);
}

void RemoteTracker::signal_all(int signo) {
    auto reply = ask({.op = DaemonRequest::Op::processes});
    if (reply)
        for (pid_t pid : reply->pids) kill(pid, signo);
}

void RemoteTracker::refresh_usage(bool now) const {
    if (!now && monotonic_ns() - usage_read_ns_ < usage_refresh_ns) return;
    usage_read_ns_ = monotonic_ns();
    auto reply = ask({.op = DaemonRequest::Op::usage, .ids = {known_jobs_.begin(), known_jobs_.end()}});
    if (!reply) return;
    usage_.clear();
    for (const auto& [job, use] : reply->usage) usage_[job] = use;
    totals_ = reply->totals;
}

std::optional<JobUsage> RemoteTracker::job_usage(pid_t job) const {
    refresh_usage();
    auto it = usage_.find(job);
    // A job heard of since the last answer is not in it: the controller would take it for
    // gone (its exit record lost) and forget it, held at the gate for ever. Ask again.
    if (it == usage_.end() && known_jobs_.contains(job)) {
        refresh_usage(true);
        it = usage_.find(job);
    }
    return it == usage_.end() ? std::nullopt : std::optional(it->second);
}

TrackerTotals RemoteTracker::totals() const {
    refresh_usage();
    return totals_;
}

}  // namespace memgov
