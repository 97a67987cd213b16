// `memgov report FILE [--json] [--top N]`: why the build was as slow as it was.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace memgov {

struct ReportOptions {
    std::string file;  // a --trace file or --stats-json output
    bool json = false;
    std::size_t top = 10;
    std::optional<std::string> html;  // also write the page here
};

int report_command(const ReportOptions& options);

}  // namespace memgov
