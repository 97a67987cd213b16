// `memgov report FILE --limit … --jobs … --cpus …`: what another limit, -j or number of CPUs
// would have made of a recorded build (docs/DESIGN.md §10.3), by replaying its jobs through
// the governor (policy/replay.h). From a trace only: its memory counters give each job's growth.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "build_analysis.h"
#include "replay.h"

namespace memgov {

// What the recording was, as the replay sees it.
struct RecordedBuild {
    std::vector<ReplayJob> jobs;
    double wall_s = 0;
    ReplaySettings settings;  // its limit, everything else's use, its -j and CPUs
};

// nullopt, with `error` set, when the timeline cannot be replayed (no memory readings: not a
// trace). `cpus`: the CPUs to assume when the trace does not say (older traces).
std::optional<RecordedBuild> recorded_build(const BuildTimeline& timeline, unsigned cpus, std::string& error);

struct WhatIf {
    std::optional<std::uint64_t> limit_bytes;  // each nullopt: as recorded
    std::optional<std::size_t> jobs;
    std::optional<double> cpus;
};

struct WhatIfAnswer {
    WhatIf asked;
    ReplaySettings settings;
    ReplayOutcome governed;
    ReplayOutcome plain;
    // The governed replay's wall, scaled by the replay's own error on the recording.
    double estimated_wall_s = 0;
    double estimated_plain_wall_s = 0;
};

struct WhatIfAnswers {
    double recorded_wall_s = 0;
    ReplaySettings recorded;
    ReplayOutcome replayed;  // the recording's own settings, to show the model's error
    std::vector<WhatIfAnswer> answers;
};

WhatIfAnswers answer(const RecordedBuild& build, const std::vector<WhatIf>& questions);
std::string what_if_text(const WhatIfAnswers& answers);
nlohmann::json what_if_json(const WhatIfAnswers& answers);

}  // namespace memgov
