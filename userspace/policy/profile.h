// What is learned about one job key, and what one run of a job showed. Plain data: the
// predictor (pure) reads it, the profile store keeps it on disk.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "growth_curve.h"
#include "job_key.h"

namespace memgov {

struct Profile {
    std::uint64_t peak_bytes = 0;
    std::uint64_t samples = 0;
    std::int64_t last_seen = 0;        // unix seconds
    std::string tool;                  // program that ran the job, for cold estimates of its peers
    JobKind role = JobKind::other;     // likewise (stores written before roles: other)
    std::optional<GrowthCurve> curve;  // of the last complete run
};

// What one run of a job showed.
struct Observation {
    std::string tool;
    JobKind role = JobKind::other;
    std::uint64_t peak_bytes = 0;
    // false: the job failed or was killed, so its peak is only a lower bound of what the
    // file needs and its curve says nothing.
    bool complete = true;
    std::optional<GrowthCurve> curve;
};

}  // namespace memgov
