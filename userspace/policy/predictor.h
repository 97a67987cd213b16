// Predicts a job's peak memory (docs/DESIGN.md §7.2): what the profile store learned for its
// key; else, from its peers (jobs of the same tool and role, else of the same role, in the
// store, in this build so far, and running now), an upper quantile; else a fallback. Pure.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "growth_curve.h"
#include "job_key.h"
#include "profile.h"

namespace memgov {

enum class PredictionSource { profile, same_tool, same_role, fallback };

struct Prediction {
    std::uint64_t bytes = 0;
    PredictionSource source = PredictionSource::fallback;
    std::optional<GrowthCurve> curve;  // only a job's own profile has one
    // The largest of its peers (ended, or running at what they are expected to reach), at
    // least `bytes`: what a guessed job may turn out to need.
    std::uint64_t ceiling_bytes = 0;
};

const char* describe(PredictionSource source);

class Predictor {
public:
    // An unknown job is predicted at this quantile of its peers' peaks (nearest rank).
    static constexpr double default_cold_quantile = 0.75;
    // See peers_quantile.
    static constexpr std::uint64_t prior_factor = 4;

    explicit Predictor(std::uint64_t fallback_bytes, double cold_quantile = default_cold_quantile)
        : fallback_bytes_(fallback_bytes), cold_quantile_(cold_quantile) {}

    // What is known for `key` (from the store, or a job that just ended); ends what
    // observe_running said of it.
    void learn(const std::string& key, const Profile& profile);
    // A running job and what it is expected to reach: its own profile's peak (`measured`), or
    // what it has shown (its peak so far, or its re-prediction once it outgrew, or was
    // projected to outgrow, its guess; never the guess itself, which came from these same
    // peers). Until it ends it counts among its peers at that size: heavy jobs end last, and
    // their peers must not be predicted only from the light ones that happened to end first.
    // A job not measured counts at no less than what the ended ones and the prior say, though,
    // whatever its age: young, it has shown only its first MB, and several young jobs would
    // pull every guess down; what it really needs is known when it ends. The figure only ever
    // rises.
    void observe_running(const std::string& key, const std::string& tool, JobKind role, std::uint64_t expected_bytes,
                         bool measured);
    // A running job ended without a profile to learn (it vanished): it no longer counts.
    void forget_running(const std::string& key);

    Prediction predict(const std::string& key, const std::string& tool, JobKind role) const;
    // No prediction is larger than this.
    std::uint64_t largest() const;

private:
    struct Running {
        std::string tool;
        JobKind role;
        std::uint64_t expected_bytes;
        bool measured;
    };
    // The cold quantile of `finished` (sorted) together with the running jobs `matching`, and
    // the largest of them; nullopt when none has finished.
    template <typename Matches>
    std::optional<std::pair<std::uint64_t, std::uint64_t>> peers_quantile(const std::vector<std::uint64_t>* finished,
                                                                          Matches matching) const;

    std::uint64_t fallback_bytes_;
    double cold_quantile_;
    std::map<std::string, Prediction> by_key_;
    // Kept sorted, so a quantile costs little (predict runs on every gated exec).
    std::map<std::pair<std::string, JobKind>, std::vector<std::uint64_t>> by_tool_;
    std::map<JobKind, std::vector<std::uint64_t>> by_role_;
    std::map<std::string, Running> running_;
    std::uint64_t largest_learned_ = 0;
};

// The value below which `fraction` of `values` lie (nearest rank); 0 for none.
std::uint64_t percentile(std::vector<std::uint64_t> values, double fraction);
// The same for values already sorted ascending.
std::uint64_t sorted_percentile(const std::vector<std::uint64_t>& sorted, double fraction);

}  // namespace memgov
