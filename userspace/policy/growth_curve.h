// How a job's memory grows over its run (docs/DESIGN.md §7.4): learned from one complete
// run, it lets the governor start a job whose growth will meet memory that running jobs are
// about to free, instead of reserving every job's whole peak from its first instant. Pure.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace memgov {

struct GrowthCurve {
    static constexpr std::size_t steps = 16;
    // reach_ms[k]: the earliest age (ms since the job started) at which its peak may have
    // reached (k + 1) / steps of the final peak. Never later than the truth: see GrowthRecorder.
    std::array<std::uint32_t, steps> reach_ms{};
    std::uint32_t duration_ms = 0;  // start to exit

    // An upper bound of the job's use at `age_ms`, as a share of its peak (the next step up:
    // until reach_ms[k] the job is below (k + 1) / steps).
    double share_at(double age_ms) const;
    // Sorted, steps of at most `duration_ms` apart and no later than it.
    bool valid() const;
    bool operator==(const GrowthCurve&) const = default;
};

// Follows one job's peak through the controller's readings. A reading only shows that the
// peak rose some time after the reading before it, so a rise is dated to that earlier
// reading: the curve learned says memory comes early, never late.
class GrowthRecorder {
public:
    void observe(std::uint32_t age_ms, std::uint64_t peak_bytes);
    // The curve of a job that ended at `duration_ms` with peak `final_peak_bytes`.
    GrowthCurve finish(std::uint32_t duration_ms, std::uint64_t final_peak_bytes) const;

private:
    struct Rise {
        std::uint32_t after_ms;  // the last reading that still showed the lower peak
        std::uint64_t peak_bytes;
    };
    std::vector<Rise> rises_;
    std::uint32_t last_age_ms_ = 0;
    std::uint64_t last_peak_bytes_ = 0;
};

}  // namespace memgov
