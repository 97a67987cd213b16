#include "run_command.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "bpf_tracker.h"
#include "build_report.h"
#include "bytes.h"
#include "gate_list.h"
#include "log.h"
#include "runner.h"

namespace memgov {
namespace {

std::atomic<int> pending_signal{0};
std::atomic<bool> pending_signal_from_terminal{false};

void on_forwarded_signal(int signo, siginfo_t* info, void*) {
    pending_signal_from_terminal = info && info->si_code == SI_KERNEL;
    pending_signal = signo;
}

void on_child_signal(int) {}  // only to interrupt the poll when the build exits

void install_signal_handlers() {
    struct sigaction action {};
    action.sa_sigaction = on_forwarded_signal;
    action.sa_flags = SA_SIGINFO;  // no SA_RESTART: the poll must wake up
    sigemptyset(&action.sa_mask);
    for (int signo : {SIGINT, SIGTERM, SIGHUP}) sigaction(signo, &action, nullptr);
    struct sigaction child {};
    child.sa_handler = on_child_signal;
    sigemptyset(&child.sa_mask);
    sigaction(SIGCHLD, &child, nullptr);
}

std::string process_cwd(pid_t pid) {
    std::error_code error;
    auto cwd = std::filesystem::read_symlink(fmt::format("/proc/{}/cwd", pid), error);
    return error ? std::string() : cwd.string();
}

std::string joined(const std::vector<std::string>& argv) {
    std::string text;
    for (const auto& arg : argv) text += (text.empty() ? "" : " ") + arg;
    return text;
}

// Written as the invoking user under sudo, so the build's owner can replace it.
void write_stats(const std::string& path, const nlohmann::json& stats,
                 const std::optional<Identity>& owner) {
    std::ofstream out(path, std::ios::trunc);
    if (!out) {
        fmt::print(stderr, "memgov: cannot write {}: {}\n", path, std::strerror(errno));
        return;
    }
    out << stats.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    out.close();
    if (owner && chown(path.c_str(), owner->uid, owner->gid) != 0)
        fmt::print(stderr, "memgov: cannot give {} to {}: {}\n", path, owner->user, std::strerror(errno));
}

class RunSession {
public:
    RunSession(const RunOptions& options, Tracker& tracker, Log& log)
        : options_(options), tracker_(tracker), log_(log) {}

    void handle(const TrackerEvent& event) {
        std::visit([this](const auto& e) { on(e); }, event);
    }

    BuildReport& report() { return report_; }

private:
    void on(const ExecEvent& event) {
        std::string cwd = process_cwd(event.pid);
        report_.on_exec(event, cwd);
        log_.write(LogCategory::debug, "exec PID={} PPID={} job={} {}{}", event.pid, event.ppid,
                   event.job, joined(event.argv), event.argv_truncated ? " …(argv truncated)" : "");
        if (!event.job_root) return;
        const JobRecord* job = report_.job(event.pid);
        log_.write(LogCategory::monitor, "PID={} job started: {}", event.pid,
                   job ? job->key.key : event.filename);
        if (event.paused) {
            // Admission policy belongs to the governor; until it decides, every job starts.
            tracker_.resume(event.pid);
            log_.write(LogCategory::predict, "PID={} {}: admitted - OK", event.pid,
                       job ? job->key.key : event.filename);
        }
    }

    void on(const ExitEvent& event) {
        report_.on_exit(event);
        if (event.pid != event.job) return;
        const JobRecord* job = report_.job(event.job);
        log_.write(LogCategory::memory, "PID={} job exited, peak {} for {}", event.pid,
                   format_mb(event.job_peak_bytes), job ? job->key.key : event.comm);
    }

    void on(const OomKillEvent& event) {
        report_.on_oom_kill(event);
        log_.write(LogCategory::signal, "PID={} ({}) killed by the OOM killer at {} (peak {})",
                   event.pid, event.comm, format_mb(event.rss_bytes), format_mb(event.peak_rss_bytes));
    }

    const RunOptions& options_;
    Tracker& tracker_;
    Log& log_;
    BuildReport report_;
};

Log open_log(const RunOptions& options) {
    if (options.log_file) return Log::to_file(options.verbosity, *options.log_file);
    return Log(options.verbosity, stderr);
}

}  // namespace

int run_command(const RunOptions& options) {
    auto started = std::chrono::steady_clock::now();
    std::optional<Log> log;
    std::unique_ptr<BpfTracker> tracker;
    try {
        log.emplace(open_log(options));
        TrackerOptions tracker_options;
        tracker_options.gate_names = default_gate_names();
        tracker_options.gate_names.insert(tracker_options.gate_names.end(),
                                          options.extra_gates.begin(), options.extra_gates.end());
        tracker_options.pause_job_roots = options.gate;
        tracker_options.max_procs = options.max_procs;
        tracker_options.verbose_libbpf = options.verbosity >= 2;
        tracker = BpfTracker::open(tracker_options);
    } catch (const std::exception& error) {
        fmt::print(stderr, "memgov: {}\n", error.what());
        return memgov_failure_status;
    }

    install_signal_handlers();
    RunSession session(options, *tracker, *log);
    Tracker::EventHandler handler = [&](const TrackerEvent& event) { session.handle(event); };

    auto identity = sudo_invoker();
    std::optional<Runner> runner;
    try {
        runner.emplace(Runner::Options{options.command, identity});
        tracker->track(runner->pid());
    } catch (const std::exception& error) {
        fmt::print(stderr, "memgov: cannot start {}: {}\n", options.command.front(), error.what());
        return memgov_failure_status;
    }
    log->write(LogCategory::monitor, "PID={} running {}{}", runner->pid(), joined(options.command),
               identity ? fmt::format(" as {}", identity->user) : "");
    if (int failed = runner->start()) return failed;

    while (!runner->try_wait()) {
        tracker->poll(std::chrono::milliseconds(100), handler);
        if (int signo = pending_signal.exchange(0)) {
            bool from_terminal = pending_signal_from_terminal;
            log->write(LogCategory::signal, "received {} ({}), {}", strsignal(signo),
                       from_terminal ? "from the terminal" : "sent to memgov",
                       from_terminal ? "the build got it too" : "forwarding it to the build");
            if (!from_terminal) runner->signal(signo);
        }
    }
    while (tracker->poll(std::chrono::milliseconds(0), handler) > 0) {
    }

    BuildSummary summary{
        .command = options.command,
        .exit_status = *runner->try_wait(),
        .wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(),
        .totals = tracker->totals(),
        .undecodable_records = tracker->undecodable_records(),
    };
    log->write(LogCategory::exit, "build exited with status {}", summary.exit_status);
    if (!options.quiet) fmt::print(stderr, "{}", session.report().summary_text(summary, options.top_jobs));
    if (options.stats_json) write_stats(*options.stats_json, session.report().to_json(summary), identity);
    return summary.exit_status;
}

}  // namespace memgov
