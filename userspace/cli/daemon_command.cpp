#include "daemon_command.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <type_traits>
#include <unordered_map>

#include "bpf_tracker.h"
#include "daemon_protocol.h"
#include "gate_list.h"
#include "host_ledger.h"
#include "memgov/abi.h"
#include "text_file.h"

namespace memgov {
namespace {

struct Peer {
    pid_t pid = 0;
    uid_t uid = 0;
};

struct Session {
    int fd = -1;
    Peer peer;
    pid_t build = 0;  // its id, once registered
    pid_t root = 0;   // the build's first process
    // Its build's host-ledger entry, kept for it, and the turn it holds.
    std::unique_ptr<HostLedger> ledger;
    std::optional<LedgerTurn> turn;
    std::chrono::steady_clock::time_point turn_taken_at{};
    // Messages its socket had no room for yet, in order.
    std::deque<std::vector<std::uint8_t>> outbox;
    std::size_t outbox_bytes = 0;
    // A client in another pid namespace (a container) knows its processes by their numbers
    // there: the records it is sent carry those, and the pids it names are looked up here
    // (its number -> ours), learned from those records and from the pids it is given.
    bool own_pid_namespace = false;
    std::unordered_map<pid_t, pid_t> our_pid;
    // Its build's job roots (ours) and when each was exec'd: what its ledger entry is checked
    // against (vouched_for).
    std::unordered_map<pid_t, Clock::time_point> jobs;
    std::chrono::milliseconds queue_offset{0};  // its --nice
};

// The pid `session`'s client means by `pid`; 0 when it names none of its build's.
pid_t ours(const Session& session, pid_t pid) {
    if (!session.own_pid_namespace) return pid;
    auto it = session.our_pid.find(pid);
    return it == session.our_pid.end() ? 0 : it->second;
}

// The record as the client can read it: its own pids; false when the process has none there.
bool to_client(Session& session, TrackerEvent& event) {
    return std::visit(
        [&](auto& record) {
            if (!record.in_client.pid) return false;
            if constexpr (std::is_same_v<std::decay_t<decltype(record)>, ExitEvent>) {
                // Only its own entry: a number the container reused may name a newer process.
                auto it = session.our_pid.find(record.in_client.pid);
                if (it != session.our_pid.end() && it->second == record.pid) session.our_pid.erase(it);
            } else
                session.our_pid[record.in_client.pid] = record.pid;
            record.pid = record.in_client.pid;
            record.job = record.in_client.job;
            if constexpr (!std::is_same_v<std::decay_t<decltype(record)>, OomKillEvent>)
                record.ppid = record.in_client.ppid;
            return true;
        },
        event);
}

// A client slower than its build's events (a loaded host) is given this much room; one that
// does not read at all is dropped when it is full.
constexpr std::size_t outbox_limit = 16 << 20;
// More jobs than one build runs at once.
constexpr std::size_t max_usage_ids = 8192;

// A turn held longer than this by a client (stopped, or hostile) is taken back: the other
// builds on the host give up waiting for it after 200 ms anyway, every time.
constexpr auto longest_turn = std::chrono::milliseconds(500);

void say(const std::string& line) { fmt::print(stderr, "memgov daemon: {}\n", line); }

// systemd's Type=notify: READY=1 on $NOTIFY_SOCKET (an abstract name when it starts with '@').
void notify_ready() {
    const char* path = std::getenv("NOTIFY_SOCKET");
    if (!path || !*path) return;
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::size_t length = std::min(std::strlen(path), sizeof(address.sun_path) - 1);
    std::memcpy(address.sun_path, path, length);
    if (address.sun_path[0] == '@') address.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    const char ready[] = "READY=1";
    sendto(fd, ready, sizeof(ready) - 1, MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&address),
           static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + length));
    close(fd);
}

std::string process_status(pid_t pid) { return read_text_file(fmt::format("/proc/{}/status", pid)).value_or(""); }

// The pid a pidfd refers to, in our pid namespace ("Pid:" of its fdinfo); 0 when it has exited.
pid_t pid_of_pidfd(int pidfd) {
    // An exited process's is -1, which is no number here.
    auto pid = field_numbers(read_text_file(fmt::format("/proc/self/fdinfo/{}", pidfd)).value_or(""), "Pid");
    return pid.size() == 1 && pid[0] > 0 ? static_cast<pid_t>(pid[0]) : 0;
}

// Whether `dir` is a cgroup directory whose cgroup.procs lists `pid`. The path is a client's
// word: only cgroupfs under /sys/fs/cgroup is read (never a FIFO that would block the daemon,
// nor a file of the client's making), and only so much of it.
bool cgroup_lists(const std::string& dir, pid_t pid) {
    constexpr std::string_view root = "/sys/fs/cgroup/";
    constexpr std::size_t most = 4 << 20;
    if (!dir.starts_with(root) || dir.find("/..") != std::string::npos || dir.size() > max_daemon_text) return false;
    int fd = open((dir + "/cgroup.procs").c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return false;
    struct statfs where {};
    bool cgroupfs =
        fstatfs(fd, &where) == 0 && (where.f_type == CGROUP_SUPER_MAGIC || where.f_type == CGROUP2_SUPER_MAGIC);
    std::string text;
    char buffer[8192];
    for (ssize_t got; cgroupfs && text.size() < most && (got = read(fd, buffer, sizeof buffer)) > 0;)
        text.append(buffer, static_cast<std::size_t>(got));
    close(fd);
    std::istringstream pids(text);
    for (pid_t listed = 0; pids >> listed;)
        if (listed == pid) return true;
    return false;
}

class Daemon {
public:
    Daemon(const DaemonOptions& options, std::unique_ptr<BpfTracker> tracker, int listen_fd)
        : options_(options), tracker_(std::move(tracker)), listen_fd_(listen_fd) {}

    [[noreturn]] void run();

private:
    [[noreturn]] void serve_forever(int signal_fd);
    // Drops every client and exits with the BPF programs attached.
    [[noreturn]] void stop(int status, const std::string& why);
    void accept_clients();
    void serve(int fd);
    void drop(int fd, const std::string& why);
    bool reply(Session& session, const DaemonMessage& message);
    // Sends now, or queues what the socket has no room for (then drops a client that does
    // not read); false when the client was dropped.
    bool deliver(Session& session, std::vector<std::uint8_t> bytes);
    void flush(Session& session);
    void handle(Session& session, const DaemonRequest& request, int passed_fd);
    // "" or why not; `note`: why the build has no ledger entry, when it asked for one.
    std::string register_build(Session& session, const DaemonRequest& request, int pidfd, std::string& note);
    // Opens the client's ledger entry; "" or why not.
    std::string keep_ledger_entry(Session& session, const DaemonRequest& request);
    // The ledger's turn passes among the clients one at a time, in the order they ask: a
    // client that asks while another holds it is answered when that one ends its turn (or
    // when its patience runs out). The daemon takes the lock file's flock, which other
    // memgov runs on the host wait for, once for whichever client holds the turn.
    void ask_turn(Session& session, std::chrono::milliseconds patience);
    void answer_turn(Session& session, std::chrono::milliseconds patience);
    void end_turn(Session& session);
    void pass_turn();
    void take_back_long_turns();
    void forward(const TrackerEvent& event);
    // What we see of the session's build now, for its ledger entry.
    ObservedBuild observe(Session& session);
    void watch(int fd);

    const DaemonOptions& options_;
    std::unique_ptr<BpfTracker> tracker_;
    int listen_fd_;
    int epoll_fd_ = -1;
    std::map<int, Session> sessions_;  // by socket
    std::map<pid_t, int> build_fds_;   // build -> its client's socket
    pid_t next_build_ = 1;             // build ids are never reused
    int ledger_lock_fd_ = -1;          // the host ledger's lock file, shared by every client's entry
    int turn_holder_ = -1;             // the client holding the ledger's turn
    std::uint64_t memory_bytes_ = static_cast<std::uint64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGESIZE);
    struct TurnAsked {
        int fd;
        std::chrono::steady_clock::time_point until;
    };
    std::deque<TurnAsked> turn_queue_;
};

void Daemon::watch(int fd) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = fd;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event);
}

void Daemon::run() {
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    sigprocmask(SIG_BLOCK, &stop_signals, nullptr);
    int signal_fd = signalfd(-1, &stop_signals, SFD_CLOEXEC);
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    watch(listen_fd_);
    watch(tracker_->event_fd());
    watch(signal_fd);
    if (options_.ledger_dir != "off") {
        try {
            ledger_lock_fd_ = HostLedger::open_lock(options_.ledger_dir);
        } catch (const std::exception& error) {
            say(fmt::format("{}: its clients' builds will be governed as if alone", error.what()));
        }
    }
    notify_ready();
    say(fmt::format("listening on {} (pid {})", options_.socket_path, getpid()));
    try {
        serve_forever(signal_fd);
    } catch (const std::exception& error) {
        stop(1, fmt::format("stopping on an error ({}): every client's build goes on ungoverned", error.what()));
    }
}

void Daemon::stop(int status, const std::string& why) {
    say(why);
    std::vector<int> clients;
    for (const auto& [client, session] : sessions_) clients.push_back(client);
    for (int client : clients) drop(client, "the daemon stops");
    unlink(options_.socket_path.c_str());
    // Not a return: the BPF programs must stay attached until this process is gone, so that
    // the guard continues whatever a client still held (docs/DESIGN.md §12); a return would
    // destroy the tracker first, and the daemon may not signal its clients' processes itself.
    std::fflush(nullptr);
    _exit(status);
}

void Daemon::serve_forever(int signal_fd) {
    for (;;) {
        epoll_event ready[64];
        int count = epoll_wait(epoll_fd_, ready, 64, turn_queue_.empty() ? 100 : 5);
        take_back_long_turns();
        pass_turn();  // to a client still waiting, or telling it that its patience ran out
        if (count < 0 && errno == EINTR) continue;
        if (count < 0) throw std::runtime_error(fmt::format("epoll_wait: {}", std::strerror(errno)));
        for (int i = 0; i < count; ++i) {
            int fd = ready[i].data.fd;
            if (fd == signal_fd) stop(0, "stopping: every client's build goes on ungoverned");
            if (fd == listen_fd_)
                accept_clients();
            else if (fd == tracker_->event_fd())
                tracker_->poll(std::chrono::milliseconds(0), [this](const TrackerEvent& event) { forward(event); });
            else if (auto session = sessions_.find(fd); session != sessions_.end()) {
                if (ready[i].events & EPOLLOUT) flush(session->second);
                if (sessions_.contains(fd) && (ready[i].events & ~EPOLLOUT)) serve(fd);
            }
        }
    }
}

void Daemon::take_back_long_turns() {
    auto holder = sessions_.find(turn_holder_);
    if (holder == sessions_.end() || std::chrono::steady_clock::now() - holder->second.turn_taken_at <= longest_turn)
        return;
    say(fmt::format("client pid {} held the ledger's turn over {} ms: taken back", holder->second.peer.pid,
                    longest_turn.count()));
    end_turn(holder->second);
}

void Daemon::answer_turn(Session& session, std::chrono::milliseconds patience) {
    DaemonMessage answer;
    if (!session.ledger) {
        answer.ok = false;
        reply(session, answer);
        return;
    }
    if (auto turn = session.ledger->take_turn(patience)) {  // waits only for memgov runs outside
        session.turn.emplace(std::move(*turn));
        session.turn_taken_at = std::chrono::steady_clock::now();
        turn_holder_ = session.fd;
    }
    for (LedgerEntry entry : session.ledger->others()) {
        entry.state.jobs.reset();  // for memgov status only
        if (session.peer.uid != 0 && entry.build.uid != session.peer.uid) entry.build.command.clear();  // not theirs
        answer.entries.push_back(serialize_ledger_entry(entry));
    }
    answer.ok = session.turn.has_value();
    reply(session, answer);
}

void Daemon::ask_turn(Session& session, std::chrono::milliseconds patience) {
    if (std::any_of(turn_queue_.begin(), turn_queue_.end(),
                    [&](const TurnAsked& asked) { return asked.fd == session.fd; })) {
        drop(session.fd, "it asked for the ledger's turn again before its answer");
        return;
    }
    if (turn_holder_ == session.fd) end_turn(session);  // a second ask ends the first turn
    if (turn_holder_ < 0 && turn_queue_.empty())
        answer_turn(session, patience);
    else
        turn_queue_.push_back({session.fd, std::chrono::steady_clock::now() + patience});
}

void Daemon::end_turn(Session& session) {
    session.turn.reset();
    if (turn_holder_ == session.fd) turn_holder_ = -1;
}

void Daemon::pass_turn() {
    auto now = std::chrono::steady_clock::now();
    while (!turn_queue_.empty() && (turn_holder_ < 0 || turn_queue_.front().until <= now)) {
        TurnAsked asked = turn_queue_.front();
        turn_queue_.pop_front();
        auto it = sessions_.find(asked.fd);
        if (it == sessions_.end()) continue;  // it left
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(asked.until - now);
        if (turn_holder_ >= 0) {
            DaemonMessage busy;  // its patience ran out: it decides without the turn
            busy.ok = false;
            reply(it->second, busy);
        } else {
            answer_turn(it->second, std::max(left, std::chrono::milliseconds(0)));
        }
    }
}

void Daemon::accept_clients() {
    for (;;) {
        int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        ucred credentials{};
        socklen_t length = sizeof(credentials);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) {
            close(fd);
            continue;
        }
        std::size_t of_user = 0;
        for (const auto& [other_fd, other] : sessions_) of_user += other.peer.uid == credentials.uid;
        if (sessions_.size() >= options_.max_clients || of_user >= options_.max_builds_per_user) {
            say(fmt::format("refused pid {} (uid {}): {} clients already, {} of that user's", credentials.pid,
                            credentials.uid, sessions_.size(), of_user));
            close(fd);
            continue;
        }
        sessions_.emplace(fd, Session{.fd = fd, .peer = {credentials.pid, credentials.uid}});
        watch(fd);
    }
}

void Daemon::drop(int fd, const std::string& why) {
    auto it = sessions_.find(fd);
    if (it == sessions_.end()) return;
    Session& session = it->second;
    end_turn(session);
    // Its fd may be a new client's soon: nothing queued may answer that one.
    std::erase_if(turn_queue_, [fd](const TurnAsked& asked) { return asked.fd == fd; });
    if (session.build) {
        tracker_->forget_build(session.build, session.peer.pid);
        build_fds_.erase(session.build);
    }
    if (options_.verbosity > 0 || why != "it hung up")
        say(fmt::format("client pid {} (uid {}){}: {}", session.peer.pid, session.peer.uid,
                        session.build ? fmt::format(", build {}", session.build) : "", why));
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    close(fd);
    sessions_.erase(it);
}

bool Daemon::reply(Session& session, const DaemonMessage& message) { return deliver(session, encode_reply(message)); }

bool Daemon::deliver(Session& session, std::vector<std::uint8_t> bytes) {
    if (session.outbox.empty()) {
        if (send(session.fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT) >= 0) return true;
        if (errno != EAGAIN) {
            drop(session.fd, fmt::format("cannot write to it ({})", std::strerror(errno)));
            return false;
        }
        epoll_event event{.events = EPOLLIN | EPOLLOUT, .data = {.fd = session.fd}};
        epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, session.fd, &event);
    }
    session.outbox_bytes += bytes.size();
    session.outbox.push_back(std::move(bytes));
    if (session.outbox_bytes <= outbox_limit) return true;
    drop(session.fd, "it does not read its build's events");
    return false;
}

void Daemon::flush(Session& session) {
    while (!session.outbox.empty()) {
        const auto& bytes = session.outbox.front();
        if (send(session.fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
            if (errno != EAGAIN) drop(session.fd, fmt::format("cannot write to it ({})", std::strerror(errno)));
            return;
        }
        session.outbox_bytes -= bytes.size();
        session.outbox.pop_front();
    }
    epoll_event event{.events = EPOLLIN, .data = {.fd = session.fd}};
    epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, session.fd, &event);
}

void Daemon::serve(int fd) {
    std::vector<std::uint8_t> buffer(max_daemon_message + 1);
    iovec part{buffer.data(), buffer.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)] = {};
    msghdr message{};
    message.msg_iov = &part;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof(control);
    ssize_t got = recvmsg(fd, &message, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (got < 0 && (errno == EAGAIN || errno == EINTR)) return;
    std::vector<int> passed;
    for (cmsghdr* header = CMSG_FIRSTHDR(&message); header; header = CMSG_NXTHDR(&message, header))
        if (header->cmsg_level == SOL_SOCKET && header->cmsg_type == SCM_RIGHTS)
            for (std::size_t i = 0; i < (header->cmsg_len - CMSG_LEN(0)) / sizeof(int); ++i) {
                int received = -1;
                std::memcpy(&received, CMSG_DATA(header) + i * sizeof(int), sizeof(int));
                passed.push_back(received);
            }
    auto close_passed = [&] {
        for (int passed_fd : passed) close(passed_fd);
    };
    if (got <= 0) {
        close_passed();
        drop(fd, got == 0 ? "it hung up" : std::strerror(errno));
        return;
    }
    if (message.msg_flags & (MSG_TRUNC | MSG_CTRUNC) || passed.size() > 1) {
        close_passed();
        drop(fd, "it sent a message too large, or more than one descriptor");
        return;
    }
    std::string error;
    auto request = parse_request({buffer.data(), static_cast<std::size_t>(got)}, error);
    if (!request) {
        close_passed();
        drop(fd, "it sent " + error);
        return;
    }
    handle(sessions_.at(fd), *request, passed.empty() ? -1 : passed.front());
    close_passed();
}

std::string Daemon::keep_ledger_entry(Session& session, const DaemonRequest& request) {
    if (options_.ledger_dir == "off") return "it runs with --ledger off";
    // The cgroup that decides which builds compete with this one: taken only if the client is
    // in it (a client naming another would hide its memory from the builds it competes with).
    std::string cgroup = cgroup_lists(request.cgroup, session.peer.pid) ? request.cgroup : "";
    if (ledger_lock_fd_ < 0) return "the daemon could not open its ledger";
    try {
        session.ledger = HostLedger::open(options_.ledger_dir,
                                          {.pid = session.peer.pid,
                                           .uid = session.peer.uid,
                                           .command = request.text.substr(0, max_daemon_text),
                                           .cgroup = cgroup},
                                          ledger_lock_fd_, turn_holder_ >= 0);
    } catch (const std::exception& error) {
        return error.what();
    }
    return "";
}

// A client in another pid namespace than ours (a container) signals its processes by their
// numbers there: its namespace and level, and its and the root's numbers in it, for the kernel
// to number every process of its build there too. "" or why not.
std::string client_namespace(pid_t client, pid_t root, ClientNamespace& found) {
    // NSpid: the pid in each namespace from ours down to the process's own.
    // (Its namespace's inode is not needed, nor readable: /proc/PID/ns needs ptrace access.)
    auto client_pids = field_numbers(process_status(client), "NSpid");
    if (client_pids.size() <= 1) return "";  // ours
    struct stat own {};
    constexpr ino_t initial_pid_namespace = 0xEFFFFFFCU;  // PROC_PID_INIT_INO, linux/proc_ns.h
    if (stat("/proc/self/ns/pid", &own) != 0 || own.st_ino != initial_pid_namespace)
        return "this daemon runs in a container itself: run it in the host's pid namespace to serve containers";
    auto root_pids = field_numbers(process_status(root), "NSpid");
    if (root_pids.size() < client_pids.size()) return fmt::format("pid {} is not in the client's pid namespace", root);
    std::size_t level = client_pids.size() - 1;  // ours is the initial one, level 0
    if (level >= MG_MAX_PID_NS_LEVEL) return fmt::format("pid namespaces nested {} deep are not followed", level);
    found = {.level = static_cast<std::uint32_t>(level),
             .root = static_cast<pid_t>(root_pids[level]),
             .owner = static_cast<pid_t>(client_pids[level])};
    return "";
}

std::string Daemon::register_build(Session& session, const DaemonRequest& request, int pidfd, std::string& note) {
    if (session.build) return "this connection has a build already";
    if (pidfd < 0) return "no pidfd of the build's root came with the request";
    if (request.nice < lowest_nice || request.nice > highest_nice)
        return fmt::format("--nice {}: expected {} to {}", request.nice, lowest_nice, highest_nice);
    if (request.nice < 0 && session.peer.uid != 0)
        return "--nice below 0 puts this build's jobs ahead of other users': only root may";
    pid_t root = pid_of_pidfd(pidfd);
    if (root <= 0) return "the build's root has exited";
    // Only a process tree the client owns: its own child, of its own user (root may register
    // anyone's child of its own). Its ids are read by pid; the pidfd is asked again below that
    // it still names that pid.
    std::string status = process_status(root);
    auto parent = field_numbers(status, "PPid");
    if (parent.size() != 1 || parent[0] != static_cast<std::uint64_t>(session.peer.pid))
        return fmt::format("pid {} is not a child of the client (pid {})", root, session.peer.pid);
    auto uids = field_numbers(status, "Uid");
    if (uids.size() != 4) return fmt::format("cannot read the owner of pid {}", root);
    for (std::uint64_t uid : uids)
        if (session.peer.uid != 0 && uid != session.peer.uid)
            return fmt::format("pid {} is not the client's user's (uid {})", root, session.peer.uid);
    ClientNamespace client_ns;
    if (std::string why = client_namespace(session.peer.pid, root, client_ns); !why.empty()) return why;
    // All was read by pid: the pidfd must still name that pid (a pidfd does not hold the
    // number; the process, stopped at its barrier, is the client's to reap).
    if (pid_of_pidfd(pidfd) != root) return "the build's root exited while it was checked";
    session.own_pid_namespace = client_ns.level != 0;
    session.queue_offset = request.nice * nice_step;
    pid_t build = next_build_;
    try {
        tracker_->track_build(
            root, build, {.pid = session.peer.pid, .uid = session.peer.uid, .pid_namespace = client_ns}, request.gate);
    } catch (const TrackerError& error) {
        return error.what();
    }
    next_build_ = next_build_ == std::numeric_limits<pid_t>::max() ? 1 : next_build_ + 1;
    session.build = build;
    session.root = root;
    build_fds_[build] = session.fd;
    if (request.ledger) note = keep_ledger_entry(session, request);
    if (options_.verbosity > 0)
        say(fmt::format("client pid {} (uid {}) registered build {} (pid {})", session.peer.pid, session.peer.uid,
                        build, root));
    return "";
}

void Daemon::handle(Session& session, const DaemonRequest& request, int passed_fd) {
    using Op = DaemonRequest::Op;
    DaemonMessage answer;
    if (request.op == Op::register_build) {
        answer.error = register_build(session, request, passed_fd, answer.note);
        answer.ok = answer.error.empty();
        reply(session, answer);
        return;
    }
    if (!session.build) {
        drop(session.fd, "it asked before registering a build");
        return;
    }
    auto of_build = [&](pid_t job) { return tracker_->build_of_job(job) == session.build; };
    // Pids for the client to signal, in its namespace (remembered: it names them again).
    auto for_client = [&](std::vector<pid_t> pids) {
        if (!session.own_pid_namespace) return pids;
        std::vector<pid_t> theirs;
        for (pid_t pid : pids)
            if (pid_t seen = tracker_->pid_for_client(pid)) {
                session.our_pid[seen] = pid;
                theirs.push_back(seen);
            }
        return theirs;
    };
    switch (request.op) {
        case Op::usage:
            if (request.ids.size() > max_usage_ids) {
                drop(session.fd, fmt::format("it asked for {} jobs' use at once", request.ids.size()));
                return;
            }
            for (pid_t asked : request.ids)
                if (pid_t job = ours(session, asked); job && of_build(job))
                    if (auto use = tracker_->job_usage(job)) answer.usage.emplace_back(asked, *use);
            answer.totals = tracker_->build_totals(session.build).value_or(TrackerTotals{});
            break;
        case Op::hold:
            if (pid_t job = ours(session, *request.job); job && of_build(job))
                answer.pids = for_client(tracker_->hold_job(job, session.peer.pid));
            answer.ok = !answer.pids.empty();
            break;
        case Op::release:
            for (pid_t asked : request.ids)
                if (pid_t pid = ours(session, asked); pid && tracker_->held_by(pid) == session.peer.pid)
                    tracker_->release(pid);
            return;  // no reply
        case Op::processes: {
            std::optional<pid_t> job;
            if (request.job) job = ours(session, *request.job);
            if (job != 0) answer.pids = for_client(tracker_->processes(session.build, job));  // 0: none of its
            break;
        }
        case Op::turn:
            if (!session.ledger) {  // it was told it has no entry: not ok, no entries
                answer.ok = false;
                break;
            }
            ask_turn(session, std::min(std::chrono::milliseconds(request.patience_ms), longest_turn));
            return;  // answered now, or when its turn comes
        case Op::publish:
            if (session.ledger) {
                auto entry = parse_ledger_entry(request.text);
                if (!entry) {
                    drop(session.fd, "it published a malformed ledger entry");
                    return;
                }
                session.ledger->publish(vouched_for(std::move(entry->state), observe(session)));
            }
            return;  // no reply
        case Op::end_turn:
            end_turn(session);
            pass_turn();
            return;
        case Op::register_build: break;
    }
    reply(session, answer);
}

ObservedBuild Daemon::observe(Session& session) {
    ObservedBuild seen{.now = Clock::now(), .memory_bytes = memory_bytes_, .queue_offset = session.queue_offset};
    if (auto totals = tracker_->build_totals(session.build)) seen.build_bytes = totals->rss_bytes;
    for (auto it = session.jobs.begin(); it != session.jobs.end();) {
        auto [job, exec_at] = *it;
        if (!tracker_->job_usage(job)) {  // gone (its exit record lost, or not read yet)
            it = session.jobs.erase(it);
            continue;
        }
        if (tracker_->held_by(job) == session.peer.pid)
            seen.oldest_held_since = std::min(seen.oldest_held_since.value_or(exec_at), exec_at);
        else
            ++seen.running_jobs;
        ++it;
    }
    return seen;
}

void Daemon::forward(const TrackerEvent& event) {
    pid_t build = std::visit([](const auto& e) { return e.build; }, event);
    auto it = build_fds_.find(build);
    if (it == build_fds_.end()) return;  // memgov's own (none here), or a build whose client left
    Session& session = sessions_.at(it->second);
    if (const auto* exec = std::get_if<ExecEvent>(&event); exec && exec->job_root)
        session.jobs[exec->pid] = Clock::time_point(std::chrono::nanoseconds(exec->timestamp_ns));
    else if (const auto* exit = std::get_if<ExitEvent>(&event))
        session.jobs.erase(exit->pid);
    if (!session.own_pid_namespace) {
        deliver(session, encode_event(event));
        return;
    }
    TrackerEvent theirs = event;
    if (to_client(session, theirs)) deliver(session, encode_event(theirs));
}

// The socket, or why not. Anyone may connect (the per-peer rule: a client is only ever given
// the build it started itself); a stale socket of a dead daemon is replaced.
int listen_on(const std::string& path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path.size() >= sizeof(address.sun_path))
        throw std::runtime_error(
            fmt::format("{}: a socket path must be shorter than {} bytes", path, sizeof(address.sun_path)));
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error(fmt::format("socket: {}", std::strerror(errno)));
    auto bound = [&] { return bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0; };
    bool ok = bound();
    if (!ok && errno == EADDRINUSE) {
        int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        bool alive = connect(probe, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
        close(probe);
        if (alive) {
            close(fd);
            throw std::runtime_error(fmt::format("another memgov daemon listens on {}: stop it first", path));
        }
        unlink(path.c_str());  // a dead daemon's
        ok = bound();
    }
    if (!ok || chmod(path.c_str(), 0666) != 0 || listen(fd, 128) != 0) {
        int error = errno;
        close(fd);
        throw std::runtime_error(fmt::format("cannot listen on {}: {} (does its directory exist and is it writable?)",
                                             path, std::strerror(error)));
    }
    return fd;
}

}  // namespace

int daemon_command(const DaemonOptions& options) {
    std::unique_ptr<BpfTracker> tracker;
    int listen_fd = -1;
    try {
        TrackerOptions tracker_options;
        tracker_options.gate_names = default_gate_names();
        tracker_options.gate_names.insert(tracker_options.gate_names.end(), options.extra_gates.begin(),
                                          options.extra_gates.end());
        tracker_options.pause_job_roots = true;  // each client's build says for itself
        tracker_options.verbose_libbpf = options.verbosity > 0;
        tracker = BpfTracker::open(tracker_options);
        listen_fd = listen_on(options.socket_path);
        Daemon(options, std::move(tracker), listen_fd).run();
    } catch (const std::exception& error) {
        say(error.what());
        return 1;
    }
}

}  // namespace memgov
