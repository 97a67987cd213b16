// `memgov profiles list|show|forget|export|import`: look at and share learned peaks.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "profile_store.h"

namespace memgov {

enum class ProfileSort { peak, key, last_seen };

struct ProfilesOptions {
    std::optional<std::string> profiles_dir;
    ProfileSort sort = ProfileSort::peak;
    std::size_t limit = 0;                  // list: rows at most (0: all)
    std::string key;                        // show, forget
    std::optional<std::string> older_than;  // forget
    std::optional<std::string> file;        // export (default stdout), import
};

int profiles_list(const ProfilesOptions& options);
int profiles_show(const ProfilesOptions& options);
int profiles_forget(const ProfilesOptions& options);
int profiles_export(const ProfilesOptions& options);
int profiles_import(const ProfilesOptions& options);

// The store memgov run uses: --profiles-dir, else the invoking user's cache.
std::filesystem::path resolve_profiles_dir(const std::optional<std::string>& option);

}  // namespace memgov
