#include "run_command.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "bpf_tracker.h"
#include "build_controller.h"
#include "build_report.h"
#include "bytes.h"
#include "capabilities.h"
#include "gate_list.h"
#include "job_key.h"
#include "log.h"
#include "memory_probe.h"
#include "pressure.h"
#include "procfs_tracker.h"
#include "profile_store.h"
#include "profiles_command.h"
#include "remote_tracker.h"
#include "runner.h"
#include "text_file.h"

namespace memgov {
namespace {

using namespace std::chrono_literals;

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

// The CPUs the build may run on (its affinity, which taskset and cpusets narrow).
unsigned usable_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return std::thread::hardware_concurrency();
    return static_cast<unsigned>(CPU_COUNT(&set));
}

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

// What a pipe holds now, up to `bytes`, left in it for its reader: tee(2) copies without
// consuming, into a pipe of our own; nothing (never a wait) when it is empty.
std::string peek_pipe(int fd, std::size_t bytes) {
    int copy[2];
    if (pipe2(copy, O_CLOEXEC | O_NONBLOCK) != 0) return {};
    std::string head;
    ssize_t copied = tee(fd, copy[1], bytes, SPLICE_F_NONBLOCK);
    if (copied > 0) {
        head.resize(static_cast<std::size_t>(copied));
        ssize_t got = read(copy[0], head.data(), head.size());
        head.resize(got > 0 ? static_cast<std::size_t>(got) : 0);
    }
    close(copy[0]);
    close(copy[1]);
    return head;
}

// The first bytes of a regular file, or of what a pipe holds (a job's standard input), read
// as the build's user: a path in the build's argv must not make memgov read what that user
// cannot.
std::string file_head(const std::string& path, const std::optional<Identity>& build_user) {
    constexpr std::size_t head_bytes = 4096;
    FilesystemIdentity as_user(build_user);
    int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) return {};
    struct stat st {};
    std::string head;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        head.resize(head_bytes);
        ssize_t got = read(fd, head.data(), head.size());
        head.resize(got > 0 ? static_cast<std::size_t>(got) : 0);
    } else if (S_ISFIFO(st.st_mode)) {
        head = peek_pipe(fd, head_bytes);
    }
    close(fd);
    return head;
}

std::string process_cwd(pid_t pid) {
    std::error_code error;
    auto cwd = std::filesystem::read_symlink(fmt::format("/proc/{}/cwd", pid), error);
    return error ? std::string() : cwd.string();
}

// A terminal's signal reached every process of the foreground group; one sent to memgov
// alone is passed on. The build tool gets it first: make, hit while its children die, can
// lose track of them ("wait: No child processes") and exit 2 instead of dying of the signal.
// SIGTERM stops there (make and ninja pass it to their jobs themselves); SIGINT and SIGHUP
// go on to every process, as a terminal's would, so running compiles stop too.
void forward_signal(int signo, pid_t root, Tracker& tracker) {
    kill(root, signo);
    if (signo == SIGTERM) return;
    std::this_thread::sleep_for(20ms);
    tracker.signal_all(signo);
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
    auto kib = field_numbers(read_text_file("/proc/self/status").value_or(""), "VmHWM");  // "VmHWM: 1234 kB"
    return kib.empty() ? 0 : kib.front() * 1024;
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

// Turns the user's size strings into numbers; throws std::invalid_argument with the message.
ControllerSettings resolve_settings(const RunOptions& options, const MemoryReading& reading) {
    std::uint64_t ram =
        reading.cgroup ? std::min(reading.cgroup->limit_bytes, reading.total_bytes) : reading.total_bytes;
    auto size = [&](const std::string& option, const std::string& text) {
        auto bytes = parse_size(text, ram);
        if (!bytes && text != "0")
            throw std::invalid_argument(
                fmt::format("{} {}: expected a size such as 512M, 4G or 75% (of {}), greater than 0", option, text,
                            format_bytes(ram)));
        return bytes.value_or(0);
    };
    ControllerSettings settings{.gate = options.gate, .always_stop = options.always_stop};
    if (options.limit) settings.budget.limit_bytes = size("--limit", *options.limit);
    settings.budget.headroom_bytes = size("--headroom", options.headroom);
    settings.governor.emergency_floor_bytes = size("--emergency-floor", options.emergency_floor);
    settings.governor.backfill_window = options.backfill_window;
    settings.governor.queue_offset = options.nice * nice_step;
    settings.governor.max_running = options.max_running;
    settings.cold_estimate = size("--cold-estimate", options.cold_estimate);
    // A plan that comes true, or a reading that moves a little, must not make the net act.
    settings.governor.kept_free_bytes = settings.governor.emergency_floor_bytes;
    settings.governor.follow_growth_curves = options.follow_growth_curves;
    return settings;
}

// The daemon's tracker when memgov may not load BPF itself (or --socket says so); nullptr:
// load our own (whose failure then says what to do).
std::unique_ptr<RemoteTracker> through_daemon(const RunOptions& options, LineSink& say) {
    if (options.socket == "off" || (!options.socket_given && has_bpf_privilege())) return nullptr;
    std::string error;
    auto remote =
        RemoteTracker::connect(options.socket, error, [&say](const std::string& line) { say.write_line(line); });
    if (!remote && options.socket_given)
        throw std::runtime_error(fmt::format("cannot reach the memgov daemon at {}: is it running?", error));
    if (!remote) return nullptr;
    remote->set_gate(options.gate);
    remote->set_nice(options.nice);
    if (!options.extra_gates.empty())
        say.write_line(
            "memgov: warning: --gate is ignored through the daemon: its gate list is its own "
            "(memgov daemon --gate PROGRAM)");
    return remote;
}

// This build's entry in the host ledger; without one, says why (the build is then governed
// as if it were alone, which two builds at once are not).
// Through the daemon, at the default place, the entry is the daemon's to keep (it may write
// the ledger where the user may not).
std::unique_ptr<Ledger> open_ledger(const RunOptions& options, const std::optional<Identity>& identity,
                                    const MemoryProbe& probe, RemoteTracker* daemon) {
    if (options.ledger_dir == "off") return nullptr;
    LedgerBuild build{.pid = getpid(),
                      .uid = identity ? identity->uid : getuid(),
                      .command = joined(options.command),
                      .cgroup = probe.cgroup_dirs().empty() ? "" : probe.cgroup_dirs().front()};
    if (daemon && options.ledger_dir == HostLedger::default_dir) return daemon->ledger(build);
    try {
        return HostLedger::open(options.ledger_dir, build);
    } catch (const std::exception& error) {
        fmt::print(stderr,
                   "memgov: warning: other memgov runs on this host will not see this build's memory ({}): "
                   "pass --ledger DIR that every memgov user can write, or --ledger off if it runs alone\n",
                   error.what());
        return nullptr;
    }
}

}  // namespace

int run_command(const RunOptions& options) {
    auto started = Clock::now();
    auto identity = sudo_invoker();
    MemoryProbe probe;
    std::optional<Terminal> terminal;
    std::unique_ptr<FileSink> log_file;
    std::ofstream trace_file;
    std::optional<TraceWriter> trace;  // declared after its file: closed before it
    std::optional<Log> log;
    std::optional<ControllerSettings> settings;
    std::unique_ptr<Tracker> tracker;
    RemoteTracker* daemon = nullptr;  // the tracker, when it is the daemon's
    ProfileStore store(resolve_profiles_dir(options.profiles_dir), identity ? identity->uid : geteuid());
    try {
        settings = resolve_settings(options, probe.read());
        // (A daemon checks it again for its clients: it cannot take their word.)
        if (options.nice < 0 && getuid() != 0)
            throw std::invalid_argument(
                fmt::format("--nice {} puts this build's jobs ahead of other users': only root may", options.nice));
        terminal.emplace(STDERR_FILENO, choose_terminal(probe_terminal(STDERR_FILENO), options.bar));
        if (options.log_file) {
            FilesystemIdentity as_user(identity);
            log_file = std::make_unique<FileSink>(*options.log_file);
        }
        if (options.trace_file) {
            FilesystemIdentity as_user(identity);
            trace_file.open(*options.trace_file, std::ios::trunc);
            if (!trace_file)
                throw std::runtime_error(
                    fmt::format("cannot write the trace to {}: {}", *options.trace_file, std::strerror(errno)));
            trace.emplace(trace_file, started, "memgov -- " + joined(options.command), usable_cpus());
        }
        int verbosity = options.log_file ? std::max(options.verbosity, 1) : options.verbosity;
        log.emplace(verbosity, log_file ? static_cast<LineSink&>(*log_file) : *terminal);
        TrackerOptions tracker_options;
        tracker_options.gate_names = default_gate_names();
        tracker_options.gate_names.insert(tracker_options.gate_names.end(), options.extra_gates.begin(),
                                          options.extra_gates.end());
        tracker_options.pause_job_roots = options.gate;
        if (!may_signal_anyone()) tracker_options.signals_as = getuid();
        tracker_options.max_procs = options.max_procs;
        tracker_options.verbose_libbpf = options.verbosity >= 1;
        if (options.backend == Backend::procfs)
            tracker = std::make_unique<ProcfsTracker>(tracker_options, options.poll_interval);
        else if (auto remote = through_daemon(options, *terminal)) {
            daemon = remote.get();
            tracker = std::move(remote);
        } else
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
    if (probe.problem())
        fmt::print(stderr,
                   "memgov: warning: {}: its limit is not seen, only MemAvailable is; mount the memory cgroup "
                   "hierarchy where it shows memgov's cgroup\n",
                   *probe.problem());
    auto ledger = open_ledger(options, identity, probe, daemon);
    log->write(LogCategory::monitor, "profiles: {} ({} known keys); memory cgroup: {}; host ledger: {}",
               store.file().string(), store.profiles().size(),
               probe.cgroup_dirs().empty() ? "none" : probe.cgroup_dirs().front(), ledger ? ledger->where() : "none");

    install_signal_handlers();
    BuildController controller(
        *settings,
        {.tracker = *tracker,
         .store = store,
         .log = *log,
         .environment = {.read_memory = [&probe] { return probe.read(); },
                         .process_cwd = process_cwd,
                         .file_head = [&identity](const std::string& path) { return file_head(path, identity); }},
         .files_owner = identity,
         .detailed_report = options.stats_json.has_value(),
         .ledger = ledger.get(),
         .trace = trace ? &*trace : nullptr,
         .read_pressure = [&probe] {
             return read_pressure(probe.cgroup_v2() && !probe.cgroup_dirs().empty() ? probe.cgroup_dirs().front() : "");
         }});
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
            if (!from_terminal) forward_signal(signo, runner->pid(), *tracker);
            controller.interrupt(signo);
        }
    }
    while (tracker->poll(0ms, handler) > 0) {}
    controller.finish();
    for (const auto& warning : store.take_warnings()) fmt::print(stderr, "memgov: warning: {}\n", warning);

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
    trace.reset();  // ends what is still open and the JSON array
    return summary.exit_status;
}

}  // namespace memgov
