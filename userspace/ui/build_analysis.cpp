#include "build_analysis.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <map>

#include "bytes.h"

namespace memgov {
namespace {

constexpr long jobs_track = 1;  // as TraceWriter writes them
constexpr long processes_track = 2;

double seconds_of(const nlohmann::json& event) { return event.value("ts", 0.0) / 1e6; }

// The kernel's costs, as put_costs writes them in --stats-json and the trace.
void read_costs(JobTimeline& job, const nlohmann::json& entry) {
    job.cpu_s = entry.value("cpu_seconds", 0.0);
    job.run_delay_s = entry.value("run_delay_seconds", 0.0);
    job.io_delay_s = entry.value("io_delay_seconds", 0.0);
    job.reclaim_delay_s = entry.value("reclaim_delay_seconds", 0.0);
    job.major_faults = entry.value("major_faults", 0ull);
}

// A slice open on a job lane: the job's own, or one of its states.
struct OpenSlice {
    std::string name;
    double at_s;
    std::size_t job;  // index into timeline.jobs
};
using OpenLanes = std::map<long, std::vector<OpenSlice>>;

double number(const nlohmann::json& values, const char* name) {
    auto it = values.find(name);
    return it != values.end() && it->is_number() ? it->get<double>() : 0.0;
}

// The memory counter, and each lane's job RSS (credited to the job open on the lane).
void read_counter(BuildTimeline& timeline, const OpenLanes& lanes, const std::string& name, double at,
                  const nlohmann::json& values) {
    if (name == "memory (MiB)") {
        MemoryPoint point{.at_s = at,
                          .build_mib = number(values, "build"),
                          .other_mib = number(values, "other"),
                          .available_mib = number(values, "available"),
                          .limit_mib = number(values, "limit")};
        if (values.contains("build"))
            timeline.build_peak_mib = std::max(timeline.build_peak_mib.value_or(0), point.build_mib);
        if (values.contains("limit")) timeline.limit_mib = point.limit_mib;
        timeline.memory.push_back(point);
        return;
    }
    long lane = 0;
    if (std::sscanf(name.c_str(), "lane %ld RSS (MiB)", &lane) != 1) return;
    auto open = lanes.find(lane);
    if (open == lanes.end() || open->second.empty()) return;  // its job has ended
    timeline.jobs[open->second.front().job].rss_mib.emplace_back(at, number(values, "rss"));
}

std::optional<BuildTimeline> from_trace(const nlohmann::json& trace, std::string& error) {
    BuildTimeline timeline{.source = "trace"};
    using Open = OpenSlice;
    OpenLanes lanes;
    std::map<long, std::size_t> job_of_pid;
    for (const auto& event : trace) {
        if (!event.is_object() || !event.contains("ph")) continue;
        std::string phase = event["ph"].is_string() ? event["ph"].get<std::string>() : "";
        long pid = event.value("pid", 0L);
        long lane = event.value("tid", 0L);
        double at = seconds_of(event);
        timeline.wall_s = std::max(timeline.wall_s, at);
        if (pid == processes_track && phase == "B") ++timeline.processes;
        if (pid != jobs_track) continue;
        auto& stack = lanes[lane];
        if (phase == "B") {
            std::string name = event.value("name", "");
            const auto& args = event.contains("args") ? event["args"] : nlohmann::json::object();
            if (args.contains("job")) {
                timeline.jobs.push_back({.key = name, .exec_s = at, .run_s = -1, .end_s = at});
                job_of_pid[args["job"].get<long>()] = timeline.jobs.size() - 1;
                stack.push_back({name, at, timeline.jobs.size() - 1});
            } else if (!stack.empty()) {
                if (name == "running") timeline.jobs[stack.back().job].run_s = at;
                if (name == "stopped") ++timeline.emergency_stops;
                stack.push_back({name, at, stack.back().job});
            }
        } else if (phase == "E" && !stack.empty()) {
            Open open = stack.back();
            stack.pop_back();
            JobTimeline& job = timeline.jobs[open.job];
            if (open.name == "stopped") job.stops.emplace_back(open.at_s, at);
            if (stack.empty()) {  // the job's own slice
                job.end_s = at;
                if (job.run_s < 0) job.run_s = at;  // it ended while waiting
                const auto& args = event.contains("args") ? event["args"] : nlohmann::json::object();
                job.peak_bytes = static_cast<std::uint64_t>(args.value("peak_mib", 0.0) * (1 << 20));
                read_costs(job, args);
            }
        } else if (phase == "C" && event.contains("args") && event["args"].is_object()) {
            read_counter(timeline, lanes, event.value("name", ""), at, event["args"]);
        } else if (phase == "i" && event.value("name", "") == "build" && event.contains("args")) {
            if (auto cpus = event["args"].value("cpus", 0u)) timeline.cpus = cpus;
            timeline.command = event["args"].value("command", "");
        } else if (phase == "i" && event.value("name", "") == "OOM kill" && event.contains("args")) {
            const auto& args = event["args"];
            OomKillNote note{.at_s = at,
                             .victim = args.value("victim", 0L),
                             .comm = args.value("comm", ""),
                             .key = args.value("key", ""),
                             .rss_mib = args.value("rss_mib", 0ull),
                             .beside = {}};
            for (const auto& running : args.value("running", nlohmann::json::array()))
                note.beside.push_back(
                    fmt::format("{} ({} MiB)", running.value("key", "?"), running.value("mib", 0ull)));
            if (auto it = job_of_pid.find(args.value("job", 0L)); it != job_of_pid.end())
                timeline.jobs[it->second].oom_killed = true;
            timeline.oom_kills.push_back(std::move(note));
        }
    }
    // Slices still open end where the trace ends (it was cut short: memgov was killed).
    for (auto& [lane, stack] : lanes) {
        for (auto open = stack.rbegin(); open != stack.rend(); ++open) {
            JobTimeline& job = timeline.jobs[open->job];
            if (open->name == "stopped") job.stops.emplace_back(open->at_s, timeline.wall_s);
            if (open + 1 == stack.rend()) job.end_s = timeline.wall_s;
        }
    }
    for (auto& job : timeline.jobs)
        if (job.run_s < 0) job.run_s = job.end_s;  // it ended (or the trace did) while it waited
    if (timeline.jobs.empty() && timeline.processes == 0) {
        error = "no job and no process in it: is it a memgov --trace file?";
        return std::nullopt;
    }
    return timeline;
}

std::optional<BuildTimeline> from_stats(const nlohmann::json& stats, std::string& error) {
    BuildTimeline timeline{.source = "stats"};
    try {
        timeline.wall_s = stats.at("wall_seconds").get<double>();
        timeline.processes = stats.value("procs_seen", 0ull);
        timeline.emergency_stops = stats.value("emergency_stops", 0ull);
        for (const auto& job : stats.at("jobs")) {
            JobTimeline entry{.key = job.at("key").get<std::string>(),
                              .exec_s = job.value("exec_at_seconds", 0.0),
                              .run_s = job.value("run_at_seconds", 0.0),
                              .end_s = job.value("exit_at_seconds", timeline.wall_s),
                              .stops = {},
                              .peak_bytes = job.value("peak_bytes", 0ull),
                              .oom_killed = job.value("oom_killed", false)};
            read_costs(entry, job);
            if (entry.oom_killed)
                timeline.oom_kills.push_back({.at_s = entry.end_s,
                                              .victim = job.value("job", 0L),
                                              .comm = "",
                                              .key = entry.key,
                                              .rss_mib = 0,
                                              .beside = {}});
            timeline.jobs.push_back(std::move(entry));
        }
    } catch (const nlohmann::json::exception& bad) {
        error = fmt::format("not memgov --stats-json output ({})", bad.what());
        return std::nullopt;
    }
    return timeline;
}

// Time-weighted sweep over the jobs' running and held intervals.
struct Sweep {
    double running_time = 0;  // ∫ running jobs dt
    std::size_t peak = 0;
    double held = 0, serial = 0, idle = 0;  // durations
};

Sweep sweep(const BuildTimeline& timeline) {
    // (instant, change in running jobs, change in held jobs, change in live jobs)
    std::vector<std::tuple<double, int, int, int>> changes;
    for (const auto& job : timeline.jobs) {
        changes.emplace_back(job.exec_s, 0, 0, 1);
        changes.emplace_back(job.end_s, 0, 0, -1);
        if (job.run_s > job.exec_s) {
            changes.emplace_back(job.exec_s, 0, 1, 0);
            changes.emplace_back(job.run_s, 0, -1, 0);
        }
        changes.emplace_back(job.run_s, 1, 0, 0);
        changes.emplace_back(job.end_s, -1, 0, 0);
        for (const auto& [from, until] : job.stops) {
            changes.emplace_back(from, -1, 1, 0);
            changes.emplace_back(until, 1, -1, 0);
        }
    }
    std::sort(changes.begin(), changes.end());
    Sweep result;
    int running = 0, held = 0, live = 0;
    double last = 0;
    for (const auto& [at, d_running, d_held, d_live] : changes) {
        double span = std::max(0.0, at - last);
        result.running_time += span * running;
        if (held > 0) result.held += span;
        if (running == 1 && held == 0) result.serial += span;
        if (live == 0) result.idle += span;
        running += d_running;
        held += d_held;
        live += d_live;
        result.peak = std::max(result.peak, static_cast<std::size_t>(std::max(running, 0)));
        last = std::max(last, at);
    }
    result.idle += std::max(0.0, timeline.wall_s - last);
    return result;
}

}  // namespace

std::optional<BuildTimeline> timeline_from_json(const nlohmann::json& json, std::string& error) {
    if (json.is_array()) return from_trace(json, error);
    if (json.is_object() && json.contains("jobs") && json.contains("wall_seconds")) return from_stats(json, error);
    error = "neither a memgov --trace file (a JSON array) nor --stats-json output";
    return std::nullopt;
}

BuildFindings findings_of(const BuildTimeline& timeline) {
    Sweep swept = sweep(timeline);
    BuildFindings found;
    double wall = timeline.wall_s > 0 ? timeline.wall_s : 1;
    found.average_parallelism = swept.running_time / wall;
    found.peak_parallelism = swept.peak;
    found.memory_bound_share = swept.held / wall;
    found.serial_share = swept.serial / wall;
    found.idle_share = swept.idle / wall;
    for (const auto& job : timeline.jobs) {
        found.cpu_s += job.cpu_s;
        found.run_delay_s += job.run_delay_s;
        found.io_delay_s += job.io_delay_s;
        found.reclaim_delay_s += job.reclaim_delay_s;
        found.major_faults += job.major_faults;
        double waited = job.run_s - job.exec_s;
        if (waited > 0.001) {
            ++found.jobs_waited;
            found.seconds_waited += waited;
        }
        for (const auto& [from, until] : job.stops) found.seconds_stopped += until - from;
    }
    // Of the time the jobs' threads wanted a CPU (ran or waited to), what they waited: summed
    // over threads both, so a job of many threads is measured as fairly as one of one.
    double wanted = found.cpu_s + found.run_delay_s;
    found.cpu_wait_share = wanted > 0 ? found.run_delay_s / wanted : 0;
    return found;
}

std::string report_text(const BuildTimeline& timeline, std::size_t top) {
    BuildFindings found = findings_of(timeline);
    std::string text = fmt::format("memgov report: {:.1f} s, {} jobs, {} processes (from its {})\n", timeline.wall_s,
                                   timeline.jobs.size(), timeline.processes, timeline.source);
    text += fmt::format("parallelism: {:.1f} jobs running on average, {} at most\n", found.average_parallelism,
                        found.peak_parallelism);
    std::vector<const JobTimeline*> by_wait;
    for (const auto& job : timeline.jobs) by_wait.push_back(&job);
    std::sort(by_wait.begin(), by_wait.end(),
              [](const JobTimeline* a, const JobTimeline* b) { return a->run_s - a->exec_s > b->run_s - b->exec_s; });
    if (found.jobs_waited)
        text += fmt::format("held for memory: {} jobs waited {:.1f} s in all, the longest {} ({:.1f} s)\n",
                            found.jobs_waited, found.seconds_waited, by_wait.front()->key,
                            by_wait.front()->run_s - by_wait.front()->exec_s);
    else
        text += "held for memory: no job waited\n";
    if (timeline.emergency_stops)
        text += fmt::format("emergency stops: {}{}\n", timeline.emergency_stops,
                            timeline.source == "trace" ? fmt::format(", {:.1f} s stopped in all", found.seconds_stopped)
                                                       : std::string());
    if (timeline.build_peak_mib)
        text += fmt::format("memory: the build peaked at {:.0f} MiB{}\n", *timeline.build_peak_mib,
                            timeline.limit_mib ? fmt::format(" of {:.0f} MiB", *timeline.limit_mib) : std::string());
    if (found.cpu_s > 0 || found.run_delay_s > 0) {
        auto most =
            *std::max_element(timeline.jobs.begin(), timeline.jobs.end(),
                              [](const JobTimeline& a, const JobTimeline& b) { return a.run_delay_s < b.run_delay_s; });
        text += fmt::format(
            "CPU: the jobs used {:.1f} s and waited {:.1f} s for a CPU ({} % of the time they wanted one); "
            "waited most: {} ({:.1f} s)\n",
            found.cpu_s, found.run_delay_s, static_cast<int>(found.cpu_wait_share * 100 + 0.5), most.key,
            most.run_delay_s);
        if (found.io_delay_s > 0 || found.reclaim_delay_s > 0)
            text += fmt::format("stalls: {:.1f} s waiting for I/O, {:.1f} s in direct reclaim, {} major faults\n",
                                found.io_delay_s, found.reclaim_delay_s, found.major_faults);
        else
            text += fmt::format(
                "stalls: {} major faults; I/O and reclaim waits not measured (they need "
                "sysctl kernel.task_delayacct=1) or none\n",
                found.major_faults);
    }
    std::vector<const JobTimeline*> longest = by_wait;
    std::sort(longest.begin(), longest.end(),
              [](const JobTimeline* a, const JobTimeline* b) { return a->end_s - a->run_s > b->end_s - b->run_s; });
    if (longest.size() > top) longest.resize(top);
    if (!longest.empty()) text += "longest jobs (running, waited before, peak):\n";
    for (const JobTimeline* job : longest)
        text +=
            fmt::format("  {:>8.1f} s  {:>7.1f} s  {:>10}  {}{}\n", job->end_s - job->run_s, job->run_s - job->exec_s,
                        format_bytes(job->peak_bytes), job->key, job->oom_killed ? "  (OOM-killed)" : "");
    if (!timeline.oom_kills.empty()) text += "OOM kills:\n";
    for (const auto& kill : timeline.oom_kills) {
        std::string beside;
        for (const auto& other : kill.beside) beside += (beside.empty() ? "" : ", ") + other;
        text += fmt::format("  at {:.1f} s: {}{} (pid {}){}{}\n", kill.at_s, kill.comm.empty() ? "job" : kill.comm,
                            kill.rss_mib ? fmt::format(" at {} MiB", kill.rss_mib) : std::string(), kill.victim,
                            kill.key.empty() ? "" : ", job " + kill.key,
                            beside.empty() ? "" : "; running beside it: " + beside);
    }
    text += "bottlenecks:\n";
    auto percent = [](double share) { return static_cast<int>(share * 100 + 0.5); };
    // A share of the time past its threshold is named.
    struct Bottleneck {
        double share;
        double threshold;
        const char* words;
    };
    const Bottleneck bottlenecks[] = {
        {found.memory_bound_share, 0.05,
         "memory-bound for {} % of the build: jobs were held (waiting or stopped) for memory"},
        {found.serial_share, 0.2, "serial for {} % of the build: a single job ran, none was held"},
        {found.cpu_wait_share, 0.25,
         "CPU-bound: jobs waited for a CPU {} % of the time they wanted one (more jobs than cores, or other work "
         "on them)"},
        {found.idle_share, 0.2, "no job for {} % of the build: only glue ran (configure, scripts, make itself)"},
    };
    bool any = false;
    for (const auto& bottleneck : bottlenecks) {
        if (bottleneck.share < bottleneck.threshold) continue;
        text += "  " + fmt::format(fmt::runtime(bottleneck.words), percent(bottleneck.share)) + "\n";
        any = true;
    }
    if (!timeline.oom_kills.empty()) {
        text += fmt::format("  {} OOM kill{}: the build ran out of memory\n", timeline.oom_kills.size(),
                            timeline.oom_kills.size() == 1 ? "" : "s");
        any = true;
    }
    if (!any) text += "  none found: jobs ran in parallel, none was held for memory\n";
    return text;
}

nlohmann::json report_json(const BuildTimeline& timeline) {
    BuildFindings found = findings_of(timeline);
    return {{"source", timeline.source},
            {"wall_seconds", timeline.wall_s},
            {"jobs", timeline.jobs.size()},
            {"processes", timeline.processes},
            {"average_parallelism", found.average_parallelism},
            {"peak_parallelism", found.peak_parallelism},
            {"jobs_waited", found.jobs_waited},
            {"seconds_waited", found.seconds_waited},
            {"emergency_stops", timeline.emergency_stops},
            {"seconds_stopped", found.seconds_stopped},
            {"memory_bound_share", found.memory_bound_share},
            {"serial_share", found.serial_share},
            {"idle_share", found.idle_share},
            {"cpu_seconds", found.cpu_s},
            {"run_delay_seconds", found.run_delay_s},
            {"io_delay_seconds", found.io_delay_s},
            {"reclaim_delay_seconds", found.reclaim_delay_s},
            {"major_faults", found.major_faults},
            {"cpu_wait_share", found.cpu_wait_share},
            {"oom_kills", timeline.oom_kills.size()}};
}

}  // namespace memgov
