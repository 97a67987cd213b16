#include "host_ledger.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>

namespace memgov {
namespace {

constexpr const char* entry_prefix = "build-";
constexpr std::size_t max_ledger_path_bytes = 4096;
// An entry lists at most max_ledger_jobs jobs with keys of at most max_ledger_key_bytes: far
// below this, so a full entry is never skipped as oversized (its build would then be unseen).
constexpr std::size_t max_entry_bytes = 1024 * 1024;

std::runtime_error failure(const std::string& what, const std::string& path) {
    return std::runtime_error(fmt::format("{} {}: {}", what, path, std::strerror(errno)));
}

std::optional<JobView::State> state_named(const std::string& name) {
    for (auto state : {JobView::State::waiting, JobView::State::running, JobView::State::stopped})
        if (name == state_name(state)) return state;
    return std::nullopt;
}

// Live entries of `dir` but `skip`; with remove_stale, entries of memgov runs that are gone
// are removed (a reader that takes part in the ledger keeps it clean).
std::vector<LedgerEntry> read_entries(const std::string& dir, const std::string& skip, bool remove_stale) {
    std::vector<LedgerEntry> entries;
    DIR* listing = opendir(dir.c_str());
    if (!listing) throw failure("cannot read", dir);
    while (const dirent* item = readdir(listing)) {
        std::string name = item->d_name;
        std::string path = dir + "/" + name;
        if (!name.starts_with(entry_prefix) || path == skip) continue;
        int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0) continue;
        if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
            if (remove_stale) unlink(path.c_str());  // its memgov is gone
            close(fd);
            continue;
        }
        struct stat st {};
        std::string text;
        if (fstat(fd, &st) == 0 && st.st_size > 0 && static_cast<std::size_t>(st.st_size) <= max_entry_bytes) {
            text.resize(static_cast<std::size_t>(st.st_size));
            ssize_t length = pread(fd, text.data(), text.size(), 0);
            text.resize(length > 0 ? static_cast<std::size_t>(length) : 0);
        }
        close(fd);
        if (auto entry = parse_ledger_entry(text)) entries.push_back(std::move(*entry));
    }
    closedir(listing);
    return entries;
}

std::int64_t ns_of(Clock::time_point at) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(at.time_since_epoch()).count();
}

// Creates `dir` (and its parent) if missing; refuses a directory that anyone but us or root
// owns, or that others than its owner (and group) may write.
void ensure_dir(const std::string& dir) {
    auto slash = dir.rfind('/');
    if (slash != std::string::npos && slash > 0) {
        std::string parent = dir.substr(0, slash);
        if (mkdir(parent.c_str(), 0755) != 0 && errno != EEXIST) throw failure("cannot create", parent);
    }
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) throw failure("cannot create", dir);
    struct stat st {};
    if (lstat(dir.c_str(), &st) != 0) throw failure("cannot open", dir);
    if (!S_ISDIR(st.st_mode)) throw std::runtime_error(fmt::format("{} is not a directory", dir));
    if (st.st_uid != 0 && st.st_uid != geteuid())
        throw std::runtime_error(fmt::format("{} belongs to uid {}, neither root nor us", dir, st.st_uid));
    if (st.st_mode & S_IWOTH) throw std::runtime_error(fmt::format("{} is writable by anyone", dir));
}

// In a directory an administrator shares with a group (the Debian package's /run/memgov/ledger,
// setgid memgov), every member must read every entry and lock the lock file; in a directory
// only its owner may enter (the default), these modes give nobody else anything.
void share_with_group(int fd, mode_t mode) {
    struct stat st {};
    if (fstat(fd, &st) == 0 && st.st_uid == geteuid()) fchmod(fd, mode);
}

}  // namespace

std::string serialize_ledger_entry(const LedgerEntry& entry) {
    const LedgerState& state = entry.state;
    nlohmann::json json{{"published_at_ns", ns_of(state.published_at)},
                        {"pid", entry.build.pid},
                        {"uid", entry.build.uid},
                        {"command", entry.build.command.substr(0, max_ledger_key_bytes)},
                        {"cgroup", entry.build.cgroup.substr(0, max_ledger_path_bytes)},
                        {"imminent", state.share.imminent_bytes},
                        {"near_growth", state.share.near_growth_bytes},
                        {"kept", state.share.kept_bytes},
                        {"stopped_need", state.share.stopped_need_bytes},
                        {"grant", state.grant_bytes},
                        {"running", state.share.running},
                        {"waiting", state.waiting},
                        {"stopped", state.stopped},
                        {"build", state.build_bytes},
                        {"jobs_waited", state.jobs_waited},
                        {"seconds_waited", state.seconds_waited},
                        {"emergency_stops", state.emergency_stops},
                        {"oom_kills", state.oom_kills},
                        {"events_dropped", state.events_dropped}};
    if (const auto& oldest = state.share.oldest_waiting)
        json["oldest_waiting"] = {{"queued_at_ns", ns_of(oldest->queued_at)}, {"bytes", oldest->needed_bytes}};
    json["jobs"] = nlohmann::json::array();
    for (const auto& job : state.jobs.value_or(std::vector<LedgerJob>{})) {
        if (json["jobs"].size() == max_ledger_jobs) break;
        json["jobs"].push_back({{"pid", job.view.job},
                                {"key", job.key.substr(0, max_ledger_key_bytes)},
                                {"state", state_name(job.view.state)},
                                {"reserved", job.view.reserved_bytes},
                                {"current", job.view.current_bytes}});
    }
    return json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::vector<LedgerEntry> ProgressWatch::rest_idle(std::vector<LedgerEntry> entries, Clock::time_point now,
                                                  std::chrono::milliseconds patience) {
    std::map<pid_t, Seen> seen;
    for (LedgerEntry& entry : entries) {
        BuildShare& share = entry.state.share;
        Seen now_seen{entry.state.build_bytes, share.running, now};
        if (auto it = seen_.find(entry.build.pid);
            it != seen_.end() && it->second.build_bytes == now_seen.build_bytes && it->second.running == share.running)
            now_seen.changed_at = it->second.changed_at;
        seen[entry.build.pid] = now_seen;
        if (now - now_seen.changed_at >= patience) {
            share.running = 0;
            share.near_growth_bytes = 0;
            entry.state.stopped = 0;
        }
    }
    seen_ = std::move(seen);  // entries gone are forgotten
    return entries;
}

LedgerState vouched_for(LedgerState claimed, const ObservedBuild& seen) {
    LedgerState state = std::move(claimed);
    auto at_most_memory = [&](std::uint64_t& bytes) { bytes = std::min(bytes, seen.memory_bytes); };
    state.published_at = seen.now;
    state.build_bytes = seen.build_bytes;
    state.grant_bytes = 0;
    BuildShare& share = state.share;
    share.running = std::min(share.running, seen.running_jobs);
    if (share.running == 0) share.imminent_bytes = share.near_growth_bytes = share.kept_bytes = 0;
    at_most_memory(share.imminent_bytes);
    at_most_memory(share.near_growth_bytes);
    at_most_memory(share.kept_bytes);
    at_most_memory(share.stopped_need_bytes);
    if (!seen.oldest_held_since) {
        state.stopped = 0;
        share.stopped_need_bytes = 0;
        share.oldest_waiting.reset();
    } else if (share.oldest_waiting) {
        share.oldest_waiting->queued_at =
            std::max(share.oldest_waiting->queued_at, *seen.oldest_held_since + seen.queue_offset);
        at_most_memory(share.oldest_waiting->needed_bytes);
    }
    return state;
}

std::optional<LedgerEntry> parse_ledger_entry(const std::string& text) {
    auto json = nlohmann::json::parse(text, nullptr, false);
    if (!json.is_object()) return std::nullopt;
    // Sizes and counts must be what they say: a negative number is no size (nlohmann would
    // convert it), and a wrong type no count.
    auto count_in = [](const nlohmann::json& object, const char* key) {
        const auto& value = object.at(key);
        if (!value.is_number_unsigned()) throw std::invalid_argument(key);
        return value.get<std::uint64_t>();
    };
    auto count = [&](const char* key) { return count_in(json, key); };
    try {
        LedgerEntry entry;
        entry.build = {.pid = static_cast<pid_t>(count("pid")),
                       .uid = static_cast<uid_t>(count("uid")),
                       .command = json.at("command").get<std::string>(),
                       .cgroup = json.at("cgroup").get<std::string>()};
        LedgerState& state = entry.state;
        const auto& published = json.at("published_at_ns");
        if (!published.is_number_integer()) return std::nullopt;
        state.published_at = Clock::time_point(std::chrono::nanoseconds(published.get<std::int64_t>()));
        state.share.imminent_bytes = count("imminent");
        state.share.near_growth_bytes = count("near_growth");
        state.share.kept_bytes = count("kept");
        // An entry of a memgov from before stopped_need: none said.
        if (json.contains("stopped_need")) state.share.stopped_need_bytes = count("stopped_need");
        state.share.running = count("running");
        state.grant_bytes = count("grant");
        state.waiting = count("waiting");
        state.stopped = count("stopped");
        state.build_bytes = count("build");
        state.jobs_waited = count("jobs_waited");
        const auto& waited = json.at("seconds_waited");
        if (!waited.is_number() || waited.get<double>() < 0) return std::nullopt;
        state.seconds_waited = waited.get<double>();
        state.emergency_stops = count("emergency_stops");
        state.oom_kills = count("oom_kills");
        state.events_dropped = count("events_dropped");
        if (json.contains("oldest_waiting")) {
            const auto& oldest = json.at("oldest_waiting");
            const auto& queued_at = oldest.at("queued_at_ns");
            if (!queued_at.is_number_integer()) return std::nullopt;
            state.share.oldest_waiting = OtherBuilds::Waiting{
                Clock::time_point(std::chrono::nanoseconds(queued_at.get<std::int64_t>())), count_in(oldest, "bytes")};
        }
        state.jobs.emplace();
        for (const auto& job : json.value("jobs", nlohmann::json::array())) {
            auto job_state = state_named(job.at("state").get<std::string>());
            if (!job_state) return std::nullopt;
            state.jobs->push_back({.view = {.job = static_cast<pid_t>(count_in(job, "pid")),
                                            .state = *job_state,
                                            .reserved_bytes = count_in(job, "reserved"),
                                            .current_bytes = count_in(job, "current")},
                                   .key = job.at("key").get<std::string>()});
        }
        return entry;
    } catch (const std::exception&) {
        return std::nullopt;  // a field missing or of the wrong type
    }
}

OtherBuilds competing(const std::vector<LedgerEntry>& others, const std::optional<std::string>& bound_cgroup,
                      Clock::time_point now) {
    OtherBuilds competitors;
    for (const auto& other : others) {
        if (now - other.state.published_at >= ledger_entry_lifetime) continue;
        // Memory charged outside the cgroup that bounds us does not count against its limit.
        if (bound_cgroup && other.build.cgroup != *bound_cgroup && !other.build.cgroup.starts_with(*bound_cgroup + "/"))
            continue;
        const BuildShare& share = other.state.share;
        competitors.imminent_bytes += share.imminent_bytes;
        competitors.near_growth_bytes += share.near_growth_bytes;
        competitors.kept_bytes += share.kept_bytes + other.state.grant_bytes;
        competitors.stopped_need_bytes += share.stopped_need_bytes;
        competitors.granted_bytes += other.state.grant_bytes;
        competitors.running += share.running;
        competitors.stopped += other.state.stopped;
        if (share.oldest_waiting) competitors.oldest_waiting.push_back(*share.oldest_waiting);
    }
    return competitors;
}

class SharedLedger::Place final : public Ledger {
public:
    Place(SharedLedger& shared, std::size_t id) : shared_(shared), id_(id) {}
    ~Place() override {
        std::lock_guard lock(shared_.entries_mutex_);
        shared_.entries_.erase(id_);
    }
    std::optional<LedgerTurn> take_turn(std::chrono::milliseconds patience) override {
        if (!shared_.turn_.try_lock_for(patience)) return std::nullopt;
        return LedgerTurn([this] { shared_.turn_.unlock(); });
    }
    std::vector<LedgerEntry> others() const override {
        std::lock_guard lock(shared_.entries_mutex_);
        std::vector<LedgerEntry> entries;
        for (const auto& [id, entry] : shared_.entries_)
            if (id != id_) entries.push_back(entry);
        return entries;
    }
    void publish(const LedgerState& state) override {
        std::lock_guard lock(shared_.entries_mutex_);
        LedgerEntry& entry = shared_.entries_.at(id_);
        auto jobs = std::move(entry.state.jobs);
        entry.state = state;
        if (!entry.state.jobs) entry.state.jobs = std::move(jobs);  // as last published
    }
    std::string where() const override { return "this process"; }

private:
    SharedLedger& shared_;
    std::size_t id_;
};

std::unique_ptr<Ledger> SharedLedger::join(LedgerBuild build) {
    std::lock_guard lock(entries_mutex_);
    std::size_t id = next_id_++;
    entries_[id] = LedgerEntry{.build = std::move(build), .state = {}};
    return std::make_unique<Place>(*this, id);
}

int HostLedger::open_lock(const std::string& dir) {
    ensure_dir(dir);
    std::string lock_path = dir + "/lock";
    // flock needs only a read-only descriptor: the lock file may be another member's.
    int lock_fd = ::open(lock_path.c_str(), O_RDONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0660);
    if (lock_fd < 0) throw failure("cannot open", lock_path);
    share_with_group(lock_fd, 0660);
    return lock_fd;
}

std::unique_ptr<HostLedger> HostLedger::open(const std::string& dir, LedgerBuild self, int shared_turn_fd,
                                             bool within_turn) {
    // A duplicate shares the open file, and so its flock.
    int lock_fd = shared_turn_fd >= 0 ? fcntl(shared_turn_fd, F_DUPFD_CLOEXEC, 0) : open_lock(dir);
    if (lock_fd < 0) throw failure("cannot share the lock of", dir);
    std::unique_ptr<HostLedger> ledger(new HostLedger(dir, std::move(self), lock_fd));
    // Created and locked within a turn: others read only within theirs, so they never see
    // the entry before its lock says that its memgov runs.
    // (A turn taken on a shared lock file while its process holds it would end that one.)
    auto turn = shared_turn_fd >= 0 && within_turn ? std::nullopt : ledger->take_turn(std::chrono::seconds(1));
    std::string pattern = dir + "/" + entry_prefix + "XXXXXX";
    ledger->entry_fd_ = mkostemp(pattern.data(), O_CLOEXEC);
    if (ledger->entry_fd_ < 0) throw failure("cannot create an entry in", dir);
    ledger->entry_path_ = pattern;
    if (flock(ledger->entry_fd_, LOCK_EX | LOCK_NB) != 0) throw failure("cannot lock", pattern);
    share_with_group(ledger->entry_fd_, 0640);
    ledger->publish({});
    return ledger;
}

HostLedger::HostLedger(std::string dir, LedgerBuild self, int lock_fd)
    : dir_(std::move(dir)), self_(std::move(self)), lock_fd_(lock_fd) {}

HostLedger::~HostLedger() {
    if (!entry_path_.empty()) unlink(entry_path_.c_str());
    if (entry_fd_ >= 0) close(entry_fd_);
    close(lock_fd_);
}

std::optional<LedgerTurn> HostLedger::take_turn(std::chrono::milliseconds patience) {
    auto give_up = Clock::now() + patience;
    while (flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) return std::nullopt;
        if (Clock::now() >= give_up) return std::nullopt;
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    return LedgerTurn([fd = lock_fd_] { flock(fd, LOCK_UN); });
}

std::vector<LedgerEntry> HostLedger::others() const {
    try {
        return read_entries(dir_, entry_path_, true);
    } catch (const std::runtime_error&) {
        return {};  // removed under us: nobody else to leave memory to
    }
}

std::vector<LedgerEntry> read_ledger(const std::string& dir) { return read_entries(dir, "", false); }

void HostLedger::publish(const LedgerState& state) {
    if (state.jobs) jobs_ = *state.jobs;
    LedgerEntry entry{self_, state};
    entry.state.jobs = jobs_;
    std::string text = serialize_ledger_entry(entry);
    // Within a turn, so readers see all of it or the previous text, never a mix.
    if (pwrite(entry_fd_, text.data(), text.size(), 0) == static_cast<ssize_t>(text.size()))
        (void)ftruncate(entry_fd_, static_cast<off_t>(text.size()));
}

}  // namespace memgov
