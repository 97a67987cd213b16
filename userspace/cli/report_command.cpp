#include "report_command.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "build_analysis.h"
#include "html_report.h"

namespace memgov {

int report_command(const ReportOptions& options) {
    std::ifstream in(options.file);
    if (!in) {
        fmt::print(stderr, "memgov report: cannot read {}: {}\n", options.file, std::strerror(errno));
        return 1;
    }
    auto json = nlohmann::json::parse(in, nullptr, false);
    // A trace cut short by a crash lacks its closing bracket (Perfetto reads it anyway): so do we.
    if (json.is_discarded()) {
        in.clear();
        in.seekg(0);
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        json = nlohmann::json::parse(text + "\n]", nullptr, false);
    }
    std::string error;
    auto timeline = json.is_discarded() ? std::nullopt : timeline_from_json(json, error);
    if (!timeline) {
        fmt::print(stderr, "memgov report: {}: {}\n", options.file, json.is_discarded() ? "not JSON" : error);
        return 1;
    }
    std::string text = report_text(*timeline, options.top);
    if (options.html) {
        std::ofstream page(*options.html, std::ios::trunc);
        page << html_report(*timeline, text);
        page.close();
        if (!page) {
            fmt::print(stderr, "memgov report: cannot write {}: {}\n", *options.html, std::strerror(errno));
            return 1;
        }
    }
    if (options.json)
        fmt::print("{}\n", report_json(*timeline).dump(1));
    else
        fmt::print("{}", text);
    return 0;
}

}  // namespace memgov
