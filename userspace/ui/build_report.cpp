#include "build_report.h"

#include <fmt/format.h>
#include <sys/wait.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "bytes.h"

namespace memgov {
using json = nlohmann::json;

void put_status(json& out, const std::optional<int>& wait_status) {
    if (!wait_status) {
        out["exit_code"] = nullptr;
        return;
    }
    if (WIFSIGNALED(*wait_status)) {
        out["exit_code"] = 128 + WTERMSIG(*wait_status);
        out["signal"] = WTERMSIG(*wait_status);
    } else {
        out["exit_code"] = WEXITSTATUS(*wait_status);
    }
}

void put_costs(json& entry, const TaskCosts& costs) {
    auto seconds = [](std::uint64_t ns) { return static_cast<double>(ns) / 1e9; };
    entry["cpu_seconds"] = seconds(costs.cpu_ns);
    entry["run_delay_seconds"] = seconds(costs.run_delay_ns);
    entry["io_delay_seconds"] = seconds(costs.io_delay_ns);
    entry["reclaim_delay_seconds"] = seconds(costs.reclaim_delay_ns);
    entry["major_faults"] = costs.major_faults;
}

ProcessRecord& BuildReport::live_process(pid_t pid) {
    auto it = live_processes_.find(pid);
    if (it != live_processes_.end()) return processes_[it->second];
    live_processes_[pid] = processes_.size();
    processes_.push_back(ProcessRecord{.pid = pid});
    return processes_.back();
}

JobRecord* BuildReport::live_job(pid_t job_id) {
    auto it = live_jobs_.find(job_id);
    return it == live_jobs_.end() ? nullptr : &jobs_[it->second];
}

void BuildReport::on_key_found(pid_t job, const std::string& key) {
    if (auto it = live_jobs_.find(job); it != live_jobs_.end()) jobs_[it->second].key.key = key;
}

const JobRecord* BuildReport::job(pid_t job_id) const {
    auto it = live_jobs_.find(job_id);
    if (it != live_jobs_.end()) return &jobs_[it->second];
    for (auto record = jobs_.rbegin(); record != jobs_.rend(); ++record)
        if (record->job == job_id) return &*record;
    return nullptr;
}

void BuildReport::on_exec(const ExecEvent& event, const JobKey& key, std::uint64_t handled_ns) {
    ProcessRecord& process = live_process(event.pid);
    process.ppid = event.ppid;
    process.job = event.job;
    process.comm = event.comm;
    process.filename = event.filename;
    process.argv = event.argv;
    process.argv_truncated = event.argv_truncated;
    if (!event.job_root) return;
    live_jobs_[event.pid] = jobs_.size();
    jobs_.push_back(JobRecord{
        .job = event.pid,
        .key = key,
        .argv = event.argv,
        .started_ns = event.timestamp_ns,
        .handled_ns = handled_ns,
        .other_user = event.other_user,
    });
}

void BuildReport::on_exit(const ExitEvent& event) {
    ProcessRecord& process = live_process(event.pid);
    process.ppid = event.ppid;
    process.job = event.job;
    if (process.comm.empty()) process.comm = event.comm;
    process.peak_rss_bytes = event.peak_rss_bytes;
    process.wait_status = event.wait_status;
    process.costs = event.costs;
    if (keep_everything_) {
        live_processes_.erase(event.pid);
    } else {
        // Every record left is a live one: the last takes the exited one's place.
        std::size_t index = live_processes_.at(event.pid);
        live_processes_.erase(event.pid);
        if (index + 1 != processes_.size()) {
            processes_[index] = std::move(processes_.back());
            live_processes_[processes_[index].pid] = index;
        }
        processes_.pop_back();
    }

    if (JobRecord* job = live_job(event.job)) {
        job->peak_bytes = std::max(job->peak_bytes, event.job_peak_bytes);
        job->costs += event.costs;
        if (event.pid == event.job) {
            job->wait_status = event.wait_status;
            job->ended_ns = event.timestamp_ns;
            if (!keep_everything_) job->argv = {};
            live_jobs_.erase(event.job);
        }
    }
}

void BuildReport::on_oom_kill(const OomKillEvent& event) {
    live_process(event.pid).oom_killed = true;
    if (JobRecord* job = live_job(event.job)) job->oom_killed = true;
}

void BuildReport::on_admitted(pid_t job_id, std::uint64_t monotonic_ns, bool waited) {
    if (JobRecord* job = live_job(job_id)) {
        job->admitted_ns = monotonic_ns;
        job->waited = waited;
    }
}

std::vector<const JobRecord*> BuildReport::top_jobs(std::size_t limit) const {
    std::vector<const JobRecord*> sorted;
    for (const auto& record : jobs_) sorted.push_back(&record);
    std::stable_sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->peak_bytes > b->peak_bytes; });
    if (sorted.size() > limit) sorted.resize(limit);
    return sorted;
}

json BuildReport::to_json(const BuildSummary& summary) const {
    json out;
    out["format"] = "memgov-stats";
    out["version"] = 1;
    out["command"] = summary.command;
    out["exit_code"] = summary.exit_status;
    out["wall_seconds"] = summary.wall_seconds;
    out["peak_bytes"] = summary.totals.peak_bytes;
    out["backend"] = summary.backend;
    out["controller_cpu_seconds"] = summary.controller_cpu_seconds;
    out["controller_max_rss_bytes"] = summary.controller_max_rss_bytes;
    out["events_dropped"] = summary.totals.events_dropped;
    out["undecodable_records"] = summary.totals.undecodable_records;
    out["oom_kills"] = summary.totals.oom_kills;
    out["jobs_waited"] = summary.jobs_waited;
    out["seconds_waited"] = summary.seconds_waited;
    out["emergency_stops"] = summary.emergency_stops;
    out["repredictions"] = summary.repredictions;
    out["limit_bytes"] = summary.ceiling_bytes;
    out["limit_set_by"] = summary.bound_by;
    out["procs_seen"] = summary.totals.procs_seen;
    out["execs"] = summary.totals.execs;
    out["procs_untracked_map_full"] = summary.totals.procs_map_full;
    out["jobs_untracked_map_full"] = summary.totals.jobs_map_full;

    json processes = json::array();
    for (const auto& process : processes_) {
        json entry{
            {"pid", process.pid},
            {"ppid", process.ppid},
            {"job", process.job},
            {"comm", process.comm},
            {"filename", process.filename},
            {"argv", process.argv},
            {"argv_truncated", process.argv_truncated},
            {"peak_rss_bytes", process.peak_rss_bytes},
            {"oom_killed", process.oom_killed},
        };
        put_status(entry, process.wait_status);
        put_costs(entry, process.costs);
        processes.push_back(std::move(entry));
    }
    out["processes"] = std::move(processes);

    json jobs = json::array();
    // Timeline in seconds since the first job's exec: when each job was exec'd, let run, ended.
    std::uint64_t origin = jobs_.empty() ? 0 : jobs_.front().started_ns;
    auto since_origin = [origin](std::uint64_t ns) { return ns >= origin ? (ns - origin) / 1e9 : 0.0; };
    for (const auto& record : jobs_) {
        json entry{
            {"job", record.job},
            {"key", record.key.key},
            {"kind", kind_name(record.key.kind)},
            {"argv", record.argv},
            {"peak_bytes", record.peak_bytes},
            {"duration_seconds",
             record.ended_ns > record.started_ns ? (record.ended_ns - record.started_ns) / 1e9 : 0.0},
            {"oom_killed", record.oom_killed},
            {"waited", record.waited},
            {"other_user", record.other_user},
            {"exec_at_seconds", since_origin(record.started_ns)},
            {"run_at_seconds", since_origin(record.admitted_ns ? record.admitted_ns : record.started_ns)},
        };
        if (record.ended_ns) entry["exit_at_seconds"] = since_origin(record.ended_ns);
        // exec -> SIGCONT: the gate's own latency for a job that fit at once.
        if (record.admitted_ns >= record.started_ns && record.admitted_ns) {
            entry["gate_seconds"] = (record.admitted_ns - record.started_ns) / 1e9;
            if (record.handled_ns >= record.started_ns)  // split: ring buffer + wake-up, then memgov
                entry["gate_delivery_seconds"] = (record.handled_ns - record.started_ns) / 1e9;
        }
        put_status(entry, record.wait_status);
        put_costs(entry, record.costs);
        jobs.push_back(std::move(entry));
    }
    out["jobs"] = std::move(jobs);
    return out;
}

std::string BuildReport::summary_text(const BuildSummary& summary, std::size_t top) const {
    std::string limit =
        summary.ceiling_bytes ? fmt::format(" of {} ({})", format_bytes(summary.ceiling_bytes), summary.bound_by) : "";
    std::string text = fmt::format("memgov: exit {} after {:.1f}s; build peak {}{} over {} processes, {} jobs\n",
                                   summary.exit_status, summary.wall_seconds, format_bytes(summary.totals.peak_bytes),
                                   limit, summary.totals.procs_seen, jobs_.size());
    if (summary.jobs_waited || summary.emergency_stops || summary.repredictions)
        text += fmt::format(
            "memgov: {} jobs waited for memory ({:.1f}s in all), {} emergency stops, "
            "{} jobs re-predicted while running\n",
            summary.jobs_waited, summary.seconds_waited, summary.emergency_stops, summary.repredictions);
    if (summary.totals.oom_kills)
        text += fmt::format("memgov: {} processes were killed by the OOM killer\n", summary.totals.oom_kills);
    std::uint64_t lost = summary.totals.events_dropped + summary.totals.undecodable_records +
                         summary.totals.procs_map_full + summary.totals.jobs_map_full;
    if (lost)
        text += fmt::format(
            "memgov: warning: incomplete record: {} events dropped, {} unreadable, {} processes "
            "and {} jobs not tracked (maps full)\n",
            summary.totals.events_dropped, summary.totals.undecodable_records, summary.totals.procs_map_full,
            summary.totals.jobs_map_full);
    auto other_user = std::count_if(jobs_.begin(), jobs_.end(), [](const JobRecord& job) { return job.other_user; });
    if (other_user)
        text += fmt::format(
            "memgov: warning: {} jobs ran as another user (a setuid step) and could not be held, only measured\n",
            other_user);
    auto largest = top_jobs(top);
    if (!largest.empty()) text += "memgov: largest jobs by peak memory:\n";
    for (const JobRecord* record : largest)
        text += fmt::format("  {:>10}  {}{}\n", format_bytes(record->peak_bytes), record->key.key,
                            record->oom_killed ? "  (OOM-killed)" : "");
    return text;
}

}  // namespace memgov
