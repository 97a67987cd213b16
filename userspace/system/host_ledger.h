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
#include <memory>
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
    BuildShare share;
    std::uint64_t grant_bytes = 0;  // the starts its kernel grant allows, as memory
    std::uint64_t build_bytes = 0;  // its build's RSS now
    std::size_t waiting = 0;
    std::size_t stopped = 0;
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

// The other builds that compete for the same memory as one bound by `bound_cgroup` (the
// memory cgroup whose room is the tightest limit; nullopt: the machine's memory, or
// --limit): all of them, or those charged to that cgroup or below it.
OtherBuilds competing(const std::vector<LedgerEntry>& others, const std::optional<std::string>& bound_cgroup);

// Every live entry in a ledger directory, for a reader that has none (`memgov status`);
// throws std::runtime_error when the directory cannot be read.
std::vector<LedgerEntry> read_ledger(const std::string& dir);

class HostLedger {
public:
    static constexpr const char* default_dir = "/run/memgov/ledger";

    // Opens the ledger in `dir`, creating it (mode 0700) if needed, and adds this build's
    // entry. A directory owned by someone other than us or root is refused: its writer
    // could make every build wait. Throws std::runtime_error with a one-line cause.
    static std::unique_ptr<HostLedger> open(const std::string& dir, LedgerBuild self);
    ~HostLedger();  // removes this build's entry
    HostLedger(const HostLedger&) = delete;
    HostLedger& operator=(const HostLedger&) = delete;

    // Held while reading the others, deciding and publishing.
    class Turn {
    public:
        explicit Turn(int fd) : fd_(fd) {}
        Turn(Turn&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
        Turn& operator=(Turn&&) = delete;
        ~Turn();

    private:
        int fd_;
    };
    // Waits up to `patience` for the lock (it is held for a decision: microseconds);
    // nullopt if another process holds it longer.
    std::optional<Turn> take_turn(std::chrono::milliseconds patience);

    // The other builds' entries, as published; entries of memgov runs that are gone are
    // removed, unreadable ones skipped.
    std::vector<LedgerEntry> others() const;
    void publish(const LedgerState& state);

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
