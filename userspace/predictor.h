// Predicts a job's peak memory (docs/DESIGN.md §4): what the profile store learned for its
// key, else what jobs of the same tool needed (this build and the store), else what any job
// needed, else a fallback. Pure.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "growth_curve.h"
#include "profile_store.h"

namespace memgov {

enum class PredictionSource { profile, same_tool, any_tool, fallback };

struct Prediction {
    std::uint64_t bytes = 0;
    PredictionSource source = PredictionSource::fallback;
    std::optional<GrowthCurve> curve;  // only a job's own profile has one
};

const char* describe(PredictionSource source);

class Predictor {
public:
    explicit Predictor(std::uint64_t fallback_bytes) : fallback_bytes_(fallback_bytes) {}

    // What is known for `key` (from the store, or a job that just ended).
    void learn(const std::string& key, const Profile& profile);

    Prediction predict(const std::string& key, const std::string& tool) const;
    // No prediction is larger than this.
    std::uint64_t largest() const;

private:
    std::uint64_t fallback_bytes_;
    std::map<std::string, Prediction> by_key_;
    // Kept sorted, so a percentile costs one index (predict runs on every gated exec).
    std::map<std::string, std::vector<std::uint64_t>> by_tool_;
    std::vector<std::uint64_t> all_;  // every peak learned (a key relearned counts twice), sorted
};

// The value below which `fraction` of `values` lie (nearest rank); 0 for none.
std::uint64_t percentile(std::vector<std::uint64_t> values, double fraction);
// The same for values already sorted ascending.
std::uint64_t sorted_percentile(const std::vector<std::uint64_t>& sorted, double fraction);

}  // namespace memgov
