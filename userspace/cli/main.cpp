// memgov: runs a build at full parallelism without letting it run out of memory.
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "daemon_command.h"
#include "profiles_command.h"
#include "report_command.h"
#include "run_command.h"
#include "status_command.h"
#include "system_check.h"

namespace {

constexpr const char* examples = R"(
EXAMPLES
  sudo memgov -- make -j64
      Govern a parallel make: jobs start when their learned peak fits.
  sudo memgov --limit 75% -v -- ninja
      Let the build use at most 75% of RAM (or of the cgroup limit); log every decision.
  sudo memgov --no-gate --stats-json stats.json -- make -j8
      Only measure: every process's and job's peak memory, as JSON.
  sudo memgov --trace build.trace.json -- make -j8
      Record the build for ui.perfetto.dev: when each job waited, ran or was stopped, and why.
  memgov report build.trace.json
      Why it took as long as it did: parallelism, time held for memory, longest jobs, OOM kills.
  sudo memgov --log memgov.log -- cmake --build build -j16
      Write the decision log to a file, keep the terminal for the build and the bar.
  memgov profiles list --sort peak -n 20
      The 20 files that needed the most memory.
  memgov profiles export team.json
      Share learned peaks; others run: memgov profiles import team.json
  memgov check
      Can this machine run memgov, and if not, what to do.
  sudo memgov status
      The builds governed on this host: their jobs (running, waiting, stopped) and memory;
      --watch follows them, --json is for scripts.

Exit status: the command's (128+N if a signal N killed it); 125 if memgov itself failed;
127 if the command was not found; 2 for a usage error.)";

int run_check(bool verbose, const std::string& socket_path) {
    auto results = memgov::check_system(verbose, socket_path);
    bool all_ok = true;
    for (const auto& result : results) {
        fmt::print("{:<6}{:<15}{}\n", result.ok ? "ok" : "FAIL", result.what, result.detail);
        if (!result.ok) fmt::print("{:<21}fix: {}\n", "", result.fix);
        all_ok = all_ok && result.ok;
    }
    fmt::print("{}\n", all_ok ? "memgov can run here." : "memgov cannot run here yet: see the fixes above.");
    return all_ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "memgov: runs a parallel build without letting it run out of memory\n\n"
        "  memgov [run] [OPTIONS] [--] COMMAND [ARGS...]\n"
        "  memgov check | status | report FILE | daemon | profiles ... | version\n",
        "memgov"};
    app.footer(examples);
    app.set_version_flag("--version", MEMGOV_VERSION);
    app.require_subcommand(0, 1);

    memgov::RunOptions run;
    bool no_gate = false;
    app.add_flag("--no-gate", no_gate, "Never stop jobs at exec: only measure (jobs are still recognised and reported)")
        ->envname("MEMGOV_NO_GATE");
    app.add_option("--gate", run.extra_gates, "Also start a job at exec of this program (basename; repeatable)")
        ->envname("MEMGOV_GATE")
        ->delimiter(',');
    app.add_option("--limit", run.limit,
                   "Memory the build may use: a size (8G) or a share of RAM or of the cgroup limit (75%)")
        ->envname("MEMGOV_LIMIT");
    app.add_option("--headroom", run.headroom, "Memory always left free for everything else (default 0)")
        ->envname("MEMGOV_HEADROOM");
    app.add_option("--emergency-floor", run.emergency_floor,
                   "Admission keeps this much free; below it, or when running jobs' remaining growth exceeds what "
                   "is available, stop the growing job that holds least until memory returns")
        ->envname("MEMGOV_EMERGENCY_FLOOR")
        ->capture_default_str();
    app.add_option("--cold-estimate", run.cold_estimate,
                   "Predicted peak of a job when nothing of its role (compile, link, LTO, other) is known yet")
        ->envname("MEMGOV_COLD_ESTIMATE")
        ->capture_default_str();
    app.add_option("--profiles-dir", run.profiles_dir,
                   "Where learned peaks are kept (default: the invoking user's ~/.cache/memgov)")
        ->envname("MEMGOV_PROFILES_DIR");
    app.add_option("--ledger", run.ledger_dir,
                   "Where the memgov runs on this host publish what their builds are about to take, so that "
                   "concurrent builds do not each count free memory as theirs (off: this build is alone)")
        ->envname("MEMGOV_LEDGER")
        ->capture_default_str();
    auto* socket = app.add_option("--socket", run.socket,
                                  "The memgov daemon's socket: a build is followed through it when memgov may not "
                                  "load BPF itself (given: always; off: never)")
                       ->envname("MEMGOV_SOCKET")
                       ->capture_default_str();
    app.add_option("--jobs", run.max_running,
                   "At most N jobs admitted at once, biggest first (with a large -j: a deep queue)")
        ->envname("MEMGOV_JOBS");
    app.add_flag("--always-stop", run.always_stop,
                 "Stop every gated job at exec until memgov admits it, even when memory has room for any job "
                 "(by default the kernel lets those start at once)")
        ->envname("MEMGOV_ALWAYS_STOP");
    bool no_curves = false;
    app.add_flag("--no-curves", no_curves,
                 "Reserve every job's whole predicted peak from its start, ignoring the growth curves "
                 "learned for it (a job then never starts on memory that running jobs are about to free)")
        ->envname("MEMGOV_NO_CURVES");
    std::int64_t backfill_ms = run.backfill_window.count();
    app.add_option("--backfill-window", backfill_ms,
                   "Milliseconds a waiting job may be passed by smaller jobs before it blocks the queue")
        ->envname("MEMGOV_BACKFILL_WINDOW")
        ->check(CLI::Range(std::int64_t{0}, std::int64_t{86'400'000}))
        ->capture_default_str();
    app.add_option("--nice", run.nice,
                   "Priority among builds governed on the same memory, as nice(1) counts: each step makes this "
                   "build's waiting jobs queue 10 s later than other builds' (negative: sooner; root only)")
        ->envname("MEMGOV_NICE")
        ->check(CLI::Range(memgov::lowest_nice, memgov::highest_nice))
        ->capture_default_str();
    std::map<std::string, memgov::Backend> backends{{"bpf", memgov::Backend::bpf}, {"procfs", memgov::Backend::procfs}};
    app.add_option("--backend", run.backend,
                   "bpf (exact, needs root or CAP_BPF+CAP_PERFMON) or procfs (polls /proc: no privilege, "
                   "misses short peaks, stops jobs up to --poll-interval late)")
        ->envname("MEMGOV_BACKEND")
        ->transform(CLI::CheckedTransformer(backends, CLI::ignore_case));
    std::int64_t poll_ms = run.poll_interval.count();
    app.add_option("--poll-interval", poll_ms, "Milliseconds between /proc scans (procfs backend)")
        ->envname("MEMGOV_POLL_INTERVAL")
        ->check(CLI::Range(std::int64_t{1}, std::int64_t{60'000}))
        ->capture_default_str();
    app.add_option("--stats-json", run.stats_json, "Write every process's and job's peak memory to FILE as JSON")
        ->envname("MEMGOV_STATS_JSON");
    app.add_option("--trace", run.trace_file,
                   "Write a trace of the build to FILE as it runs (Chrome Trace Event JSON: open it in "
                   "ui.perfetto.dev): each job's waiting, running and stopped time, decisions, memory, pressure")
        ->envname("MEMGOV_TRACE");
    app.add_option("--log", run.log_file, "Write the log to FILE instead of stderr (implies -v)")
        ->envname("MEMGOV_LOG");
    app.add_flag("-v,--verbose", run.verbosity,
                 "Log decisions ([MEMORY] [PREDICT] …) and libbpf's warnings; twice adds [DEBUG]")
        ->envname("MEMGOV_VERBOSE");
    app.add_flag("-q,--quiet", run.quiet, "No end-of-run summary")->envname("MEMGOV_QUIET");
    std::map<std::string, memgov::BarMode> bar_modes{
        {"auto", memgov::BarMode::automatic}, {"always", memgov::BarMode::always}, {"never", memgov::BarMode::never}};
    app.add_option("--bar", run.bar,
                   "Memory bar on the terminal's last line: auto (a TTY whose TERM is not dumb), always, never")
        ->envname("MEMGOV_BAR")
        ->transform(CLI::CheckedTransformer(bar_modes, CLI::ignore_case));
    app.add_option("--top", run.top_jobs, "Jobs listed in the summary")
        ->envname("MEMGOV_TOP")
        ->check(CLI::Range(0, 1000));
    app.add_option("--max-procs", run.max_procs,
                   "Processes tracked at once; more are counted and reported, not tracked")
        ->envname("MEMGOV_MAX_PROCS")
        ->check(CLI::Range(64, 4'194'304));
    // Everything from the command's name on (or after --) is the command's, never memgov's.
    app.prefix_command();

    auto* check = app.add_subcommand("check", "Tell whether this machine can run memgov, and how to fix it");
    bool check_verbose = false;
    check->add_flag("-v,--verbose", check_verbose, "Show libbpf's messages");
    auto* version = app.add_subcommand("version", "Print memgov's version");
    memgov::ReportOptions report_options;
    auto* report = app.add_subcommand("report", "Why a build was as slow as it was, from its --trace or --stats-json");
    report->add_option("file", report_options.file, "A --trace file or --stats-json output")->required();
    report->add_flag("--json", report_options.json, "The findings as one JSON object");
    report->add_option("--top", report_options.top, "Longest jobs listed")->check(CLI::Range(0, 1000));
    report->add_option("--html", report_options.html,
                       "Also write one self-contained page: the jobs' timeline over their stacked memory");
    report
        ->add_option("--limit", report_options.limits,
                     "What if: replay the traced build under these memory limits (1300M,2G or 50%: of the recorded)")
        ->delimiter(',');
    report->add_option("--jobs", report_options.jobs, "What if: replay it at these -j (e.g. 4,8,16)")
        ->delimiter(',')
        ->check(CLI::Range(1, 100000));
    report->add_option("--cpus", report_options.cpus, "What if: replay it on this many CPUs")
        ->delimiter(',')
        ->check(CLI::Range(0.1, 100000.0));
    memgov::DaemonOptions daemon_options;
    auto* daemon = app.add_subcommand(
        "daemon", "The host service: follows the builds of memgov runs without BPF privilege (CAP_BPF, CAP_PERFMON)");
    daemon->add_option("--socket", daemon_options.socket_path, "Where to listen")
        ->envname("MEMGOV_SOCKET")
        ->capture_default_str();
    daemon->add_option("--max-clients", daemon_options.max_clients, "Clients connected at once")
        ->check(CLI::Range(1, 65536))
        ->capture_default_str();
    daemon->add_option("--max-builds-per-user", daemon_options.max_builds_per_user, "Builds one user may have followed")
        ->check(CLI::Range(1, 1024))
        ->capture_default_str();
    daemon->add_option("--gate", daemon_options.extra_gates, "Another program whose exec starts a job (repeatable)");
    daemon
        ->add_option("--ledger", daemon_options.ledger_dir,
                     "The host ledger, where the daemon keeps its clients' entries (off: none; each is alone)")
        ->capture_default_str();
    daemon->add_flag("-v,--verbose", daemon_options.verbosity, "Log every client, and libbpf's messages");
    memgov::StatusOptions status_options;
    auto* status = app.add_subcommand("status", "The builds governed on this host, their jobs and memory");
    status->add_flag("--json", status_options.json, "One JSON object (with --watch: one per line)");
    status->add_flag("--watch", status_options.watch, "Show it again every second until interrupted");
    status->add_flag("--prometheus", status_options.prometheus, "In Prometheus's text exposition format");
    status->add_option("--metrics-file", status_options.metrics_file,
                       "Write it in Prometheus's format to FILE, atomically (node_exporter's textfile collector)");
    status->add_option("--ledger", status_options.ledger_dir, "The host ledger to read")
        ->envname("MEMGOV_LEDGER")
        ->capture_default_str();

    memgov::ProfilesOptions profiles_options;
    auto* profiles = app.add_subcommand("profiles", "List, show, forget, export or import learned peaks");
    profiles->require_subcommand(1);
    profiles->fallthrough();  // --profiles-dir may come before or after `profiles`
    std::map<std::string, memgov::ProfileSort> sorts{{"peak", memgov::ProfileSort::peak},
                                                     {"key", memgov::ProfileSort::key},
                                                     {"last-seen", memgov::ProfileSort::last_seen}};
    auto* list = profiles->add_subcommand("list", "One line per key: peak, samples, last seen, tool");
    list->add_option("--sort", profiles_options.sort, "peak (largest first), key, or last-seen (newest first)")
        ->transform(CLI::CheckedTransformer(sorts, CLI::ignore_case));
    list->add_option("-n,--limit", profiles_options.limit, "At most N lines");
    auto* show = profiles->add_subcommand("show", "Everything known about one key");
    show->add_option("key", profiles_options.key, "Absolute source path (or link output)")->required();
    auto* forget = profiles->add_subcommand("forget", "Forget a key, or every key not seen for a while");
    auto* forget_key = forget->add_option("key", profiles_options.key, "The key to forget");
    auto* older = forget->add_option("--older-than", profiles_options.older_than,
                                     "Forget keys last seen longer ago than AGE (90s, 30m, 12h, 7d, 2w)");
    forget_key->excludes(older);
    auto* exporting = profiles->add_subcommand("export", "Write the store as JSON (to share with a team)");
    exporting->add_option("file", profiles_options.file, "Where to write (default: standard output)");
    auto* importing = profiles->add_subcommand("import", "Merge a JSON export; newer profiles win");
    importing->add_option("file", profiles_options.file, "The export to read (- for standard input)")->required();

    // memgov's own options stop at the first "--" (or at the command's name); the rest is the
    // command's, even when it looks like a subcommand or an option.
    std::vector<std::string> args(argv + 1, argv + argc);
    if (!args.empty() && args.front() == "run") args.erase(args.begin());  // `run` is the default
    auto separator = std::find(args.begin(), args.end(), std::string("--"));
    std::vector<std::string> after_separator;
    if (separator != args.end()) {
        after_separator.assign(separator, args.end());
        args.erase(separator, args.end());
    }
    try {
        std::reverse(args.begin(), args.end());  // CLI11 takes its vector last argument first
        app.parse(args);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        fmt::print(stderr, "memgov: {} (see memgov --help)\n", e.what());
        return 2;
    }

    run.socket_given = socket->count() > 0 || std::getenv("MEMGOV_SOCKET");
    if (*check) return run_check(check_verbose, run.socket);
    if (*daemon) return memgov::daemon_command(daemon_options);
    if (*report) return memgov::report_command(report_options);
    if (*status) return memgov::status_command(status_options);
    if (*profiles) {
        profiles_options.profiles_dir = run.profiles_dir;
        if (*list) return memgov::profiles_list(profiles_options);
        if (*show) return memgov::profiles_show(profiles_options);
        if (*forget) {
            if (profiles_options.key.empty() && !profiles_options.older_than) {
                fmt::print(stderr, "memgov: profiles forget needs a KEY or --older-than AGE\n");
                return 2;
            }
            return memgov::profiles_forget(profiles_options);
        }
        if (*exporting) return memgov::profiles_export(profiles_options);
        if (*importing) return memgov::profiles_import(profiles_options);
    }
    if (*version) {
        fmt::print("memgov {}\n", MEMGOV_VERSION);
        return 0;
    }
    run.command = app.remaining();
    if (!run.command.empty() && run.command.front().starts_with("-")) {
        fmt::print(stderr, "memgov: unknown option {} (see memgov --help)\n", run.command.front());
        return 2;
    }
    if (!after_separator.empty()) {
        // "memgov -v -- make" drops the separator; in "memgov make -- x" it is make's.
        auto from = run.command.empty() ? after_separator.begin() + 1 : after_separator.begin();
        run.command.insert(run.command.end(), from, after_separator.end());
    }
    if (run.command.empty()) {
        fmt::print(stderr, "memgov: no command given: memgov [options] -- command... (see memgov --help)\n");
        return 2;
    }
    run.gate = !no_gate;
    run.backfill_window = std::chrono::milliseconds(backfill_ms);
    run.follow_growth_curves = !no_curves;
    run.poll_interval = std::chrono::milliseconds(poll_ms);
    return memgov::run_command(run);
}
