#include "profile_store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>

namespace memgov {
namespace {

using json = nlohmann::json;
constexpr const char* store_format = "memgov-profiles";
constexpr int store_version = 1;
constexpr std::size_t max_store_bytes = 64u << 20;

class Fd {
public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) close(fd_);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return fd_; }
    explicit operator bool() const { return fd_ >= 0; }

private:
    int fd_;
};

bool write_all(int fd, const std::string& text) {
    std::size_t done = 0;
    while (done < text.size()) {
        ssize_t wrote = write(fd, text.data() + done, text.size() - done);
        if (wrote < 0 && errno == EINTR) continue;
        if (wrote <= 0) return false;
        done += static_cast<std::size_t>(wrote);
    }
    return true;
}

// nullopt unless both fields are there and make a valid curve.
std::optional<GrowthCurve> parse_curve(const json* duration, const json* reach) {
    if (!duration || !reach || !duration->is_number_unsigned() || !reach->is_array() ||
        reach->size() != GrowthCurve::steps || duration->get<std::uint64_t>() > UINT32_MAX)
        return std::nullopt;
    GrowthCurve curve;
    curve.duration_ms = duration->get<std::uint32_t>();
    for (std::size_t k = 0; k < GrowthCurve::steps; ++k) {
        const json& step = (*reach)[k];
        if (!step.is_number_unsigned() || step.get<std::uint64_t>() > UINT32_MAX) return std::nullopt;
        curve.reach_ms[k] = step.get<std::uint32_t>();
    }
    if (!curve.valid()) return std::nullopt;
    return curve;
}

}  // namespace

std::optional<Profiles> parse_profiles(const std::string& text, std::string& error) {
    json document = json::parse(text, nullptr, false);
    if (document.is_discarded()) {
        error = "not valid JSON";
        return std::nullopt;
    }
    auto field = [](const json& object, const char* name) -> const json* {
        auto it = object.find(name);
        return it == object.end() ? nullptr : &*it;
    };
    const json* format = document.is_object() ? field(document, "format") : nullptr;
    if (!format || !format->is_string() || format->get_ref<const std::string&>() != store_format) {
        error = "not a memgov profile store";
        return std::nullopt;
    }
    const json* version = field(document, "version");
    if (!version || !version->is_number_integer() || version->get<std::int64_t>() != store_version) {
        error = fmt::format("version {} is not {}", version ? version->dump() : "missing", store_version);
        return std::nullopt;
    }
    const json* entries = field(document, "profiles");
    if (!entries || !entries->is_object()) {
        error = "no profiles object";
        return std::nullopt;
    }
    Profiles profiles;
    for (const auto& [key, entry] : entries->items()) {
        const json* peak = entry.is_object() ? field(entry, "peak_bytes") : nullptr;
        const json* samples = peak ? field(entry, "samples") : nullptr;
        const json* last_seen = peak ? field(entry, "last_seen") : nullptr;
        const json* tool = peak ? field(entry, "tool") : nullptr;
        const json* role = peak ? field(entry, "role") : nullptr;
        const json* duration = peak ? field(entry, "duration_ms") : nullptr;
        const json* reach = peak ? field(entry, "reach_ms") : nullptr;
        if (!peak || !peak->is_number_unsigned() || (samples && !samples->is_number_unsigned()) ||
            (last_seen && !last_seen->is_number_integer()) || (tool && !tool->is_string()) ||
            (role && !role->is_string())) {
            error = fmt::format("bad entry for {}", key);
            return std::nullopt;
        }
        Profile profile;
        profile.peak_bytes = peak->get<std::uint64_t>();
        profile.samples = samples ? samples->get<std::uint64_t>() : 1;
        profile.last_seen = last_seen ? last_seen->get<std::int64_t>() : 0;
        profile.tool = tool ? tool->get<std::string>() : std::string();
        // A role this version does not know (a later one's) only loses its peers.
        if (role) profile.role = kind_from_name(role->get<std::string>()).value_or(JobKind::other);
        // A curve that is not one (half of it, unsorted, another step count) is dropped: the
        // peak still counts, and the next complete run learns the curve again.
        profile.curve = parse_curve(duration, reach);
        profiles[key] = std::move(profile);
    }
    return profiles;
}

std::string serialize_profiles(const Profiles& profiles) {
    json entries = json::object();
    for (const auto& [key, profile] : profiles) {
        json& entry = entries[key] = {{"peak_bytes", profile.peak_bytes},
                                      {"samples", profile.samples},
                                      {"last_seen", profile.last_seen},
                                      {"tool", profile.tool},
                                      {"role", kind_name(profile.role)}};
        if (profile.curve) {
            entry["duration_ms"] = profile.curve->duration_ms;
            entry["reach_ms"] = profile.curve->reach_ms;
        }
    }
    json document{{"format", store_format}, {"version", store_version}, {"profiles", std::move(entries)}};
    return document.dump(1, ' ', false, json::error_handler_t::replace) + "\n";
}

std::filesystem::path default_profiles_dir(const std::optional<std::string>& invoker_home) {
    if (invoker_home) return std::filesystem::path(*invoker_home) / ".cache" / "memgov";
    if (const char* cache = std::getenv("XDG_CACHE_HOME"); cache && *cache == '/')
        return std::filesystem::path(cache) / "memgov";
    const char* home = std::getenv("HOME");
    return std::filesystem::path(home && *home ? home : "/tmp") / ".cache" / "memgov";
}

ProfileStore::ProfileStore(std::filesystem::path dir, uid_t owner_uid)
    : dir_(std::move(dir)), file_(dir_ / "profiles.json"), owner_uid_(owner_uid) {}

bool ProfileStore::dir_trusted() {
    struct stat info {};
    if (lstat(dir_.c_str(), &info) != 0) return true;  // not there yet: we create it, as the owner
    if (!S_ISDIR(info.st_mode)) {
        warnings_.push_back(fmt::format("profile directory {} is not a directory: not using it", dir_.string()));
        return false;
    }
    if (info.st_uid != owner_uid_ || (info.st_mode & S_IWOTH)) {
        warnings_.push_back(
            fmt::format("profile directory {} is owned by uid {}{}, not by uid {}: not using it "
                        "(use --profiles-dir)",
                        dir_.string(), info.st_uid, (info.st_mode & S_IWOTH) ? " and world-writable" : "", owner_uid_));
        return false;
    }
    return true;
}

std::vector<std::string> ProfileStore::take_warnings() {
    std::vector<std::string> taken;
    taken.swap(warnings_);
    return taken;
}

void ProfileStore::set_aside(const std::string& why) {
    auto aside = file_;
    aside += fmt::format(".bad-{}", std::time(nullptr));
    if (std::rename(file_.c_str(), aside.c_str()) == 0)
        warnings_.push_back(fmt::format("profile store {} {}: moved aside to {}, starting afresh", file_.string(), why,
                                        aside.string()));
    else
        warnings_.push_back(
            fmt::format("profile store {} {} and cannot be moved aside ({}): "
                        "not using it",
                        file_.string(), why, std::strerror(errno)));
}

// nullopt: unreadable and left in place (the caller must not overwrite it).
std::optional<Profiles> ProfileStore::read_file(int lock_fd) {
    (void)lock_fd;  // held by the caller: the file cannot change while we read
    Fd fd(open(file_.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
    if (!fd) {
        if (errno == ENOENT) return Profiles{};
        if (errno == ELOOP) {
            warnings_.push_back(fmt::format("profile store {} is a symbolic link: not following it", file_.string()));
            return std::nullopt;
        }
        warnings_.push_back(fmt::format("cannot read profile store {}: {}", file_.string(), std::strerror(errno)));
        return std::nullopt;
    }
    struct stat info {};
    if (fstat(fd.get(), &info) != 0 || !S_ISREG(info.st_mode)) {
        warnings_.push_back(fmt::format("profile store {} is not a regular file: not using it", file_.string()));
        return std::nullopt;
    }
    if (static_cast<std::size_t>(info.st_size) > max_store_bytes) {
        set_aside(fmt::format("is {} MiB, more than a store can be", info.st_size >> 20));
        return Profiles{};
    }
    std::string text(static_cast<std::size_t>(info.st_size), '\0');
    std::size_t got = 0;
    while (got < text.size()) {
        ssize_t n = read(fd.get(), text.data() + got, text.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += static_cast<std::size_t>(n);
    }
    text.resize(got);
    std::string error;
    auto parsed = parse_profiles(text, error);
    if (!parsed) {
        set_aside("is unreadable (" + error + ")");
        return Profiles{};
    }
    return parsed;
}

bool ProfileStore::ensure_dir() {
    std::error_code error;
    if (std::filesystem::is_directory(dir_, error)) return true;
    std::filesystem::path partial;
    for (const auto& part : dir_) {
        partial /= part;
        if (mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST) {
            warnings_.push_back(fmt::format("cannot create {}: {}", partial.string(), std::strerror(errno)));
            return false;
        }
    }
    return true;
}

void ProfileStore::load() {
    if (!dir_trusted()) return;
    std::error_code error;
    if (!std::filesystem::exists(file_, error) && !std::filesystem::is_symlink(file_, error)) return;
    Fd lock(open((dir_ / "profiles.lock").c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (lock) flock(lock.get(), LOCK_SH);
    if (auto loaded = read_file(lock.get())) profiles_ = std::move(*loaded);
}

void ProfileStore::record(const std::string& key, const Observation& seen, std::int64_t now) {
    Profile& profile = profiles_[key];
    profile.peak_bytes = seen.complete ? seen.peak_bytes : std::max(profile.peak_bytes, seen.peak_bytes);
    // A complete run without a curve (its build was suspended) keeps the one learned before.
    if (seen.complete && seen.curve) profile.curve = seen.curve;
    profile.samples += 1;
    profile.last_seen = now;
    profile.tool = seen.tool;
    profile.role = seen.role;
    dirty_.insert(key);
}

std::size_t ProfileStore::merge_in(const Profiles& incoming) {
    std::size_t taken = 0;
    for (const auto& [key, profile] : incoming) {
        auto ours = profiles_.find(key);
        if (ours != profiles_.end() && ours->second.last_seen >= profile.last_seen) continue;
        profiles_[key] = profile;
        dirty_.insert(key);
        forgotten_.erase(key);
        ++taken;
    }
    return taken;
}

std::size_t ProfileStore::forget(const std::string& key) {
    if (!profiles_.erase(key)) return 0;
    dirty_.erase(key);
    forgotten_.insert(key);
    return 1;
}

std::size_t ProfileStore::forget_older_than(std::int64_t cutoff) {
    std::vector<std::string> old;
    for (const auto& [key, profile] : profiles_)
        if (profile.last_seen < cutoff) old.push_back(key);
    for (const auto& key : old) forget(key);
    return old.size();
}

bool ProfileStore::save() {
    if (!dirty()) return true;
    if (!dir_trusted() || !ensure_dir()) return false;
    auto lock_path = dir_ / "profiles.lock";
    Fd lock(open(lock_path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!lock) {
        warnings_.push_back(fmt::format("cannot lock {}: {}", lock_path.string(), std::strerror(errno)));
        return false;
    }
    flock(lock.get(), LOCK_EX);

    auto on_disk = read_file(lock.get());
    if (!on_disk) return false;  // something we must not overwrite is there
    Profiles merged = std::move(*on_disk);
    for (const auto& key : dirty_) {
        const Profile& ours = profiles_.at(key);
        auto theirs = merged.find(key);
        if (theirs == merged.end() || theirs->second.last_seen <= ours.last_seen) merged[key] = ours;
    }
    for (const auto& key : forgotten_) merged.erase(key);

    auto temporary = dir_ / fmt::format(".profiles.json.{}", getpid());
    unlink(temporary.c_str());  // a leftover of a crashed run with our pid: ours to replace
    Fd out(open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    bool ok = static_cast<bool>(out) && write_all(out.get(), serialize_profiles(merged)) && fsync(out.get()) == 0 &&
              std::rename(temporary.c_str(), file_.c_str()) == 0;
    if (!ok) {
        warnings_.push_back(fmt::format("cannot write profile store {}: {}", file_.string(), std::strerror(errno)));
        unlink(temporary.c_str());
        return false;
    }
    Fd dir(open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir) fsync(dir.get());
    profiles_ = std::move(merged);
    dirty_.clear();
    forgotten_.clear();
    return true;
}

}  // namespace memgov
