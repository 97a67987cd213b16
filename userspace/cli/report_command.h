// `memgov report FILE [--json] [--top N]`: why the build was as slow as it was.
#pragma once

#include <cstddef>
#include <string>

namespace memgov {

struct ReportOptions {
    std::string file;  // a --trace file or --stats-json output
    bool json = false;
    std::size_t top = 10;
};

int report_command(const ReportOptions& options);

}  // namespace memgov
