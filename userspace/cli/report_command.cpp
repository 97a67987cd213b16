#include "report_command.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <thread>

#include "build_analysis.h"
#include "bytes.h"
#include "html_report.h"
#include "what_if.h"

namespace memgov {

namespace {

// Every combination of the limits, -j and CPUs asked for (what is not asked: as recorded).
std::optional<std::vector<WhatIf>> what_ifs(const ReportOptions& options, std::uint64_t recorded_limit) {
    std::vector<std::optional<std::uint64_t>> limits;
    for (const auto& text : options.limits) {
        auto bytes = parse_size(text, recorded_limit);
        if (!bytes || *bytes == 0) {
            fmt::print(stderr,
                       "memgov report: --limit {}: expected a size such as 1300M, 4G or 50% (of the recorded {})\n",
                       text, format_bytes(recorded_limit));
            return std::nullopt;
        }
        limits.push_back(bytes);
    }
    if (limits.empty()) limits.push_back(std::nullopt);
    std::vector<std::optional<std::size_t>> jobs(options.jobs.begin(), options.jobs.end());
    if (jobs.empty()) jobs.push_back(std::nullopt);
    std::vector<std::optional<double>> cpus(options.cpus.begin(), options.cpus.end());
    if (cpus.empty()) cpus.push_back(std::nullopt);
    std::vector<WhatIf> questions;
    for (auto limit : limits)
        for (auto job_count : jobs)
            for (auto cpu_count : cpus)
                questions.push_back({.limit_bytes = limit, .jobs = job_count, .cpus = cpu_count});
    return questions;
}

}  // namespace

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
    std::optional<WhatIfAnswers> what_if;
    if (!options.limits.empty() || !options.jobs.empty() || !options.cpus.empty()) {
        auto build = recorded_build(*timeline, std::max(1u, std::thread::hardware_concurrency()), error);
        if (!build) {
            fmt::print(stderr, "memgov report: {}: {}\n", options.file, error);
            return 1;
        }
        auto questions = what_ifs(options, build->settings.limit_bytes);
        if (!questions) return 2;
        what_if = answer(*build, *questions);
    }
    std::string text = report_text(*timeline, options.top);
    if (what_if) text += what_if_text(*what_if);
    if (options.html) {
        std::ofstream page(*options.html, std::ios::trunc);
        page << html_report(*timeline, text);
        page.close();
        if (!page) {
            fmt::print(stderr, "memgov report: cannot write {}: {}\n", *options.html, std::strerror(errno));
            return 1;
        }
    }
    if (options.json) {
        nlohmann::json json = report_json(*timeline);
        if (what_if) json["what_if"] = what_if_json(*what_if);
        fmt::print("{}\n", json.dump(1));
    } else
        fmt::print("{}", text);
    return 0;
}

}  // namespace memgov
