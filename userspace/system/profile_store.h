// Learned peak memory per job key, kept across builds (docs/DESIGN.md §8). One JSON file
// per user; written atomically under flock and merged with what other memgov runs wrote.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "profile.h"

namespace memgov {

using Profiles = std::map<std::string, Profile>;

// Parses a store file; nullopt (with `error` set) for anything not exactly our format.
std::optional<Profiles> parse_profiles(const std::string& text, std::string& error);
std::string serialize_profiles(const Profiles& profiles);

class ProfileStore {
public:
    // Files are created with the caller's (fs) identity: see FilesystemIdentity. A store
    // directory that exists but is not owned by `owner_uid` is refused: someone else could
    // swap its files.
    explicit ProfileStore(std::filesystem::path dir, uid_t owner_uid = geteuid());

    // Reads the store. A bad file is renamed aside (never overwritten) and reported in
    // warnings(); memgov then starts from what it can read.
    void load();
    // Records a finished job: a complete run replaces what was known; an incomplete one can
    // only raise the peak.
    void record(const std::string& key, const Observation& seen, std::int64_t now);
    // Takes every profile of `incoming` that is newer than ours (import of a shared file).
    std::size_t merge_in(const Profiles& incoming);
    // Forgets a key, or every key last seen before `cutoff`; returns how many.
    std::size_t forget(const std::string& key);
    std::size_t forget_older_than(std::int64_t cutoff);

    // Merges with the file on disk under an exclusive lock and replaces it atomically.
    // Returns false (with a warning) when it could not; what was recorded stays in memory.
    bool save();

    bool dirty() const { return !dirty_.empty() || !forgotten_.empty(); }
    const Profiles& profiles() const { return profiles_; }
    const std::filesystem::path& file() const { return file_; }
    // One-line messages for the user, taken (and cleared) by the caller.
    std::vector<std::string> take_warnings();

private:
    std::optional<Profiles> read_file(int lock_fd);
    void set_aside(const std::string& why);
    bool ensure_dir();

    bool dir_trusted();

    std::filesystem::path dir_;
    std::filesystem::path file_;
    uid_t owner_uid_;
    Profiles profiles_;
    std::set<std::string> dirty_;
    std::set<std::string> forgotten_;
    std::vector<std::string> warnings_;
};

// Where profiles live: MEMGOV_PROFILES_DIR's job is done by the caller; this is the default,
// the invoking user's cache ($XDG_CACHE_HOME/memgov or ~/.cache/memgov).
std::filesystem::path default_profiles_dir(const std::optional<std::string>& invoker_home);

}  // namespace memgov
