#include "growth_curve.h"

#include <algorithm>

namespace memgov {

double GrowthCurve::share_at(double age_ms) const {
    auto reached = static_cast<std::size_t>(
        std::upper_bound(reach_ms.begin(), reach_ms.end(), age_ms,
                         [](double age, std::uint32_t reach) { return age < static_cast<double>(reach); }) -
        reach_ms.begin());
    return static_cast<double>(std::min(reached + 1, steps)) / steps;
}

bool GrowthCurve::valid() const {
    return duration_ms > 0 && std::is_sorted(reach_ms.begin(), reach_ms.end()) && reach_ms.back() <= duration_ms;
}

void GrowthRecorder::observe(std::uint32_t age_ms, std::uint64_t peak_bytes) {
    if (peak_bytes > last_peak_bytes_) {
        // Several rises between two readings merge into one; the last entry's `after_ms` is
        // already the earliest the newer part can have happened.
        if (!rises_.empty() && rises_.back().after_ms == last_age_ms_)
            rises_.back().peak_bytes = peak_bytes;
        else
            rises_.push_back({last_age_ms_, peak_bytes});
        last_peak_bytes_ = peak_bytes;
    }
    last_age_ms_ = std::max(last_age_ms_, age_ms);
}

GrowthCurve GrowthRecorder::finish(std::uint32_t duration_ms, std::uint64_t final_peak_bytes) const {
    GrowthCurve curve;
    curve.duration_ms = std::max<std::uint32_t>(duration_ms, 1);
    for (std::size_t k = 0; k < GrowthCurve::steps; ++k) {
        // Rounded down: a share a reading showed just below (k + 1) / steps counts as reached.
        std::uint64_t threshold = final_peak_bytes / GrowthCurve::steps * (k + 1);
        auto rise =
            std::find_if(rises_.begin(), rises_.end(), [&](const Rise& r) { return r.peak_bytes >= threshold; });
        // Reached only after the last reading (or never seen): some time after that reading.
        std::uint32_t after = rise == rises_.end() ? last_age_ms_ : rise->after_ms;
        curve.reach_ms[k] = std::min(after, curve.duration_ms);
    }
    return curve;
}

}  // namespace memgov
