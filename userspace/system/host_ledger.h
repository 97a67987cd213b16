// The host ledger (docs/DESIGN.md §7.6): a directory in which every memgov governing a build
// on this host publishes what its build is about to take, keeps, and waits for, and reads
// what the others publish. Without it, two memgov runs on one machine would each treat free
// memory as theirs. One lock file serialises decisions, from reading the others to
// publishing; each entry is locked by its memgov for as long as it runs, so an entry whose
// lock is free belongs to a memgov that is gone (even by SIGKILL) and is removed.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "governor.h"

namespace memgov {

// Who a ledger entry is: fixed for the life of the run.
struct LedgerBuild {
    pid_t pid = 0;  // memgov's
    uid_t uid = 0;  // whose build it is
    std::string command;
    std::string cgroup;  // the memory cgroup memgov and its build are charged to ("": none)
};

// One job of a build, for `memgov status`. An entry lists at most max_ledger_jobs, each key
// cut to max_ledger_key_bytes.
constexpr std::size_t max_ledger_jobs = 256;
constexpr std::size_t max_ledger_key_bytes = 256;
struct LedgerJob {
    JobView view;
    std::string key;
};

// What an entry says now.
struct LedgerState {
    Clock::time_point published_at{};  // CLOCK_MONOTONIC: the same clock in every process
    BuildShare share;
    std::uint64_t grant_bytes = 0;  // the starts its kernel grant allows, as memory
    std::uint64_t build_bytes = 0;  // its build's RSS now
    std::size_t waiting = 0;
    std::size_t stopped = 0;
    // Since the build started (for metrics: counters, per build).
    std::uint64_t jobs_waited = 0;
    double seconds_waited = 0;
    std::uint64_t emergency_stops = 0;
    std::uint64_t oom_kills = 0;
    std::uint64_t events_dropped = 0;
    // Its jobs (nullopt when publishing: as last published; they change less often than
    // the figures above, and cost more to write).
    std::optional<std::vector<LedgerJob>> jobs;
};

struct LedgerEntry {
    LedgerBuild build;
    LedgerState state;
};

// One line of JSON per entry; nullopt for anything else (the ledger is shared: a bad entry
// is skipped, never trusted).
std::optional<LedgerEntry> parse_ledger_entry(const std::string& text);
std::string serialize_ledger_entry(const LedgerEntry& entry);

// What a host daemon sees of a client's build, against which the entry the client publishes
// is checked (a client's figures are otherwise its own word: docs/DESIGN.md §12).
struct ObservedBuild {
    Clock::time_point now{};        // CLOCK_MONOTONIC, when the entry arrived
    std::uint64_t build_bytes = 0;  // its RSS, from the BPF maps
    std::size_t running_jobs = 0;   // its job roots alive and not held (at the gate or stopped)
    // When the oldest of its job roots held at the gate or stopped was exec'd; nullopt: none is.
    std::optional<Clock::time_point> oldest_held_since;
    std::uint64_t memory_bytes = 0;             // the host's: no claim is larger
    std::chrono::milliseconds queue_offset{0};  // its --nice, as registered (GovernorSettings)
};

// The entry as the daemon vouches for it: dated on arrival; its RSS the daemon's reading; no
// more jobs running than it has; with none running, nothing about to be taken or kept for a
// surprise; no grant (a daemon's clients have none); a waiting or stopped job only if one is
// held, not queued before it was exec'd (less a head start its --nice gives it); each figure
// at most the host's memory. What cannot be checked (how much a running job will still take)
// stays the client's word, within those bounds.
LedgerState vouched_for(LedgerState claimed, const ObservedBuild& seen);

// Which of the other builds make progress. An entry whose build's memory and running jobs have
// not changed for `patience` (the stall timeout) is resting: its running jobs are counted as
// none, its near growth as nothing and its stopped jobs as none, so that the stall rule, the
// net and the progress guarantee apply as if only we ran (Governor::decide), while what it is
// about to take and keep still counts. A client that claims jobs that do nothing (or a build
// whose jobs wait on each other) then delays another build by one stall timeout a start,
// never for ever; each entry on its own, so a busy build does not hide a resting one.
class ProgressWatch {
public:
    std::vector<LedgerEntry> rest_idle(std::vector<LedgerEntry> entries, Clock::time_point now,
                                       std::chrono::milliseconds patience);

private:
    struct Seen {
        std::uint64_t build_bytes = 0;
        std::size_t running = 0;
        Clock::time_point changed_at{};
    };
    std::map<pid_t, Seen> seen_;  // by the entry's memgov
};

// A memgov publishes at least every tick (100 ms); an entry older than this belongs to one
// that is stopped (Ctrl-Z stops its build with it) or hung: it is not counted.
constexpr std::chrono::seconds ledger_entry_lifetime{2};

// The other builds that compete for the same memory as one bound by `bound_cgroup` (the
// memory cgroup whose room is the tightest limit; nullopt: the machine's memory, or
// --limit): all of them, or those charged to that cgroup or below it; entries published
// ledger_entry_lifetime before `now` or earlier are left out.
OtherBuilds competing(const std::vector<LedgerEntry>& others, const std::optional<std::string>& bound_cgroup,
                      Clock::time_point now);

// Every live entry in a ledger directory, for a reader that has none (`memgov status`);
// throws std::runtime_error when the directory cannot be read.
std::vector<LedgerEntry> read_ledger(const std::string& dir);

// Held while one build reads the others' entries, decides and publishes; released when it
// goes out of scope.
class LedgerTurn {
public:
    explicit LedgerTurn(std::function<void()> release) : release_(std::move(release)) {}
    LedgerTurn(LedgerTurn&& other) noexcept : release_(std::exchange(other.release_, nullptr)) {}
    LedgerTurn& operator=(LedgerTurn&&) = delete;
    ~LedgerTurn() {
        if (release_) release_();
    }

private:
    std::function<void()> release_;
};

// One build's place among the builds governed on the same memory: what a BuildController
// needs to leave the others what they are about to take (docs/DESIGN.md §7.6). HostLedger
// keeps the entries in files, for memgov processes side by side; SharedLedger in memory, for
// several builds governed by one process.
class Ledger {
public:
    virtual ~Ledger() = default;
    // Waits up to `patience` for the turn (held for one decision: microseconds); nullopt
    // if another holds it longer.
    virtual std::optional<LedgerTurn> take_turn(std::chrono::milliseconds patience) = 0;
    // The other builds' entries, as last published.
    virtual std::vector<LedgerEntry> others() const = 0;
    virtual void publish(const LedgerState& state) = 0;
    // Where the entries are, for the log.
    virtual std::string where() const = 0;
};

// Builds governed by one process (tests; a host daemon): entries in memory, turns by a mutex.
class SharedLedger {
public:
    // A build's place; its entry goes when the place is destroyed (before the SharedLedger).
    std::unique_ptr<Ledger> join(LedgerBuild build);

private:
    class Place;
    std::timed_mutex turn_;
    std::mutex entries_mutex_;
    std::map<std::size_t, LedgerEntry> entries_;
    std::size_t next_id_ = 0;
};

class HostLedger final : public Ledger {
public:
    static constexpr const char* default_dir = "/run/memgov/ledger";

    // Opens the ledger in `dir`, creating it (mode 0700) if needed, and adds this build's
    // entry. A directory owned by someone other than us or root is refused: its writer
    // could make every build wait. Throws std::runtime_error with a one-line cause.
    // `shared_turn_fd` (from open_lock): the turns are taken on that one open lock file, so
    // the entries of one process never wait for each other (a host daemon, which passes
    // the turn among its clients itself); `within_turn`: that process holds it now.
    static std::unique_ptr<HostLedger> open(const std::string& dir, LedgerBuild self, int shared_turn_fd = -1,
                                            bool within_turn = false);
    // The ledger's lock file, opened (the directory made if needed); throws as open does.
    static int open_lock(const std::string& dir);
    ~HostLedger();  // removes this build's entry
    HostLedger(const HostLedger&) = delete;
    HostLedger& operator=(const HostLedger&) = delete;

    // The lock file's flock.
    std::optional<LedgerTurn> take_turn(std::chrono::milliseconds patience) override;
    // Entries of memgov runs that are gone are removed, unreadable ones skipped.
    std::vector<LedgerEntry> others() const override;
    void publish(const LedgerState& state) override;
    std::string where() const override { return entry_path_; }

    const std::string& dir() const { return dir_; }
    const std::string& entry_path() const { return entry_path_; }

private:
    HostLedger(std::string dir, LedgerBuild self, int lock_fd);

    std::string dir_;
    LedgerBuild self_;
    std::vector<LedgerJob> jobs_;  // as last published
    int lock_fd_ = -1;
    int entry_fd_ = -1;  // locked while we run
    std::string entry_path_;
};

}  // namespace memgov
