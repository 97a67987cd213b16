#include "predictor.h"

#include <algorithm>
#include <cmath>

namespace memgov {
namespace {

// Cold jobs are predicted at the 75th percentile of their peers: high enough that most
// fit their reservation, without reserving the worst case for every unknown file.
constexpr double cold_percentile = 0.75;

}  // namespace

const char* describe(PredictionSource source) {
    switch (source) {
        case PredictionSource::profile: return "profile";
        case PredictionSource::same_tool: return "cold: same tool";
        case PredictionSource::any_tool: return "cold: all jobs";
        case PredictionSource::fallback: return "cold: nothing known yet";
    }
    return "?";
}

std::uint64_t sorted_percentile(const std::vector<std::uint64_t>& sorted, double fraction) {
    if (sorted.empty()) return 0;
    auto rank = static_cast<std::size_t>(std::ceil(fraction * static_cast<double>(sorted.size())));
    return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

std::uint64_t percentile(std::vector<std::uint64_t> values, double fraction) {
    std::sort(values.begin(), values.end());
    return sorted_percentile(values, fraction);
}

namespace {

void insert_sorted(std::vector<std::uint64_t>& sorted, std::uint64_t value) {
    sorted.insert(std::upper_bound(sorted.begin(), sorted.end(), value), value);
}

}  // namespace

void Predictor::learn(const std::string& key, const Profile& profile) {
    by_key_[key] = Prediction{profile.peak_bytes, PredictionSource::profile, profile.curve};
    insert_sorted(by_tool_[profile.tool], profile.peak_bytes);
    insert_sorted(all_, profile.peak_bytes);
}

std::uint64_t Predictor::largest() const {
    return std::max(fallback_bytes_, all_.empty() ? 0 : all_.back());
}

Prediction Predictor::predict(const std::string& key, const std::string& tool) const {
    if (auto it = by_key_.find(key); it != by_key_.end()) return it->second;
    if (auto it = by_tool_.find(tool); it != by_tool_.end() && !it->second.empty())
        return {sorted_percentile(it->second, cold_percentile), PredictionSource::same_tool};
    if (!all_.empty()) return {sorted_percentile(all_, cold_percentile), PredictionSource::any_tool};
    return {fallback_bytes_, PredictionSource::fallback};
}

}  // namespace memgov
