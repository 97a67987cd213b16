#include "decision_text.h"

#include <fmt/format.h>

#include <algorithm>

#include "bytes.h"

namespace memgov {
namespace {

std::uint64_t at_least_zero(std::int64_t bytes) { return static_cast<std::uint64_t>(std::max<std::int64_t>(bytes, 0)); }

std::string free_text(const Decision& decision, std::uint64_t kept_free_bytes = 0) {
    bool enough = decision.needed_bytes + kept_free_bytes <= at_least_zero(decision.effective_free_bytes);
    std::string free = decision.effective_free_bytes < 0
                           ? "-" + format_mb(static_cast<std::uint64_t>(-decision.effective_free_bytes))
                           : format_mb(static_cast<std::uint64_t>(decision.effective_free_bytes));
    return fmt::format("{} {} free ({} imminent)", enough ? "have" : "only", free, format_mb(decision.imminent_bytes));
}

std::string admission_verdict(const Decision& decision, const DecisionFacts& facts) {
    std::string verdict =
        decision.stalled  ? fmt::format("PROCEEDING (no running job changed for {}s: they may be waiting for it)",
                                        std::chrono::duration_cast<std::chrono::seconds>(facts.stall_timeout).count())
        : decision.forced ? fmt::format("PROCEEDING (nothing else running, waited {:.1f}s)", facts.waited_seconds)
        : decision.waited ? fmt::format("PROCEEDING (waited {:.1f}s)", facts.waited_seconds)
                          : std::string("OK");
    if (decision.backfill) verdict += " (passes a larger waiting job)";
    if (decision.on_curve) verdict += " (its growth meets memory running jobs free as they end)";
    return verdict;
}

}  // namespace

std::string decision_text(const Decision& decision, const DecisionFacts& facts) {
    switch (decision.kind) {
        case DecisionKind::admit:
            return fmt::format("PID={} {}: needs {}, {} - {}", decision.job, facts.key,
                               format_mb(decision.needed_bytes), free_text(decision),
                               admission_verdict(decision, facts));
        case DecisionKind::keep_waiting: {
            std::uint64_t kept = facts.kept_free_bytes + decision.surprise_bytes;
            std::string surprise = decision.surprise_bytes
                                       ? fmt::format(" and {} in case a guess is as large as its largest peer",
                                                     format_mb(decision.surprise_bytes))
                                       : "";
            // A job whose peak fits now waits when running jobs' growth ahead would take it.
            bool fits_now = decision.needed_bytes + kept <= at_least_zero(decision.effective_free_bytes);
            return fmt::format("PID={} {}: needs {} and {} kept free{}, {} - WAITING{}", decision.job, facts.key,
                               format_mb(decision.needed_bytes), format_mb(facts.kept_free_bytes), surprise,
                               free_text(decision, kept), fits_now ? " (running jobs' growth would take it)" : "");
        }
        case DecisionKind::emergency_stop:
            if (decision.below_floor)
                return fmt::format(
                    "EMERGENCY: only {} available (floor {}): stopped PID={} {} at {} "
                    "(of the running jobs, growing ones first, the one holding least) until memory returns",
                    format_mb(facts.available_bytes), format_mb(facts.emergency_floor_bytes), decision.job, facts.key,
                    format_mb(decision.current_bytes));
            return fmt::format(
                "EMERGENCY: running jobs still need {} more, {} available: stopped PID={} {} at {} "
                "(the growing job holding least) so the others can finish",
                format_mb(
                    at_least_zero(static_cast<std::int64_t>(facts.available_bytes) - decision.effective_free_bytes)),
                format_mb(facts.available_bytes), decision.job, facts.key, format_mb(decision.current_bytes));
        case DecisionKind::emergency_resume:
            return fmt::format("Memory is back ({} free after imminent): resumed PID={} {}",
                               format_mb(at_least_zero(decision.effective_free_bytes)), decision.job, facts.key);
        case DecisionKind::repredict:
            if (decision.broken_guess_bytes)
                return fmt::format(
                    "PID={} {}: at {} growing {}/s, {} its guess of {}: re-predicted at {} (as large as its largest "
                    "peer)",
                    decision.job, facts.key, format_mb(decision.current_bytes),
                    format_mb(decision.growth_bytes_per_second),
                    decision.current_bytes > decision.broken_guess_bytes ? "past" : "about to pass",
                    format_mb(decision.broken_guess_bytes), format_mb(decision.needed_bytes));
            return fmt::format("PID={} {}: at {} growing {}/s, past its prediction of {}: re-predicted at {}",
                               decision.job, facts.key, format_mb(decision.current_bytes),
                               format_mb(decision.growth_bytes_per_second), format_mb(decision.previous_bytes),
                               format_mb(decision.needed_bytes));
    }
    return {};
}

}  // namespace memgov
