#include "outlook.h"

#include <algorithm>
#include <bit>

namespace memgov {

void Outlook::build() {
    std::sort(deltas_.begin(), deltas_.end());
    instants_ = {0.0};
    std::vector<std::int64_t> values{0};
    for (const auto& [ahead, delta] : deltas_) {
        if (ahead > instants_.back()) {
            instants_.push_back(ahead);
            values.push_back(values.back());
        }
        values.back() += delta;
    }
    table_ = {std::move(values)};
    for (std::size_t width = 2; width <= instants_.size(); width *= 2) {
        const auto& below = table_.back();
        std::vector<std::int64_t> level(instants_.size() - width + 1);
        for (std::size_t i = 0; i < level.size(); ++i) level[i] = std::max(below[i], below[i + width / 2]);
        table_.push_back(std::move(level));
    }
}

namespace {

// Index of the step in effect at `ahead`: the last instant <= ahead (instants[0] == 0).
std::size_t step_at(const std::vector<double>& instants, double ahead) {
    auto after = std::upper_bound(instants.begin(), instants.end(), ahead);
    return after == instants.begin() ? 0 : static_cast<std::size_t>(after - instants.begin()) - 1;
}

}  // namespace

std::int64_t Outlook::at(double ahead) const { return table_[0][step_at(instants_, ahead)]; }

std::int64_t Outlook::max_over(double from, double to) const {
    std::size_t first = step_at(instants_, from);
    // Steps that begin before `to`: the last one is the one in effect just before it.
    auto end = static_cast<std::size_t>(std::lower_bound(instants_.begin(), instants_.end(), to) - instants_.begin());
    std::size_t last = std::max(first, end == 0 ? 0 : end - 1);
    std::size_t level = std::bit_width(last - first + 1) - 1;
    return std::max(table_[level][first], table_[level][last + 1 - (std::size_t{1} << level)]);
}

}  // namespace memgov
