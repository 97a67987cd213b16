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
constexpr std::size_t max_entry_bytes = 64 * 1024;

std::runtime_error failure(const std::string& what, const std::string& path) {
    return std::runtime_error(fmt::format("{} {}: {}", what, path, std::strerror(errno)));
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

}  // namespace

std::string serialize_ledger_entry(const LedgerEntry& entry) {
    const LedgerState& state = entry.state;
    nlohmann::json json{{"pid", entry.build.pid},
                        {"uid", entry.build.uid},
                        {"command", entry.build.command},
                        {"cgroup", entry.build.cgroup},
                        {"imminent", state.share.imminent_bytes},
                        {"near_growth", state.share.near_growth_bytes},
                        {"kept", state.share.kept_bytes},
                        {"grant", state.grant_bytes},
                        {"running", state.share.running},
                        {"waiting", state.waiting},
                        {"stopped", state.stopped},
                        {"build", state.build_bytes}};
    if (const auto& oldest = state.share.oldest_waiting)
        json["oldest_waiting"] = {{"queued_at_ns", ns_of(oldest->queued_at)}, {"bytes", oldest->needed_bytes}};
    return json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
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
        state.share.imminent_bytes = count("imminent");
        state.share.near_growth_bytes = count("near_growth");
        state.share.kept_bytes = count("kept");
        state.share.running = count("running");
        state.grant_bytes = count("grant");
        state.waiting = count("waiting");
        state.stopped = count("stopped");
        state.build_bytes = count("build");
        if (json.contains("oldest_waiting")) {
            const auto& oldest = json.at("oldest_waiting");
            const auto& queued_at = oldest.at("queued_at_ns");
            if (!queued_at.is_number_integer()) return std::nullopt;
            state.share.oldest_waiting = OtherBuilds::Waiting{
                Clock::time_point(std::chrono::nanoseconds(queued_at.get<std::int64_t>())), count_in(oldest, "bytes")};
        }
        return entry;
    } catch (const std::exception&) {
        return std::nullopt;  // a field missing or of the wrong type
    }
}

OtherBuilds competing(const std::vector<LedgerEntry>& others, const std::optional<std::string>& bound_cgroup) {
    OtherBuilds competitors;
    for (const auto& other : others) {
        // Memory charged outside the cgroup that bounds us does not count against its limit.
        if (bound_cgroup && other.build.cgroup != *bound_cgroup && !other.build.cgroup.starts_with(*bound_cgroup + "/"))
            continue;
        const BuildShare& share = other.state.share;
        competitors.imminent_bytes += share.imminent_bytes;
        competitors.near_growth_bytes += share.near_growth_bytes;
        competitors.kept_bytes += share.kept_bytes + other.state.grant_bytes;
        competitors.running += share.running;
        if (share.oldest_waiting) competitors.oldest_waiting.push_back(*share.oldest_waiting);
    }
    return competitors;
}

HostLedger::Turn::~Turn() {
    if (fd_ >= 0) flock(fd_, LOCK_UN);
}

std::unique_ptr<HostLedger> HostLedger::open(const std::string& dir, LedgerBuild self) {
    ensure_dir(dir);
    std::string lock_path = dir + "/lock";
    int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (lock_fd < 0) throw failure("cannot open", lock_path);
    std::unique_ptr<HostLedger> ledger(new HostLedger(dir, std::move(self), lock_fd));
    // Created and locked within a turn: others read only within theirs, so they never see
    // the entry before its lock says that its memgov runs.
    auto turn = ledger->take_turn(std::chrono::seconds(1));
    std::string pattern = dir + "/" + entry_prefix + "XXXXXX";
    ledger->entry_fd_ = mkostemp(pattern.data(), O_CLOEXEC);
    if (ledger->entry_fd_ < 0) throw failure("cannot create an entry in", dir);
    ledger->entry_path_ = pattern;
    if (flock(ledger->entry_fd_, LOCK_EX | LOCK_NB) != 0) throw failure("cannot lock", pattern);
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

std::optional<HostLedger::Turn> HostLedger::take_turn(std::chrono::milliseconds patience) {
    auto give_up = Clock::now() + patience;
    while (flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) return std::nullopt;
        if (Clock::now() >= give_up) return std::nullopt;
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    return Turn(lock_fd_);
}

std::vector<LedgerEntry> HostLedger::others() const {
    std::vector<LedgerEntry> entries;
    DIR* listing = opendir(dir_.c_str());
    if (!listing) return entries;
    while (const dirent* item = readdir(listing)) {
        std::string name = item->d_name;
        std::string path = dir_ + "/" + name;
        if (!name.starts_with(entry_prefix) || path == entry_path_) continue;
        int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0) continue;
        if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
            unlink(path.c_str());  // its memgov is gone
            close(fd);
            continue;
        }
        std::string text(max_entry_bytes, '\0');
        ssize_t length = pread(fd, text.data(), text.size(), 0);
        close(fd);
        if (length <= 0 || static_cast<std::size_t>(length) == text.size()) continue;
        text.resize(static_cast<std::size_t>(length));
        if (auto entry = parse_ledger_entry(text)) entries.push_back(std::move(*entry));
    }
    closedir(listing);
    return entries;
}

void HostLedger::publish(const LedgerState& state) {
    std::string text = serialize_ledger_entry({self_, state});
    // Within a turn, so readers see all of it or the previous text, never a mix.
    if (pwrite(entry_fd_, text.data(), text.size(), 0) == static_cast<ssize_t>(text.size()))
        (void)ftruncate(entry_fd_, static_cast<off_t>(text.size()));
}

}  // namespace memgov
