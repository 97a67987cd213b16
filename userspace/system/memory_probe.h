// How much memory the build may still take: MemAvailable, the limits of memgov's memory
// cgroup and its ancestors (v1 or v2), a user --limit, minus headroom. Only this reads
// /proc/meminfo and cgroup files; their roots are injectable so tests use fixture trees.
#pragma once

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
        std::string cgroup = "/sys/fs/cgroup";
    };

    // Finds memgov's memory cgroup (from <proc>/self/cgroup) and its ancestors.
    explicit MemoryProbe(Paths paths);
    MemoryProbe() : MemoryProbe(Paths{}) {}

    MemoryReading read() const;
    // The cgroup directories consulted, innermost first (empty: no memory cgroup found).
    const std::vector<std::string>& cgroup_dirs() const { return dirs_; }
    bool cgroup_v2() const { return v2_; }

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

    Paths paths_;
    std::vector<std::string> dirs_;
    bool v2_ = false;
};

}  // namespace memgov
