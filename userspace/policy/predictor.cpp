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
    by_key_[key] = Prediction{profile.peak_bytes, PredictionSource::profile, profile.curve, profile.peak_bytes};
    insert_sorted(by_tool_[{profile.tool, profile.role}], profile.peak_bytes);
    insert_sorted(by_role_[profile.role], profile.peak_bytes);
    largest_learned_ = std::max(largest_learned_, profile.peak_bytes);
    running_.erase(key);
}

void Predictor::observe_running(const std::string& key, const std::string& tool, JobKind role,
                                std::uint64_t expected_bytes, bool measured) {
    auto [it, added] = running_.try_emplace(key, Running{tool, role, expected_bytes, measured});
    if (!added) it->second.expected_bytes = std::max(it->second.expected_bytes, expected_bytes);
}

void Predictor::forget_running(const std::string& key) { running_.erase(key); }

std::uint64_t Predictor::largest() const {
    std::uint64_t largest = std::max(fallback_bytes_, largest_learned_);
    for (const auto& [key, job] : running_) largest = std::max(largest, job.expected_bytes);
    return largest;
}

template <typename Matches>
std::optional<std::pair<std::uint64_t, std::uint64_t>> Predictor::peers_quantile(
    const std::vector<std::uint64_t>* finished, Matches matching) const {
    if (!finished || finished->empty()) return std::nullopt;
    // The first jobs to end are the short ones, often the small ones: the jobs still running
    // are peers too, each at what it is expected to reach (see observe_running), so the
    // light ones that ended first do not set what every unknown job reserves.
    // And the fallback counts as one more peer, so that one or two jobs that ended do not
    // yet say what the others need; as no more than prior_factor times the largest that
    // ended, so that a group of small jobs (links, say) soon gets small predictions.
    // A running job not measured before counts at no less than the quantile of the ended
    // jobs and the prior (see observe_running).
    std::vector<std::uint64_t> peers(finished->begin(), finished->end());
    insert_sorted(peers, std::min(fallback_bytes_, finished->back() * prior_factor));
    std::uint64_t ended_say = sorted_percentile(peers, cold_quantile_);
    for (const auto& [key, job] : running_)
        if (matching(job)) peers.push_back(job.measured ? job.expected_bytes : std::max(job.expected_bytes, ended_say));
    std::sort(peers.begin(), peers.end());
    return std::pair{sorted_percentile(peers, cold_quantile_), peers.back()};
}

Prediction Predictor::predict(const std::string& key, const std::string& tool, JobKind role) const {
    if (auto it = by_key_.find(key); it != by_key_.end()) return it->second;
    auto same_tool = by_tool_.find({tool, role});
    if (auto peers = peers_quantile(same_tool == by_tool_.end() ? nullptr : &same_tool->second,
                                    [&](const Running& job) { return job.tool == tool && job.role == role; }))
        return {peers->first, PredictionSource::same_tool, std::nullopt, peers->second};
    auto same_role = by_role_.find(role);
    if (auto peers = peers_quantile(same_role == by_role_.end() ? nullptr : &same_role->second,
                                    [&](const Running& job) { return job.role == role; }))
        return {peers->first, PredictionSource::same_role, std::nullopt, peers->second};
    // Nothing of its role has ended yet: the fallback, or a running one already beyond it.
    std::uint64_t bytes = fallback_bytes_;
    for (const auto& [running_key, job] : running_)
        if (job.role == role) bytes = std::max(bytes, job.expected_bytes);
    return {bytes, PredictionSource::fallback, std::nullopt, bytes};
}

}  // namespace memgov
