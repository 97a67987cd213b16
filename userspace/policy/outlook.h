// A step function over the time ahead (ms from now): the memory running jobs are expected
// to take beyond what they use now, summed. Built once per decision from each job's own
// steps; asked for its value at an instant and its maximum over an interval, both in
// O(1) after an O(n log n) build, so admission stays cheap with hundreds of jobs. Pure.
#pragma once

#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

namespace memgov {

class Outlook {
public:
    static constexpr double forever = std::numeric_limits<double>::infinity();

    // The function changes by `delta` at `ahead` (>= 0); it is 0 before any change.
    void add(double ahead, std::int64_t delta) { deltas_.emplace_back(ahead, delta); }
    // Call once all changes are added.
    void build();

    // The value at `ahead` (steps take effect at their instant).
    std::int64_t at(double ahead) const;
    // The largest value over [from, to).
    std::int64_t max_over(double from, double to) const;
    // The instants at which the value changes, ascending.
    const std::vector<double>& instants() const { return instants_; }

private:
    std::vector<std::pair<double, std::int64_t>> deltas_;
    std::vector<double> instants_;                  // instants_[0] == 0
    std::vector<std::vector<std::int64_t>> table_;  // table_[k][i]: max of values i .. i + 2^k - 1
};

}  // namespace memgov
