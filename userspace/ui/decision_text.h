// The log's words for the governor's decisions. Pure: tested like the bar's text.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "governor.h"

namespace memgov {

// What a decision's line names besides the decision itself.
struct DecisionFacts {
    std::string key;            // the job's key (or its pid when unknown)
    double waited_seconds = 0;  // admit: how long it was held
    std::uint64_t available_bytes = 0;
    std::uint64_t emergency_floor_bytes = 0;
    std::uint64_t kept_free_bytes = 0;  // admission keeps it free besides a job's peak
    std::chrono::milliseconds stall_timeout{0};
};

// One log line, e.g. "PID=42 cc1plus x.c: needs 512MB, only 300MB free (200MB imminent) - WAITING".
std::string decision_text(const Decision& decision, const DecisionFacts& facts);

}  // namespace memgov
