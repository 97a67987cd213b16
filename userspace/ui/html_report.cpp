#include "html_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "bytes.h"

namespace memgov {
namespace {

// The page's geometry, in CSS pixels.
constexpr double plot_left = 70, plot_width = 1100, lane_height = 14, lane_gap = 3;
constexpr double chart_height = 260;
// The memory chart's resolution: enough for a smooth picture, few enough points for 100,000 jobs.
constexpr std::size_t chart_points = 600;

// Each job's colour, the same in the timeline and the memory chart (none near the states' own).
const char* const job_colours[] = {"#4e79a7", "#59a14f", "#9c755f", "#76b7b2",
                                   "#b07aa1", "#8cd17d", "#86bcb6", "#a0cbe8"};
const char* colour_of(std::size_t job) { return job_colours[job % std::size(job_colours)]; }
constexpr const char* waiting_colour = "#f28e2b";
constexpr const char* stopped_colour = "#e15759";
constexpr const char* killed_colour = "#7b1113";
constexpr const char* other_colour = "#bab0ac";

std::string escaped(const std::string& text) {
    std::string out;
    for (char c : text) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            default: out += c;
        }
    }
    return out;
}

// A round step for about `count` ticks over `span`: 1, 2 or 5 times a power of ten.
double tick_step(double span, int count) {
    double raw = std::max(span, 1e-9) / count;
    double power = std::pow(10, std::floor(std::log10(raw)));
    for (double factor : {1.0, 2.0, 5.0})
        if (raw <= factor * power) return factor * power;
    return 10 * power;
}

// Lanes that show the jobs' real concurrency: each job on the lowest lane free at its exec.
std::vector<std::size_t> lanes_of(const BuildTimeline& timeline, std::size_t& lane_count) {
    std::vector<std::size_t> order(timeline.jobs.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return timeline.jobs[a].exec_s < timeline.jobs[b].exec_s; });
    std::vector<double> free_from;  // per lane
    std::vector<std::size_t> lane(timeline.jobs.size());
    for (std::size_t index : order) {
        const JobTimeline& job = timeline.jobs[index];
        auto free = std::find_if(free_from.begin(), free_from.end(), [&](double at) { return at <= job.exec_s; });
        if (free == free_from.end()) free = free_from.insert(free_from.end(), 0);
        *free = job.end_s;
        lane[index] = static_cast<std::size_t>(free - free_from.begin());
    }
    lane_count = free_from.size();
    return lane;
}

class Page {
public:
    explicit Page(const BuildTimeline& timeline) : timeline_(timeline), wall_(std::max(timeline.wall_s, 1e-3)) {}

    double x(double seconds) const { return plot_left + std::clamp(seconds / wall_, 0.0, 1.0) * plot_width; }

    std::string time_axis(double y) const {
        std::string svg;
        double step = tick_step(wall_, 10);
        for (double at = 0; at <= wall_ + step * 1e-6; at += step)
            svg += fmt::format(
                R"(<line x1="{0:.1f}" y1="{1:.1f}" x2="{0:.1f}" y2="{2:.1f}" class="grid"/><text x="{0:.1f}" y="{3:.1f}" class="tick" text-anchor="middle">{4:g} s</text>)",
                x(at), 0.0, y, y + 14, at);
        return svg;
    }

    std::string timeline_svg() const {
        std::size_t lane_count = 0;
        auto lanes = lanes_of(timeline_, lane_count);
        double height = std::max<double>(lane_count, 1) * (lane_height + lane_gap);
        std::string svg = fmt::format(R"(<svg class="chart" width="{:.0f}" height="{:.0f}">)",
                                      plot_left + plot_width + 20, height + 24);
        svg += time_axis(height);
        for (std::size_t i = 0; i < timeline_.jobs.size(); ++i) {
            const JobTimeline& job = timeline_.jobs[i];
            double top = static_cast<double>(lanes[i]) * (lane_height + lane_gap);
            svg += fmt::format("<g><title>{}\nexec'd {:.2f} s, ran from {:.2f} s to {:.2f} s{}{}, peak {}</title>",
                               escaped(job.key), job.exec_s, job.run_s, job.end_s,
                               job.run_s > job.exec_s ? fmt::format(", waited {:.2f} s", job.run_s - job.exec_s) : "",
                               job.stops.empty() ? "" : fmt::format(", stopped {} times", job.stops.size()),
                               format_bytes(job.peak_bytes));
            svg += bar(job.exec_s, job.run_s, top, waiting_colour, "waiting");
            svg += bar(job.run_s, job.end_s, top, job.oom_killed ? killed_colour : colour_of(i), "running");
            for (const auto& [from, until] : job.stops) svg += bar(from, until, top, stopped_colour, "stopped");
            // Its file's name where the bar has room for it.
            std::string name = job.key.substr(job.key.find_last_of('/') + 1);
            if (x(job.end_s) - x(job.exec_s) > 7.0 * static_cast<double>(name.size()) + 8)
                svg += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" class="label">{}</text>)", x(job.exec_s) + 3,
                                   top + lane_height - 3, escaped(name));
            svg += "</g>";
        }
        return svg + "</svg>";
    }

    std::string memory_svg() const {
        // The scale: the limit, or the highest stack, whichever is more.
        auto stack = stacked();
        double top_mib = timeline_.limit_mib.value_or(0);
        for (const auto& point : timeline_.memory) top_mib = std::max(top_mib, point.build_mib + point.other_mib);
        for (const auto& column : stack)
            if (!column.empty()) top_mib = std::max(top_mib, column.back());
        top_mib = std::max(top_mib * 1.05, 1.0);
        auto y = [&](double value) { return chart_height - value / top_mib * chart_height; };
        std::string svg = fmt::format(R"(<svg class="chart" width="{:.0f}" height="{:.0f}">)",
                                      plot_left + plot_width + 20, chart_height + 24);
        svg += time_axis(chart_height);
        double step = tick_step(top_mib, 5);
        for (double at = 0; at <= top_mib; at += step)
            svg += fmt::format(
                R"(<line x1="{0}" y1="{1:.1f}" x2="{2}" y2="{1:.1f}" class="grid"/><text x="{3}" y="{4:.1f}" class="tick" text-anchor="end">{5:g} MiB</text>)",
                plot_left, y(at), plot_left + plot_width, plot_left - 6, y(at) + 4, at);
        // Bands: everything else at the bottom, then each job in exec order.
        for (std::size_t band = 0; band + 1 < (stack.empty() ? 0 : stack.front().size()); ++band) {
            std::string upper, lower;
            bool any = false;
            for (std::size_t i = 0; i < stack.size(); ++i) {
                upper += fmt::format("{:.1f},{:.1f} ", x(at(i)), y(stack[i][band + 1]));
                any |= stack[i][band + 1] > stack[i][band];
            }
            if (!any) continue;
            for (std::size_t i = stack.size(); i-- > 0;)
                lower += fmt::format("{:.1f},{:.1f} ", x(at(i)), y(stack[i][band]));
            bool other = band == 0;
            svg += fmt::format(R"(<polygon points="{}{}" fill="{}" class="band"><title>{}</title></polygon>)", upper,
                               lower, other ? other_colour : colour_of(band - 1),
                               other ? "everything else in the limit" : escaped(timeline_.jobs[band - 1].key));
        }
        svg += line([](const MemoryPoint& point) { return point.limit_mib; }, y, "limit");
        svg += line([](const MemoryPoint& point) { return point.build_mib + point.other_mib; }, y, "measured");
        return svg + "</svg>";
    }

private:
    std::string bar(double from, double until, double top, const char* colour, const char* state) const {
        if (until <= from) return "";
        return fmt::format(R"(<rect x="{:.2f}" y="{:.1f}" width="{:.2f}" height="{}" fill="{}" class="{}"/>)", x(from),
                           top, std::max(0.5, x(until) - x(from)), lane_height, colour, state);
    }

    double at(std::size_t point) const { return wall_ * static_cast<double>(point) / (chart_points - 1); }

    // Per chart point: the cumulative stack, [0] = 0, [1] = everything else, [1 + j] = … + job j.
    std::vector<std::vector<double>> stacked() const {
        if (timeline_.memory.empty()) return {};
        std::vector<std::vector<double>> stack(chart_points, std::vector<double>(timeline_.jobs.size() + 2, 0));
        std::size_t reading = 0;
        for (std::size_t i = 0; i < chart_points; ++i) {
            double t = at(i);
            while (reading + 1 < timeline_.memory.size() && timeline_.memory[reading + 1].at_s <= t) ++reading;
            stack[i][1] = timeline_.memory[reading].at_s <= t ? timeline_.memory[reading].other_mib : 0;
        }
        for (std::size_t j = 0; j < timeline_.jobs.size(); ++j) {
            const JobTimeline& job = timeline_.jobs[j];
            std::size_t sample = 0;
            for (std::size_t i = 0; i < chart_points; ++i) {
                double t = at(i);
                double use = 0;
                if (t >= job.run_s && t < job.end_s) {
                    while (sample < job.rss_mib.size() && job.rss_mib[sample].first <= t) ++sample;
                    use = sample ? job.rss_mib[sample - 1].second : 0;
                }
                stack[i][j + 2] = use;
            }
        }
        for (auto& column : stack)
            for (std::size_t band = 1; band < column.size(); ++band) column[band] += column[band - 1];
        return stack;
    }

    template <class Value, class Scale>
    std::string line(Value value, Scale y, const char* kind) const {
        // Steps: a counter holds its value until the next reading that moved it.
        if (timeline_.memory.empty()) return "";
        std::string points;
        double last = value(timeline_.memory.front());
        for (const auto& point : timeline_.memory) {
            points += fmt::format("{0:.1f},{1:.1f} {0:.1f},{2:.1f} ", x(point.at_s), y(last), y(value(point)));
            last = value(point);
        }
        points += fmt::format("{:.1f},{:.1f}", x(wall_), y(last));
        return fmt::format(R"(<polyline points="{}" class="{}"/>)", points, kind);
    }

    const BuildTimeline& timeline_;
    double wall_;
};

std::string swatch(const char* colour, const char* words) {
    return fmt::format(R"(<span class="key"><span class="swatch" style="background:{}"></span>{}</span>)", colour,
                       words);
}

}  // namespace

std::string html_report(const BuildTimeline& timeline, const std::string& text) {
    Page page(timeline);
    std::string title = timeline.command.empty() ? "memgov report" : "memgov report: " + timeline.command;
    std::string html = fmt::format(R"(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{0}</title>
<style>
body {{ font: 13px sans-serif; margin: 16px; color: #222; }}
pre {{ background: #f6f6f6; padding: 8px; overflow-x: auto; }}
.chart .grid {{ stroke: #e4e4e4; }}
.chart .tick {{ font-size: 11px; fill: #555; }}
.chart .limit {{ fill: none; stroke: #d62728; stroke-width: 2; stroke-dasharray: 6 4; }}
.chart .measured {{ fill: none; stroke: #222; stroke-width: 1; }}
.chart .band {{ stroke: none; opacity: 0.85; }}
.chart .label {{ font-size: 10px; fill: #fff; pointer-events: none; }}
.key {{ margin-right: 14px; white-space: nowrap; }}
.swatch {{ display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -2px; }}
</style></head><body>
<h1>{0}</h1>
<pre>{1}</pre>
<h2>Jobs</h2>
<p>)",
                                   escaped(title), escaped(text));
    html += swatch(waiting_colour, "waiting at the gate for memory") +
            swatch(job_colours[0], "running (each job in its colour in the memory chart too)") +
            swatch(stopped_colour, "stopped by the emergency net") + swatch(killed_colour, "OOM-killed") + "</p>\n" +
            page.timeline_svg() + "\n<h2>Memory</h2>\n";
    if (timeline.memory.empty()) {
        html += "<p>Memory over time is in traces only: record the build with <code>--trace FILE</code>.</p>\n";
    } else {
        html += "<p>" + swatch(other_colour, "everything else in the limit") +
                "<span class=\"key\">each job's RSS, stacked in exec order</span>" + swatch("#d62728", "the limit") +
                swatch("#222", "the build and everything else, as read") + "</p>\n" + page.memory_svg() + "\n";
    }
    return html + "</body></html>\n";
}

}  // namespace memgov
