// How much memory the build may still take: MemAvailable, the limits of memgov's memory
// cgroup and its ancestors (v1 or v2), a user --limit, minus headroom. Only this reads
// /proc/meminfo and cgroup files; their roots are injectable so tests use fixture trees.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace memgov {

struct CgroupLevel {
    std::string dir;
    std::uint64_t limit_bytes = 0;
    std::uint64_t used_bytes = 0;  // usage minus reclaimable file cache
};

struct MemoryReading {
    std::uint64_t total_bytes = 0;      // MemTotal
    std::uint64_t available_bytes = 0;  // MemAvailable
    // The tightest cgroup level (limit - non-reclaimable usage smallest), if any has a limit.
    std::optional<CgroupLevel> cgroup;
};

struct MemoryBudget {
    std::optional<std::uint64_t> limit_bytes;  // --limit: the build's own usage may not exceed it
    std::uint64_t headroom_bytes = 0;          // --headroom: kept free for everything else
};

struct Availability {
    std::uint64_t bytes = 0;                  // what the governor may hand out now
    std::uint64_t ceiling = 0;                // the limit that applies (for the bar and the summary)
    std::string bound_by;                     // "MemAvailable", "cgroup /path", "--limit"
    std::uint64_t in_use = 0;                 // of the ceiling, used by anything (the build included)
    std::optional<std::string> bound_cgroup;  // the cgroup directory, when bound by one
};

// Pure: combines a reading, the user's budget and the build's current RSS.
Availability available_for_build(const MemoryReading& reading, const MemoryBudget& budget,
                                 std::uint64_t build_rss_bytes);

class MemoryProbe {
public:
    struct Paths {
        std::string proc = "/proc";
        std::string cgroup = "/sys/fs/cgroup";  // mount points under /sys/fs/cgroup are found here
        pid_t self = getpid();                  // listed in its cgroup's cgroup.procs
    };

    // Finds memgov's memory cgroup (from <proc>/self/cgroup) and its ancestors, in the
    // hierarchy where <proc>/self/mountinfo says it is mounted: a container's cgroupfs may
    // show its own cgroup as the root (docker's v1 bind mounts, a fresh mount in a cgroup
    // namespace), or the host's hierarchy from inside a cgroup namespace (then the cgroup is
    // found by its cgroup.procs).
    explicit MemoryProbe(Paths paths);
    MemoryProbe() : MemoryProbe(Paths{}) {}

    MemoryReading read() const;
    // The cgroup directories consulted, innermost first (empty: no memory cgroup found).
    const std::vector<std::string>& cgroup_dirs() const { return dirs_; }
    bool cgroup_v2() const { return v2_; }
    // Why memgov's memory cgroup could not be found though it has one (its limit is then not
    // seen); nullopt when found, or when there is none.
    const std::optional<std::string>& problem() const { return problem_; }

private:
    std::optional<CgroupLevel> read_level(const std::string& dir) const;
    std::optional<std::uint64_t> reclaimable(const std::string& dir) const;

    // memory.stat is costly to produce (the kernel flushes per-CPU statistics for it) and
    // its file cache figure moves slowly: it is read at most every stat_interval per level,
    // while limit and usage are read every time.
    static constexpr std::chrono::milliseconds stat_interval{500};
    struct CachedStat {
        std::chrono::steady_clock::time_point read_at;
        std::optional<std::uint64_t> reclaimable;
    };
    mutable std::map<std::string, CachedStat> stat_cache_;

    // The directory of the cgroup at `path` (as /proc/self/cgroup names it) in a hierarchy
    // mounted at `base` whose root shows the cgroup `root`.
    std::optional<std::string> cgroup_dir(const std::string& base, const std::string& root,
                                          const std::string& path) const;
    // Maps a mount point to the tree the probe reads (tests use fixture trees).
    std::string local(const std::string& mount_point) const;

    Paths paths_;
    std::vector<std::string> dirs_;
    bool v2_ = false;
    std::optional<std::string> problem_;
};

}  // namespace memgov
