#include "run_command.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <ctime>
#include <filesystem>
#include <map>
#include <thread>
#include <fstream>
#include <nlohmann/json.hpp>

#include "bpf_tracker.h"
#include "build_report.h"
#include "bytes.h"
#include "gate_list.h"
#include "governor.h"
#include "log.h"
#include "memory_probe.h"
#include "predictor.h"
#include "profile_store.h"
#include "procfs_tracker.h"
#include "profiles_command.h"
#include "runner.h"

namespace memgov {
namespace {

using namespace std::chrono_literals;

// How often memory is read. Fast (a job growing at 1 GB/s moves the numbers ~20 MB between
// two readings) only while it matters: jobs wait, or memory is within a few floors of
// running out. New jobs never wait for a tick: their exec event wakes the loop.
constexpr auto tight_reading = 20ms;
constexpr auto relaxed_reading = 100ms;
// Running jobs' peaks are sampled more often (a map lookup each, no file reads): the
// samples date their growth curves. With many jobs, less often (1 ms per job), though at
// least once a reading interval.
constexpr auto sample_tick = 20ms;
constexpr auto sample_cost_per_job = 1ms;
constexpr auto idle_tick = relaxed_reading;  // keeps a reading the gate's fast path can use
constexpr auto store_save_interval = 10s;
constexpr auto bar_interval = 300ms;

std::atomic<int> pending_signal{0};
std::atomic<bool> pending_signal_from_terminal{false};

void on_forwarded_signal(int signo, siginfo_t* info, void*) {
    pending_signal_from_terminal = info && info->si_code == SI_KERNEL;
    pending_signal = signo;
}

std::atomic<bool> pending_resize{false};
std::atomic<bool> pending_continue{false};

void on_child_signal(int) {}  // only to interrupt the poll when the build exits
void on_resize(int) { pending_resize = true; }
void on_continue(int) { pending_continue = true; }

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
    struct sigaction resize {};
    resize.sa_handler = on_resize;
    sigemptyset(&resize.sa_mask);
    sigaction(SIGWINCH, &resize, nullptr);
    struct sigaction resumed {};
    resumed.sa_handler = on_continue;
    sigemptyset(&resumed.sa_mask);
    sigaction(SIGCONT, &resumed, nullptr);
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

double seconds(Clock::duration duration) { return std::chrono::duration<double>(duration).count(); }

rusage own_usage() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return usage;
}

// The peak RSS of memgov's own address space. Not getrusage's ru_maxrss: Linux carries that
// across execve, so it would report the peak of whatever process forked memgov.
std::uint64_t own_peak_rss_bytes() {
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);)
        if (line.starts_with("VmHWM:")) return std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
    return 0;
}

double cpu_seconds(const rusage& usage) {
    auto to_seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
    return to_seconds(usage.ru_utime) + to_seconds(usage.ru_stime);
}

void write_stats(const std::string& path, const nlohmann::json& stats, const std::optional<Identity>& owner) {
    FilesystemIdentity as_user(owner);
    std::ofstream out(path, std::ios::trunc);
    if (!out) {
        fmt::print(stderr, "memgov: cannot write {}: {}\n", path, std::strerror(errno));
        return;
    }
    out << stats.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    out.close();
}

struct Settings {
    MemoryBudget budget;
    GovernorSettings governor;
    std::uint64_t cold_estimate = 0;
};

// Turns the user's size strings into numbers; throws std::invalid_argument with the message.
Settings resolve_settings(const RunOptions& options, const MemoryReading& reading) {
    std::uint64_t ram = reading.cgroup ? std::min(reading.cgroup->limit_bytes, reading.total_bytes)
                                       : reading.total_bytes;
    auto size = [&](const std::string& option, const std::string& text) {
        auto bytes = parse_size(text, ram);
        if (!bytes && text != "0")
            throw std::invalid_argument(fmt::format(
                "{} {}: expected a size such as 512M, 4G or 75% (of {}), greater than 0", option,
                text, format_bytes(ram)));
        return bytes.value_or(0);
    };
    Settings settings;
    if (options.limit) settings.budget.limit_bytes = size("--limit", *options.limit);
    settings.budget.headroom_bytes = size("--headroom", options.headroom);
    settings.governor.emergency_floor_bytes = size("--emergency-floor", options.emergency_floor);
    settings.governor.backfill_window = options.backfill_window;
    settings.governor.max_running = options.max_running;
    settings.cold_estimate = size("--cold-estimate", options.cold_estimate);
    // A plan that comes true, or a reading that moves a little, must not make the net act.
    settings.governor.kept_free_bytes = settings.governor.emergency_floor_bytes;
    settings.governor.follow_growth_curves = options.follow_growth_curves;
    return settings;
}

struct GovernorTotals {
    std::size_t jobs_waited = 0;
    double seconds_waited = 0;
    std::size_t emergency_stops = 0;
    std::size_t repredictions = 0;
};

// One run: tracker events and memory readings in, governor decisions applied.
class BuildController {
public:
    BuildController(const RunOptions& options, const Settings& settings, Tracker& tracker,
                    MemoryProbe& probe, ProfileStore& store, Log& log, std::optional<Identity> identity)
        : options_(options),
          identity_(std::move(identity)),
          settings_(settings),
          tracker_(tracker),
          probe_(probe),
          store_(store),
          log_(log),
          governor_(settings.governor),
          predictor_(settings.cold_estimate),
          report_(options.stats_json.has_value()) {
        for (const auto& [key, profile] : store_.profiles()) predictor_.learn(key, profile);
    }

    void handle(const TrackerEvent& event) {
        std::visit([this](const auto& e) { on(e); }, event);
    }

    // Samples the jobs, reads memory when due, lets the governor decide, applies that.
    void tick() {
        if (Clock::now() - read_at_ >= reading_interval()) refresh();
        else sample_jobs(false);
        decide();
        regrant();
        save_store_if_due(Clock::now());
    }

    // Jobs' use and memory read together: growth since a memory reading must not leave the
    // governor's imminent while that reading still counts it as free.
    void refresh() {
        sample_jobs(true);
        read_memory();
    }

    // Every running job's peak, for its growth curve; and for the governor with a reading.
    void sample_jobs(bool with_reading) {
        auto now = Clock::now();
        for (pid_t job : governor_.running_jobs()) {
            if (auto usage = tracker_.job_usage(job)) {
                if (with_reading) governor_.job_usage(job, usage->rss_bytes, usage->peak_bytes, now);
                auto it = jobs_.find(job);
                if (it == jobs_.end()) continue;
                JobInfo& info = it->second;
                predictor_.observe_running(info.key, info.tool, info.role,
                                           std::max(usage->peak_bytes, info.prediction.bytes));
                if (info.started_at) info.growth.observe(milliseconds_since(*info.started_at, now), usage->peak_bytes);
            } else {
                forget_vanished(job);
            }
        }
        for (pid_t job : governor_.waiting_jobs())
            if (!tracker_.job_usage(job)) forget_vanished(job);
    }

    void read_memory() {
        availability_ = available_for_build(probe_.read(), settings_.budget, tracker_.totals().rss_bytes);
        read_at_ = Clock::now();
    }

    void decide() {
        if (!options_.gate || draining_) return;
        auto now = Clock::now();
        for (const auto& decision : governor_.decide(availability_.bytes, now)) apply(decision, now);
    }

    // The build is being interrupted: held jobs get the signal too (a terminal's already
    // reached them) and are let go, so they end with the build instead of staying stopped.
    void interrupt(int signo, bool from_terminal, pid_t root) {
        draining_ = true;
        tracker_.take_back_grant();
        // A terminal's signal reached every process of the foreground group; one sent to
        // memgov alone is passed on. The build tool gets it first: make, hit while its
        // children die, can lose track of them ("wait: No child processes") and exit 2
        // instead of dying of the signal. SIGTERM stops there (make and ninja pass it to
        // their jobs themselves); SIGINT and SIGHUP go on to every process, as a terminal's
        // would, so running compiles stop too.
        if (!from_terminal) {
            kill(root, signo);
            if (signo != SIGTERM) {
                std::this_thread::sleep_for(20ms);
                tracker_.signal_all(signo);
            }
        }
        for (pid_t job : governor_.release_all(Clock::now())) {
            tracker_.resume_job(job);
            log_.write(LogCategory::signal, "PID={} released so it can handle {}", job, strsignal(signo));
        }
    }

    BarStatus bar_status() {
        auto totals = tracker_.totals();
        auto view = governor_.view();
        return BarStatus{
            .ceiling_bytes = availability_.ceiling,
            .build_bytes = totals.rss_bytes,
            .other_bytes = availability_.in_use > totals.rss_bytes ? availability_.in_use - totals.rss_bytes : 0,
            .imminent_bytes = view.imminent_bytes,
            .available_bytes = availability_.bytes,
            .running = view.running - view.emergency_stopped,
            .waiting = view.waiting,
            .stopped = view.emergency_stopped,
            .procs = totals.procs_live,
            .frame = bar_frame_++,
        };
    }

    std::chrono::milliseconds tick_interval() const {
        auto view = governor_.view();
        if (view.running + view.waiting == 0) return idle_tick;
        return std::min(std::max(sample_tick, sample_cost_per_job * static_cast<int>(view.running)),
                        reading_interval());
    }

    std::chrono::milliseconds reading_interval() const {
        auto view = governor_.view();
        bool tight = view.waiting > 0 || view.emergency_stopped > 0 ||
                     availability_.bytes < 4 * settings_.governor.emergency_floor_bytes + view.imminent_bytes;
        return tight ? tight_reading : relaxed_reading;
    }

    void finish() {
        if (settings_.governor.follow_growth_curves)
            log_.write(LogCategory::memory, "growth curves: jobs are expected to run up to {:.2f}x their learned "
                       "run time (measured on this build's last jobs)", governor_.curve_later());
        FilesystemIdentity as_user(identity_);
        if (!store_.save()) log_.write(LogCategory::memory, "profile store not saved");
        for (const auto& warning : store_.take_warnings()) fmt::print(stderr, "memgov: warning: {}\n", warning);
    }

    // The whole build was stopped (Ctrl-Z) for a while: what its running jobs took meanwhile
    // says nothing about their curves, nor about how long jobs run.
    void build_was_suspended() {
        governor_.jobs_interrupted();
        for (pid_t job : governor_.running_jobs())
            if (auto it = jobs_.find(job); it != jobs_.end()) it->second.emergency_stopped = true;
    }

    BuildReport& report() { return report_; }
    const Availability& availability() const { return availability_; }
    const GovernorTotals& totals() const { return totals_; }

private:
    struct JobInfo {
        std::string key;
        std::string tool;
        JobKind role = JobKind::other;
        Prediction prediction;
        std::optional<Clock::time_point> started_at;  // admitted (or never paused)
        GrowthRecorder growth;
        bool emergency_stopped = false;  // or suspended: its timing says nothing about the next run
    };

    static std::uint32_t milliseconds_since(Clock::time_point start, Clock::time_point now) {
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - start).count();
        return static_cast<std::uint32_t>(std::clamp<std::int64_t>(ms, 0, UINT32_MAX));
    }

    void on(const ExecEvent& event) {
        std::uint64_t handled = monotonic_ns();
        report_.on_exec(event, event.job_root ? process_cwd(event.pid) : std::string(), handled);  // cwd: keys only
        // The gate's fast paths: with room for the largest job known (and nobody queued
        // before it), which job this is does not matter. The kernel may have started it
        // already (a grant, see regrant()); otherwise it is continued here, before it is
        // identified and predicted. The reading may be a reading interval old (20 ms when
        // memory is tight): the emergency floor on top covers what can change meanwhile.
        if (event.granted) {
            ++granted_seen_;
            report_.on_admitted(event.pid, event.timestamp_ns, false);
        }
        bool admitted_at_once = event.job_root && event.paused && !draining_ &&
                                Clock::now() - read_at_ <= reading_interval() &&
                                governor_.startable_at_once(predictor_.largest(), settings_.governor.emergency_floor_bytes,
                                                            unannounced_grants(), availability_.bytes) > 0;
        if (admitted_at_once) {
            // Stamped before the signal: the woken job may run before we do again.
            std::uint64_t continued = monotonic_ns();
            tracker_.resume(event.pid);
            report_.on_admitted(event.pid, continued, false);
        }
        std::uint64_t imminent_before = admitted_at_once || event.granted ? governor_.view().imminent_bytes : 0;
        if (log_.enabled(LogCategory::debug))
            log_.write(LogCategory::debug, "exec PID={} PPID={} job={} {}{}", event.pid, event.ppid, event.job,
                       joined(event.argv), event.argv_truncated ? " …(argv truncated)" : "");
        if (!event.job_root) return;
        const JobRecord* record = report_.job(event.pid);
        JobInfo info{.key = record ? record->key.key : event.filename,
                     .tool = basename_of(event.filename),
                     .role = record ? record->key.kind : JobKind::other};
        info.prediction = predictor_.predict(info.key, info.tool, info.role);
        log_.write(LogCategory::debug, "New job PID={} {} ({} {}), predicted peak {} ({})", event.pid, info.key,
                   info.tool, kind_name(info.role), format_mb(info.prediction.bytes), describe(info.prediction.source));
        if (event.paused && draining_) tracker_.resume(event.pid);
        Reservation expected{info.prediction.bytes, info.prediction.curve,
                             info.prediction.source == PredictionSource::profile, info.prediction.ceiling_bytes};
        if (event.paused && !draining_ && !admitted_at_once) {
            governor_.job_waiting(event.pid, std::move(expected), Clock::now());
        } else {
            // A granted job started at its exec (the BPF clock is CLOCK_MONOTONIC, as is ours).
            auto started = event.granted ? Clock::time_point(std::chrono::nanoseconds(event.timestamp_ns)) : Clock::now();
            governor_.job_running(event.pid, std::move(expected), started);
            info.started_at = started;
        }
        if (admitted_at_once || event.granted) {
            log_.verdict(Verdict::ok, "PID={} {}: needs {}, have {} free ({} imminent) - OK", event.pid, info.key,
                         format_mb(info.prediction.bytes),
                         format_mb(availability_.bytes > imminent_before ? availability_.bytes - imminent_before : 0),
                         format_mb(imminent_before));
            log_reserved(event.pid, info.key, info.prediction.bytes);
        }
        jobs_[event.pid] = std::move(info);
        if (event.paused && !admitted_at_once) {
            // Admit at once when it fits. A reading younger than a tight tick is as good as a
            // new one (what was admitted since counts as imminent), and costs no file reads.
            if (Clock::now() - read_at_ > tight_reading) refresh();
            decide();
        }
        regrant();
    }

    // Ends the kernel's grant; returns how many execs it started that we have not heard of.
    std::uint64_t unannounced_grants() {
        std::uint64_t spent = tracker_.take_back_grant();
        return spent > granted_seen_ ? spent - granted_seen_ : 0;
    }

    // Lets the kernel start, without stopping them, as many gated jobs as there is room for
    // by the peak rule, each counted as the largest job known plus the emergency floor as a
    // margin for a reading up to a reading interval old. None while jobs wait or are stopped.
    void regrant() {
        std::uint64_t unannounced = unannounced_grants();
        if (!options_.gate || options_.always_stop || draining_ || Clock::now() - read_at_ > reading_interval()) return;
        tracker_.grant(static_cast<std::int64_t>(governor_.startable_at_once(
            predictor_.largest(), settings_.governor.emergency_floor_bytes, unannounced, availability_.bytes)));
    }

    void on(const ExitEvent& event) {
        report_.on_exit(event);
        if (event.pid != event.job) return;
        auto it = jobs_.find(event.job);
        if (it == jobs_.end()) return;
        const JobInfo& info = it->second;
        const JobRecord* record = report_.job(event.job);
        // Only a successful job shows what the file needs; a failed one (a syntax error
        // stops early, a kill stops anywhere) can only raise what is known.
        bool complete = WIFEXITED(event.wait_status) && WEXITSTATUS(event.wait_status) == 0 &&
                        !(record && record->oom_killed);
        std::uint64_t old_peak = store_.profiles().contains(info.key) ? store_.profiles().at(info.key).peak_bytes : 0;
        Observation seen{.tool = info.tool, .role = info.role, .peak_bytes = event.job_peak_bytes, .complete = complete};
        if (info.started_at && !info.emergency_stopped)
            seen.curve = info.growth.finish(milliseconds_since(*info.started_at, Clock::now()), event.job_peak_bytes);
        store_.record(info.key, seen, std::time(nullptr));
        predictor_.learn(info.key, store_.profiles().at(info.key));
        repredict_waiting();
        log_.write(LogCategory::memory, "PID={} job exited, final peak for {}: {} -> {}{}", event.pid,
                   info.key, format_mb(old_peak), format_mb(event.job_peak_bytes),
                   complete ? "" : " (did not finish: kept as a lower bound)");
        if (auto waited = governor_.waited(event.job, Clock::now()))
            log_.write(LogCategory::memory, "Released {} reservation for {} (job completed) (PID={})",
                       format_mb(std::max(info.prediction.bytes, event.job_peak_bytes)), info.key, event.pid);
        governor_.job_exited(event.job, Clock::now());
        jobs_.erase(it);
    }

    // Waiting jobs guessed from their peers are guessed again from what the build now knows:
    // the first jobs wait at --cold-estimate only until a peer has ended.
    void repredict_waiting() {
        for (pid_t pid : governor_.waiting_jobs()) {
            auto it = jobs_.find(pid);
            if (it == jobs_.end() || it->second.prediction.source == PredictionSource::profile) continue;
            JobInfo& info = it->second;
            Prediction now = predictor_.predict(info.key, info.tool, info.role);
            if (now.bytes == info.prediction.bytes && now.source == info.prediction.source) continue;
            log_.write(LogCategory::predict, "PID={} {}: waiting, predicted again from its peers: {} -> {} ({})", pid,
                       info.key, format_mb(info.prediction.bytes), format_mb(now.bytes), describe(now.source));
            info.prediction = now;
            governor_.job_expected(pid, {now.bytes, now.curve, now.source == PredictionSource::profile,
                                         now.ceiling_bytes});
        }
    }

    // The kernel dropped a job's last process, but its exit record has not come (or was
    // lost): its reservation must not be held forever.
    void forget_vanished(pid_t job) {
        log_.write(LogCategory::memory, "PID={} job is gone (no exit record yet): released its reservation", job);
        governor_.job_exited(job, Clock::now());
        if (auto it = jobs_.find(job); it != jobs_.end()) predictor_.forget_running(it->second.key);
    }

    void on(const OomKillEvent& event) {
        report_.on_oom_kill(event);
        log_.write(LogCategory::signal, "PID={} ({}) killed by the OOM killer at {} (peak {})",
                   event.pid, event.comm, format_mb(event.rss_bytes), format_mb(event.peak_rss_bytes));
    }

    void apply(const Decision& decision, Clock::time_point now) {
        auto it = jobs_.find(decision.job);
        std::string key = it == jobs_.end() ? std::to_string(decision.job) : it->second.key;
        auto free_text = [&] {
            return fmt::format("{} {} free ({} imminent)",
                               decision.needed_bytes <= static_cast<std::uint64_t>(std::max<std::int64_t>(decision.effective_free_bytes, 0)) ? "have" : "only",
                               decision.effective_free_bytes < 0 ? "-" + format_mb(static_cast<std::uint64_t>(-decision.effective_free_bytes))
                                                                 : format_mb(static_cast<std::uint64_t>(decision.effective_free_bytes)),
                               format_mb(decision.imminent_bytes));
        };
        switch (decision.kind) {
            case DecisionKind::admit: {
                std::uint64_t continued = monotonic_ns();  // before the signal, as above
                tracker_.resume(decision.job);
                if (it != jobs_.end()) it->second.started_at = now;
                report_.on_admitted(decision.job, continued, decision.waited || decision.forced);
                double waited = seconds(governor_.waited(decision.job, now).value_or(Clock::duration{}));
                if (decision.waited || decision.forced) {
                    ++totals_.jobs_waited;
                    totals_.seconds_waited += waited;
                }
                Verdict colour = decision.forced || decision.waited ? Verdict::proceeding : Verdict::ok;
                std::string verdict = decision.stalled ? fmt::format("PROCEEDING (no running job changed for {}s: "
                                                                     "they may be waiting for it)",
                                                                     settings_.governor.stall_timeout.count() / 1000)
                                      : decision.forced ? fmt::format("PROCEEDING (nothing else running, waited {:.1f}s)", waited)
                                      : decision.waited ? fmt::format("PROCEEDING (waited {:.1f}s)", waited)
                                                        : std::string("OK");
                if (decision.backfill) verdict += " (passes a larger waiting job)";
                if (decision.on_curve) verdict += " (its growth meets memory running jobs free as they end)";
                log_.verdict(colour, "PID={} {}: needs {}, {} - {}", decision.job, key,
                             format_mb(decision.needed_bytes), free_text(), verdict);
                log_reserved(decision.job, key, decision.needed_bytes);
                break;
            }
            case DecisionKind::keep_waiting:
                log_.verdict(Verdict::waiting, "PID={} {}: needs {}, {} - WAITING", decision.job, key,
                             format_mb(decision.needed_bytes), free_text());
                break;
            case DecisionKind::emergency_stop:
                ++totals_.emergency_stops;
                tracker_.stop_job(decision.job);
                if (it != jobs_.end()) it->second.emergency_stopped = true;
                if (decision.below_floor)
                    log_.write(LogCategory::memory, "EMERGENCY: only {} available (floor {}): stopped PID={} {} at {} "
                               "(youngest growing job) until memory returns",
                               format_mb(availability_.bytes), format_mb(settings_.governor.emergency_floor_bytes),
                               decision.job, key, format_mb(decision.current_bytes));
                else
                    log_.write(LogCategory::memory, "EMERGENCY: running jobs still need {} more, {} available: "
                               "stopped PID={} {} at {} (youngest growing job) so the older ones can finish",
                               format_mb(static_cast<std::uint64_t>(std::max<std::int64_t>(
                                   static_cast<std::int64_t>(availability_.bytes) - decision.effective_free_bytes, 0))),
                               format_mb(availability_.bytes), decision.job, key, format_mb(decision.current_bytes));
                break;
            case DecisionKind::repredict:
                ++totals_.repredictions;
                if (it != jobs_.end()) it->second.prediction.bytes = decision.needed_bytes;
                log_.verdict(Verdict::waiting, "PID={} {}: at {} growing {}/s, past its prediction of {}: "
                             "re-predicted at {}", decision.job, key, format_mb(decision.current_bytes),
                             format_mb(decision.growth_bytes_per_second), format_mb(decision.previous_bytes),
                             format_mb(decision.needed_bytes));
                break;
            case DecisionKind::emergency_resume:
                tracker_.resume_job(decision.job);
                log_.write(LogCategory::memory, "Memory is back ({} free after imminent): resumed PID={} {}",
                           format_mb(static_cast<std::uint64_t>(std::max<std::int64_t>(decision.effective_free_bytes, 0))),
                           decision.job, key);
                break;
        }
    }

    void log_reserved(pid_t job, const std::string& key, std::uint64_t needed_bytes) {
        auto view = governor_.view();
        log_.write(LogCategory::memory, "Reserved memory: {} -> {} (+{}) for {} (PID={})",
                   format_mb(view.reserved_bytes - needed_bytes), format_mb(view.reserved_bytes),
                   format_mb(needed_bytes), key, job);
    }

    void save_store_if_due(Clock::time_point now) {
        if (!store_.dirty() || now - last_save_ < store_save_interval) return;
        last_save_ = now;
        FilesystemIdentity as_user(identity_);
        store_.save();
    }

    const RunOptions& options_;
    std::optional<Identity> identity_;  // files are written as this user
    const Settings& settings_;
    Tracker& tracker_;
    MemoryProbe& probe_;
    ProfileStore& store_;
    Log& log_;
    Governor governor_;
    Predictor predictor_;
    BuildReport report_;
    std::map<pid_t, JobInfo> jobs_;
    GovernorTotals totals_;
    Clock::time_point last_save_ = Clock::now();
    bool draining_ = false;
    Availability availability_;
    Clock::time_point read_at_{};
    std::uint64_t granted_seen_ = 0;  // execs the kernel started under a grant, heard of
    unsigned bar_frame_ = 0;
};

}  // namespace

int run_command(const RunOptions& options) {
    auto started = Clock::now();
    auto identity = sudo_invoker();
    MemoryProbe probe;
    std::optional<Terminal> terminal;
    std::unique_ptr<FileSink> log_file;
    std::optional<Log> log;
    std::optional<Settings> settings;
    std::unique_ptr<Tracker> tracker;
    ProfileStore store(resolve_profiles_dir(options.profiles_dir), identity ? identity->uid : geteuid());
    try {
        settings = resolve_settings(options, probe.read());
        terminal.emplace(STDERR_FILENO, choose_terminal(probe_terminal(STDERR_FILENO), options.bar));
        if (options.log_file) {
            FilesystemIdentity as_user(identity);
            log_file = std::make_unique<FileSink>(*options.log_file);
        }
        int verbosity = options.log_file ? std::max(options.verbosity, 1) : options.verbosity;
        log.emplace(verbosity, log_file ? static_cast<LineSink&>(*log_file) : *terminal);
        TrackerOptions tracker_options;
        tracker_options.gate_names = default_gate_names();
        tracker_options.gate_names.insert(tracker_options.gate_names.end(),
                                          options.extra_gates.begin(), options.extra_gates.end());
        tracker_options.pause_job_roots = options.gate;
        tracker_options.max_procs = options.max_procs;
        tracker_options.verbose_libbpf = options.verbosity >= 1;
        if (options.backend == Backend::procfs)
            tracker = std::make_unique<ProcfsTracker>(tracker_options, options.poll_interval);
        else
            tracker = BpfTracker::open(tracker_options);
    } catch (const std::invalid_argument& error) {
        fmt::print(stderr, "memgov: {}\n", error.what());
        return 2;
    } catch (const std::exception& error) {
        fmt::print(stderr, "memgov: {}\n", error.what());
        return memgov_failure_status;
    }
    {
        FilesystemIdentity as_user(identity);
        store.load();
    }
    for (const auto& warning : store.take_warnings()) fmt::print(stderr, "memgov: warning: {}\n", warning);
    log->write(LogCategory::monitor, "profiles: {} ({} known keys); memory cgroup: {}", store.file().string(),
               store.profiles().size(), probe.cgroup_dirs().empty() ? "none" : probe.cgroup_dirs().front());

    install_signal_handlers();
    BuildController controller(options, *settings, *tracker, probe, store, *log, identity);
    Tracker::EventHandler handler = [&](const TrackerEvent& event) { controller.handle(event); };

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

    auto next_bar = Clock::now();
    auto last_tick = Clock::now();
    auto next_tick = last_tick;
    while (!runner->try_wait()) {
        // Events wake the loop at once (and admit new jobs themselves); memory is read on
        // the tick's schedule only, not after every batch of events.
        auto until_tick = std::chrono::ceil<std::chrono::milliseconds>(next_tick - Clock::now());  // never spin
        tracker->poll(std::max(until_tick, 0ms), handler);
        next_tick = std::min(next_tick, last_tick + controller.tick_interval());  // a job may have started
        if (Clock::now() >= next_tick) {
            controller.tick();
            last_tick = Clock::now();
            next_tick = last_tick + controller.tick_interval();
        }
        if (pending_resize.exchange(false)) terminal->resized();
        if (pending_continue.exchange(false)) {
            // Ctrl-Z then fg continued the whole process group, held jobs included.
            tracker->restop_held();
            controller.build_was_suspended();
            log->write(LogCategory::signal, "continued (fg): held jobs stopped again");
            terminal->resized();  // the shell may have drawn over the bar
        }
        if (terminal->bar() && Clock::now() >= next_bar) {
            terminal->show(controller.bar_status());
            next_bar = Clock::now() + bar_interval;
        }
        if (int signo = pending_signal.exchange(0)) {
            bool from_terminal = pending_signal_from_terminal;
            log->write(LogCategory::signal, "received {} ({}), {}", strsignal(signo),
                       from_terminal ? "from the terminal" : "sent to memgov",
                       from_terminal ? "the build got it too" : "forwarding it to the build");
            controller.interrupt(signo, from_terminal, runner->pid());
        }
    }
    while (tracker->poll(0ms, handler) > 0) {
    }
    controller.finish();

    const auto& governed = controller.totals();
    BuildSummary summary{
        .command = options.command,
        .exit_status = *runner->try_wait(),
        .wall_seconds = seconds(Clock::now() - started),
        .totals = tracker->totals(),
        .jobs_waited = governed.jobs_waited,
        .seconds_waited = governed.seconds_waited,
        .emergency_stops = governed.emergency_stops,
        .repredictions = governed.repredictions,
        .ceiling_bytes = controller.availability().ceiling,
        .bound_by = controller.availability().bound_by,
        .backend = options.backend == Backend::procfs ? "procfs" : "bpf",
        .controller_cpu_seconds = cpu_seconds(own_usage()),
        .controller_max_rss_bytes = own_peak_rss_bytes(),
    };
    log->write(LogCategory::exit, "build exited with status {}", summary.exit_status);
    std::uint64_t dropped_lines = terminal->dropped_lines();
    log.reset();
    terminal.reset();  // flushes the log and takes the bar off the screen before the summary
    if (dropped_lines)
        fmt::print(stderr, "memgov: warning: {} log lines dropped: the terminal did not keep up (use --log FILE)\n",
                   dropped_lines);
    if (!options.quiet) fmt::print(stderr, "{}", controller.report().summary_text(summary, options.top_jobs));
    if (options.stats_json) write_stats(*options.stats_json, controller.report().to_json(summary), identity);
    return summary.exit_status;
}

}  // namespace memgov
