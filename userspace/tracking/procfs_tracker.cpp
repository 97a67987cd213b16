#include "procfs_tracker.h"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <thread>

#include "event_decode.h"
#include "job_key.h"
#include "text_file.h"

namespace memgov {
namespace {

// Through read_text_file: an istreambuf_iterator let libstdc++'s std::ios_base::failure out
// when a process exited while its file was read, and ended memgov (the overhead benchmark
// found it at a 10 ms poll).
std::string read_all(const std::string& path) { return read_text_file(path).value_or(""); }

}  // namespace

ProcfsTracker::ProcfsTracker(const TrackerOptions& options, std::chrono::milliseconds interval, std::string proc_root)
    : options_(options),
      interval_(interval),
      proc_(std::move(proc_root)),
      gates_(options.gate_names.begin(), options.gate_names.end()),
      next_scan_(std::chrono::steady_clock::now()),
      page_size_(sysconf(_SC_PAGESIZE)) {}

ProcfsTracker::~ProcfsTracker() {
    for (pid_t pid : held_) kill(pid, SIGCONT);
}

void ProcfsTracker::track(pid_t pid) {
    processes_[pid] = Process{.ppid = getpid()};
    ++totals_.procs_seen;
}

void ProcfsTracker::discover_children(pid_t pid, std::vector<pid_t>& found) const {
    std::error_code error;
    for (const auto& task : std::filesystem::directory_iterator(proc_ + "/" + std::to_string(pid) + "/task", error)) {
        std::istringstream children(read_all(task.path().string() + "/children"));
        for (pid_t child; children >> child;) found.push_back(child);
    }
}

void ProcfsTracker::report_exec(pid_t pid, Process& process, const EventHandler& handler) {
    ExecEvent event;
    event.pid = pid;
    event.ppid = process.ppid;
    event.timestamp_ns = monotonic_ns();
    event.filename = process.exe;
    std::string cmdline = read_all(proc_ + "/" + std::to_string(pid) + "/cmdline");
    event.argv = split_argv({cmdline.data(), cmdline.size()});
    event.comm = basename_of(process.exe).substr(0, 15);
    if (!process.job && gates_.contains(basename_of(process.exe))) {
        process.job = pid;
        jobs_[pid] = JobUsage{process.rss_bytes, process.rss_bytes, 1};
        event.job_root = true;
        if (options_.pause_job_roots) {
            // Late: it has run for up to an interval, and may have children already.
            stop_job(pid);
            event.waiting = held_.contains(pid);
        }
    }
    event.job = process.job;
    ++totals_.execs;
    handler(event);
}

int ProcfsTracker::scan(const EventHandler& handler) {
    int events = 0;
    // New processes: children of the ones we know, transitively.
    std::vector<pid_t> frontier;
    for (const auto& [pid, process] : processes_) frontier.push_back(pid);
    while (!frontier.empty()) {
        pid_t parent = frontier.back();
        frontier.pop_back();
        std::vector<pid_t> children;
        discover_children(parent, children);
        for (pid_t child : children) {
            if (processes_.contains(child)) continue;
            if (processes_.size() >= options_.max_procs) {
                ++totals_.procs_map_full;
                continue;
            }
            pid_t job = processes_[parent].job;
            Process& process = processes_[child] = Process{.ppid = parent, .job = job};
            if (job) ++jobs_[job].nprocs;
            ++totals_.procs_seen;
            if (job && held_.contains(job) && kill(child, SIGSTOP) == 0) held_.insert(child);  // joins its held job
            // Gate now, before its own children are found, so that they join its job.
            std::error_code error;
            auto exe = std::filesystem::read_symlink(proc_ + "/" + std::to_string(child) + "/exe", error);
            if (!error) {
                process.exe = exe.string();
                report_exec(child, process, handler);
                ++events;
            }
            frontier.push_back(child);
        }
    }
    // Memory, execs and exits.
    std::uint64_t total = 0;
    for (auto& [job_id, job] : jobs_) job.rss_bytes = 0;
    for (auto it = processes_.begin(); it != processes_.end();) {
        pid_t pid = it->first;
        Process& process = it->second;
        std::string base = proc_ + "/" + std::to_string(pid);
        std::istringstream statm(read_all(base + "/statm"));
        std::uint64_t size_pages = 0;
        std::uint64_t resident_pages = 0;
        std::error_code error;
        auto exe = std::filesystem::read_symlink(base + "/exe", error);
        bool gone = !(statm >> size_pages >> resident_pages) || size_pages == 0;  // a zombie has no mm
        if (gone) {
            ExitEvent exit;
            exit.pid = pid;
            exit.ppid = process.ppid;
            exit.job = process.job;
            exit.timestamp_ns = monotonic_ns();
            exit.peak_rss_bytes = process.peak_rss_bytes;
            if (auto job = jobs_.find(process.job); job != jobs_.end()) {
                exit.job_peak_bytes = job->second.peak_bytes;
                if (--job->second.nprocs == 0) jobs_.erase(job);
            }
            held_.erase(pid);
            handler(exit);
            ++events;
            it = processes_.erase(it);
            continue;
        }
        process.rss_bytes = resident_pages * static_cast<std::uint64_t>(page_size_);
        process.peak_rss_bytes = std::max(process.peak_rss_bytes, process.rss_bytes);
        if (!error && exe.string() != process.exe) {
            process.exe = exe.string();
            report_exec(pid, process, handler);
            ++events;
        }
        if (auto job = jobs_.find(process.job); job != jobs_.end()) job->second.rss_bytes += process.rss_bytes;
        total += process.rss_bytes;
        ++it;
    }
    for (auto& [job_id, job] : jobs_) job.peak_bytes = std::max(job.peak_bytes, job.rss_bytes);
    totals_.rss_bytes = total;
    totals_.peak_bytes = std::max(totals_.peak_bytes, total);
    totals_.procs_live = processes_.size();
    return events;
}

int ProcfsTracker::poll(std::chrono::milliseconds timeout, const EventHandler& handler) {
    auto now = std::chrono::steady_clock::now();
    if (now < next_scan_) {
        auto wait = std::min<std::chrono::steady_clock::duration>(next_scan_ - now, timeout);
        std::this_thread::sleep_for(wait);
        if (std::chrono::steady_clock::now() < next_scan_) return 0;
    }
    next_scan_ = std::chrono::steady_clock::now() + interval_;
    return scan(handler);
}

void ProcfsTracker::resume(pid_t pid) {
    kill(pid, SIGCONT);
    held_.erase(pid);
    if (jobs_.contains(pid))  // a job root stopped late: its children were stopped with it
        for (const auto& [member, process] : processes_)
            if (process.job == pid && held_.erase(member)) kill(member, SIGCONT);
}

bool ProcfsTracker::stop_job(pid_t job) {
    bool stopped = false;
    for (const auto& [pid, process] : processes_)
        if (process.job == job && kill(pid, SIGSTOP) == 0) {
            held_.insert(pid);
            stopped = true;
        }
    return stopped;
}

void ProcfsTracker::resume_job(pid_t job) { resume(job); }

void ProcfsTracker::restop_held() {
    for (pid_t pid : held_) kill(pid, SIGSTOP);
}

void ProcfsTracker::signal_all(int signo) {
    for (const auto& [pid, process] : processes_) kill(pid, signo);
}

std::optional<JobUsage> ProcfsTracker::job_usage(pid_t job) const {
    auto it = jobs_.find(job);
    if (it == jobs_.end()) return std::nullopt;
    return it->second;
}

TrackerTotals ProcfsTracker::totals() const { return totals_; }

}  // namespace memgov
