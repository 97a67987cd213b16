// The build controller (docs/DESIGN.md §6): tracker events and memory readings in, the
// governor's decisions applied to the build's jobs. One controller governs one build; all
// it needs of the machine comes through the Tracker and ControllerEnvironment, so tests
// drive it with a fake tracker on a fake clock (tests/unit/test_build_controller.cpp).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <ctime>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "build_report.h"
#include "governor.h"
#include "host_ledger.h"
#include "log.h"
#include "memory_probe.h"
#include "predictor.h"
#include "profile_store.h"
#include "runner.h"
#include "status_bar.h"
#include "trace_writer.h"
#include "tracker.h"

namespace memgov {

struct ControllerSettings {
    MemoryBudget budget;
    GovernorSettings governor;
    std::uint64_t cold_estimate = 0;
    bool gate = true;          // false: jobs are followed, never held
    bool always_stop = false;  // no kernel grant: every gated job waits for the controller
};

// What the controller asks of the machine besides the tracker (all required).
struct ControllerEnvironment {
    // CLOCK_MONOTONIC, the clock of the tracker's timestamps.
    std::function<Clock::time_point()> now = [] { return Clock::now(); };
    std::function<MemoryReading()> read_memory;
    // A process's working directory, which relative paths in its argv name (keys only).
    std::function<std::string(pid_t)> process_cwd;
    // A file's first bytes (a preprocessed source's line markers name the source: keys only).
    FileHead file_head;
    // Profiles are dated in wall-clock seconds.
    std::function<std::time_t()> wall_time = [] { return std::time(nullptr); };
};

struct ControllerTotals {
    std::size_t jobs_waited = 0;
    double seconds_waited = 0;
    std::size_t emergency_stops = 0;
    std::size_t repredictions = 0;
};

// How often memory is read. Fast (a job growing at 1 GB/s moves the numbers ~20 MB between
// two readings) only while it matters: jobs wait or are stopped, or memory is within a few
// floors of running out. New jobs never wait for a tick: their exec event wakes the loop.
std::chrono::milliseconds reading_interval(const GovernorView& view, std::uint64_t available_bytes,
                                           std::uint64_t emergency_floor_bytes);
// How often running jobs' peaks are sampled (a map lookup each, no file reads): the samples
// date their growth curves. With many jobs, less often (1 ms per job), though at least once
// a reading interval.
std::chrono::milliseconds tick_interval(const GovernorView& view, std::chrono::milliseconds reading);

class BuildController {
public:
    struct Wiring {
        Tracker& tracker;
        ProfileStore& store;  // loaded already
        Log& log;
        ControllerEnvironment environment;
        std::optional<Identity> files_owner;  // the profile store is written as this user
        bool detailed_report = false;         // keep every process for --stats-json
        // Other builds on this host publish here what they take and wait for, and so do
        // we (none: this build is the only one governed).
        Ledger* ledger = nullptr;
        // --trace: every job's states, decisions and readings, as they happen (none: no trace);
        // pressure is read for it, every half second (may be empty: no pressure counters).
        TraceWriter* trace = nullptr;
        std::function<std::optional<Pressure>()> read_pressure;
    };

    BuildController(ControllerSettings settings, Wiring wiring);

    void handle(const TrackerEvent& event);
    // Samples the jobs, reads memory when due, lets the governor decide, applies that.
    void tick();
    // The build is being interrupted (the signal has been passed on already): no job is held
    // any longer, so every job ends with the build instead of staying stopped.
    void interrupt(int signo);
    // The whole build was stopped (Ctrl-Z) and continued: what its running jobs took
    // meanwhile says nothing about their curves, nor about how long jobs run.
    void build_was_suspended();
    // Saves the profile store; the controller is done.
    void finish();

    std::chrono::milliseconds tick_interval() const;
    BarStatus bar_status();
    BuildReport& report() { return report_; }
    const Availability& availability() const { return availability_; }
    const ControllerTotals& totals() const { return totals_; }

private:
    // What the controller knows of a job besides the governor's view of it.
    struct JobInfo {
        std::string key;
        std::string tool;
        JobKind role = JobKind::other;
        Prediction prediction;
        bool repredicted = false;                     // it outgrew its prediction: the governor's new figure
        std::optional<Clock::time_point> started_at;  // admitted (or never held)
        // Its age along its curve leaves out the time the net kept it stopped: stopped, a job
        // neither grows nor gets on. Without this, every job stopped on a cold run had no
        // curve on the next run, and reserved its whole peak from its first instant. Its
        // curve's end, though, keeps that time: a job that waits on the clock (a sleep, a
        // timeout, I/O) gets on while stopped, and ends no sooner than it did (memstorm, warm:
        // a job stopped 430 ms in its hold on the cold run learned a 1002 ms curve, ran its
        // 1430 ms, and the jobs started into its memory were stopped).
        std::optional<Clock::time_point> stopped_at;
        Clock::duration time_stopped{};
        GrowthRecorder growth;
        // The whole build was suspended (Ctrl-Z), or the job was released to handle a signal:
        // its timing says nothing of its next run.
        bool suspended = false;
        bool oom_killed = false;  // one of its processes was
        // JobKey::pending: its source is awaited (read from its pipe every tick while it
        // waits), or known never to come (its pipe held no line marker); either way its key
        // names no file, and nothing is learned from it.
        enum class Source { named, awaited, unnamed } source = Source::named;
    };

    std::string working_directory(const ExecEvent& event) const;
    void on(const ExecEvent& event);
    void on(const ExitEvent& event);
    void on(const OomKillEvent& event);
    // Jobs whose source is awaited: their standard input's head, read again.
    void find_pending_keys();
    // The head of a job's standard input (a pipe: left unread for the job).
    std::string stdin_head(pid_t job) const;
    // How long such a job waits at its exec for its source to show, with room to start.
    static constexpr std::chrono::milliseconds pending_key_patience{500};
    // Jobs' use and memory read together: growth since a memory reading must not leave the
    // governor's imminent while that reading still counts it as free.
    void refresh();
    void sample_jobs(bool with_reading);
    void read_memory();
    void decide();
    void apply(const Decision& decision, Clock::time_point now);
    // A running job's age in ms, less the time the net kept it stopped.
    static std::uint32_t run_age_ms(const JobInfo& info, Clock::time_point now);
    std::chrono::milliseconds reading_interval() const;
    // Ends the kernel's grant; returns how many execs it started that we have not heard of.
    std::uint64_t take_back_grant();
    void regrant();
    void repredict_guesses();
    void forget_vanished(pid_t job);
    void log_reserved(pid_t job, const std::string& key, std::uint64_t needed_bytes);
    void save_store_if_due(Clock::time_point now);
    // Decisions are made within a turn of the host ledger, knowing what the other builds
    // take and wait for; what they changed is published before the turn ends.
    std::optional<LedgerTurn> take_turn();
    // What the governor may hand out, the other builds it competes with set accordingly.
    std::uint64_t governed_available();
    void publish();
    void trace_reading();
    void trace_decision(const Decision& decision, Clock::time_point now);

    ControllerSettings settings_;
    Tracker& tracker_;
    ProfileStore& store_;
    Log& log_;
    ControllerEnvironment environment_;
    std::optional<Identity> files_owner_;
    Ledger* ledger_;
    TraceWriter* trace_;
    std::function<std::optional<Pressure>()> read_pressure_;
    Governor governor_;
    Predictor predictor_;
    BuildReport report_;
    std::map<pid_t, JobInfo> jobs_;
    ControllerTotals totals_;
    Clock::time_point last_save_;
    bool draining_ = false;
    Availability availability_;
    Clock::time_point read_at_{};
    std::uint64_t granted_seen_ = 0;  // execs the kernel started under a grant, heard of
    std::uint64_t grant_bytes_ = 0;   // what the starts granted now may take
    bool ledger_busy_said_ = false;
    Clock::time_point pressure_read_at_{};
    std::uint64_t dropped_traced_ = 0;
    Clock::time_point jobs_published_at_{};
    std::vector<LedgerEntry> turn_entries_;  // the other builds, as this turn read them
    ProgressWatch progress_;                 // of those builds
    std::uint64_t machine_available_ = 0;    // MemAvailable less --headroom, at the last reading
    unsigned bar_frame_ = 0;
};

}  // namespace memgov
