// `memgov report FILE [--json] [--top N]`: why the build was as slow as it was.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace memgov {

struct ReportOptions {
    std::string file;  // a --trace file or --stats-json output
    bool json = false;
    std::size_t top = 10;
    std::optional<std::string> html;  // also write the page here
    // What-if: each combination of these is replayed (none given: no what-if).
    std::vector<std::string> limits;  // sizes; percentages of the recorded limit
    std::vector<std::size_t> jobs;
    std::vector<double> cpus;
};

int report_command(const ReportOptions& options);

}  // namespace memgov
