#include "predictor.h"

#include <algorithm>
#include <cmath>

namespace memgov {

const char* describe(PredictionSource source) {
    switch (source) {
        case PredictionSource::profile: return "profile";
        case PredictionSource::same_tool: return "cold: same tool and role";
        case PredictionSource::same_role: return "cold: same role";
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
    insert_sorted(by_tool_[{profile.tool, profile.role}], profile.peak_bytes);
    insert_sorted(by_role_[profile.role], profile.peak_bytes);
    largest_learned_ = std::max(largest_learned_, profile.peak_bytes);
    running_.erase(key);
}

void Predictor::observe_running(const std::string& key, const std::string& tool, JobKind role,
                                std::uint64_t peak_bytes) {
    auto [it, added] = running_.try_emplace(key, Running{tool, role, peak_bytes});
    if (!added) it->second.peak_bytes = std::max(it->second.peak_bytes, peak_bytes);
}

void Predictor::forget_running(const std::string& key) { running_.erase(key); }

std::uint64_t Predictor::largest() const {
    std::uint64_t largest = std::max(fallback_bytes_, largest_learned_);
    for (const auto& [key, job] : running_) largest = std::max(largest, job.peak_bytes);
    return largest;
}

template <typename Matches>
std::optional<std::uint64_t> Predictor::peers_quantile(const std::vector<std::uint64_t>* finished,
                                                       Matches matching) const {
    if (!finished || finished->empty()) return std::nullopt;
    std::uint64_t from_finished = sorted_percentile(*finished, cold_quantile_);
    // A running job's peak so far is only a lower bound of its peak: it says something only
    // when it is above what the finished ones say (a job just started is not a small peer).
    std::vector<std::uint64_t> larger;
    for (const auto& [key, job] : running_)
        if (matching(job) && job.peak_bytes > from_finished) larger.push_back(job.peak_bytes);
    if (larger.empty()) return from_finished;
    larger.insert(larger.end(), finished->begin(), finished->end());
    return percentile(std::move(larger), cold_quantile_);
}

Prediction Predictor::predict(const std::string& key, const std::string& tool, JobKind role) const {
    if (auto it = by_key_.find(key); it != by_key_.end()) return it->second;
    auto same_tool = by_tool_.find({tool, role});
    if (auto bytes = peers_quantile(same_tool == by_tool_.end() ? nullptr : &same_tool->second,
                                    [&](const Running& job) { return job.tool == tool && job.role == role; }))
        return {*bytes, PredictionSource::same_tool};
    auto same_role = by_role_.find(role);
    if (auto bytes = peers_quantile(same_role == by_role_.end() ? nullptr : &same_role->second,
                                    [&](const Running& job) { return job.role == role; }))
        return {*bytes, PredictionSource::same_role};
    // Nothing of its role has ended yet: the fallback, or a running one already beyond it.
    std::uint64_t bytes = fallback_bytes_;
    for (const auto& [running_key, job] : running_)
        if (job.role == role) bytes = std::max(bytes, job.peak_bytes);
    return {bytes, PredictionSource::fallback};
}

}  // namespace memgov
