// The build controller driven by a fake tracker on a fake clock: what it does with events,
// readings and the governor's decisions (memory in MiB for readability).
#include <doctest/doctest.h>

#include <signal.h>

#include "decision_text.h"
#include "fake_build.h"

using namespace fake_build;

TEST_CASE("controller: a job that does not fit is held at exec, admitted when a running one exits, and learned") {
    Build build(settings_for(1024, 512));
    build.exec(100, "a.c");
    CHECK(build.resumed(100));  // nothing running: the first job always starts
    build.exec(101, "b.c");
    CHECK_FALSE(build.resumed(101));  // 512 + 512 predicted and 64 kept free do not fit in 1024
    CHECK(build.log_lines.has(
        "PID=101 /src/b.c: needs 512MB and 64MB kept free, only 512MB free (512MB imminent) - WAITING"));

    build.use(100, 100);
    build.run_for(100ms);
    build.use(100, 300);
    build.run_for(100ms);
    CHECK_FALSE(build.resumed(101));
    build.exit(100);
    build.run_for(20ms);
    CHECK(build.resumed(101));
    CHECK(build.log_lines.has("PID=101 /src/b.c: needs 512MB"));
    CHECK(build.log_lines.has("PROCEEDING (waited 0.2s)"));
    CHECK(build.controller.totals().jobs_waited == 1);
    CHECK(build.controller.totals().seconds_waited == doctest::Approx(0.22));

    const Profile& learned = build.only_profile();
    CHECK(learned.peak_bytes == 300 * MiB);
    CHECK(learned.tool == "cc");
    CHECK(learned.role == JobKind::compile);
    CHECK(learned.curve.has_value());
    CHECK(learned.last_seen == 1'800'000'000);
}

TEST_CASE("controller: an icecream worker's compile waits for its pipe to name its source, and is learned by it") {
    Build build(settings_for(4096, 512));
    std::vector<std::string> icecream{"g++", "-x", "c++", "-O2", "-c", "-fpreprocessed", "-", "-o", "icecc-1_a.o"};
    std::string pipe;  // what the compiler's standard input holds
    build.file_head = [&](const std::string& path) { return path == "/proc/100/fd/0" ? pipe : std::string(); };
    build.exec_command(100, icecream);
    CHECK_FALSE(build.resumed(100));  // room for it, but its source is still on its way
    build.run_for(100ms);
    CHECK_FALSE(build.resumed(100));
    pipe = "# 0 \"src/util.cpp\"\n# 0 \"<built-in>\"\n";
    build.run_for(20ms);
    CHECK(build.resumed(100));
    CHECK(build.log_lines.has("its standard input names src/util.cpp"));
    build.use(100, 300);
    build.run_for(20ms);
    build.exit(100);
    CHECK(build.store.profiles().contains("src/util.cpp"));

    // A pipe that never shows its source in time: started after the patience, measured, not learned.
    build.exec_command(101, icecream);
    build.run_for(480ms);
    CHECK_FALSE(build.resumed(101));
    build.run_for(40ms);
    CHECK(build.resumed(101));  // after pending_key_patience
    build.use(101, 200);
    build.run_for(20ms);
    build.exit(101);
    CHECK(build.log_lines.has("its source was never named, nothing learned"));
    CHECK(build.store.profiles().size() == 1);
}

TEST_CASE("controller: running jobs guessed at the fallback count among peers at what they show, not the guess") {
    // memstorm, cold: every job started on the fallback kept counting at it until it ended,
    // so the next unknown jobs were guessed at the fallback too: two at a time for 7 s.
    Build build(settings_for(4096, 512));
    build.exec(100, "a.c");
    build.exec(101, "b.c");
    build.exec(102, "c.c");
    for (pid_t job : {100, 101, 102}) REQUIRE(build.resumed(job));
    build.use(100, 40);
    build.use(101, 60);
    build.use(102, 30);
    build.run_for(20ms);
    build.exit(102);  // learned at 30 MB
    build.exec(103, "d.c");
    // Peers: 30 (ended) and the fallback as a prior, at most 4x the largest that ended (120),
    // and the running 40 and 60 (their peaks so far), each counted at no less than what the
    // ended ones and the prior say (their 75th percentile: the prior, 120): 120, not 512.
    CHECK(
        build.log_lines.has("New job PID=103 /src/d.c (cc compile), predicted peak 120MB (cold: same tool and role)"));
    // Once they show more than that, they count at what they show.
    build.use(100, 400);
    build.use(101, 300);
    build.run_for(20ms);
    build.exec(104, "e.c");
    CHECK(
        build.log_lines.has("New job PID=104 /src/e.c (cc compile), predicted peak 300MB (cold: same tool and role)"));
}

TEST_CASE("controller: a running job measured before counts among its peers at its own peak, not the ended ones'") {
    Build build(settings_for(4096, 512));
    pid_t pid = 100;
    auto run = [&](const std::string& source, std::uint64_t mib) {
        build.exec(pid, source);
        build.use(pid, mib);
        build.run_for(20ms);
        build.exit(pid++);
    };
    for (const char* small : {"a.c", "e.c", "f.c"}) run(small, 40);
    run("b.c", 300);
    run("c.c", 320);
    for (const char* small : {"a.c", "e.c", "f.c"}) {  // again: known at 40 MB, running at 10
        build.exec(pid, small);
        build.use(pid++, 10);
    }
    build.run_for(20ms);
    build.exec(pid, "d.c");
    // Peers: 40, 40, 40, 300, 320 (ended), the prior (512), and the three running at their own
    // 40: the 7th of 9. Counted at what the ended ones say (320), they would make it 320.
    CHECK(build.log_lines.has(
        fmt::format("New job PID={} /src/d.c (cc compile), predicted peak 300MB (cold: same tool and role)", pid)));
}

TEST_CASE("controller: a running job guessed from its peers may need as much as one that ended larger") {
    Build build(settings_for(1100, 512));
    build.exec(100, "b.c");
    build.exec(101, "c.c");
    REQUIRE(build.resumed(100));
    REQUIRE(build.resumed(101));  // both at the 512 MB estimate
    build.use(100, 600);
    build.use(101, 50);
    build.run_for(20ms);
    build.exit(100);
    CHECK(build.log_lines.has("PID=101 /src/c.c: running, guessed at 512MB: may need up to 600MB, as its peers show"));
    build.use(101, 60);
    build.run_for(20ms);
    build.exec(102, "d.c");  // its guess: the same peers'
    build.exit(102);
    CHECK(std::count_if(build.log_lines.lines.begin(), build.log_lines.lines.end(), [](const std::string& line) {
              return line.find("PID=101 /src/c.c: running") != std::string::npos;
          }) == 1);  // said once, when it rose
}

TEST_CASE("controller: a job gone before its exec is handled is keyed in its parent's directory") {
    Build build(settings_for(4096, 512));
    build.cwd_of = [](pid_t pid) { return pid == 1 ? std::string("/src/lib") : std::string(); };
    build.exec(100, "a.c", true);
    build.use(100, 30);
    build.exit(100);
    REQUIRE(build.store.profiles().size() == 1);
    CHECK(build.store.profiles().begin()->first == "/src/lib/a.c");
}

TEST_CASE("controller: the kernel's grant is the room left by the peak rule, less the jobs it started unheard of") {
    Build build(settings_for(4096, 512));
    build.run_for(20ms);
    CHECK(build.tracker.granted == 7);  // (4096 - 64 kept free) / 512

    build.tracker.spent = 1;
    build.exec(100, "a.c", /*granted=*/true);
    CHECK_FALSE(build.resumed(100));    // never stopped: nothing to continue
    CHECK(build.tracker.granted == 6);  // 4096 - 512 for it - 64, by 512

    build.tracker.spent = 3;  // two more started, their exec records not read yet
    build.run_for(20ms);
    CHECK(build.tracker.granted == 4);  // each counted at the largest prediction known

    build.exec(101, "b.c", true);
    build.exec(102, "c.c", true);
    build.run_for(20ms);
    CHECK(build.tracker.granted == 4);
}

TEST_CASE("controller: a job held at exec gets no grant while another waits") {
    Build build(settings_for(1024, 512));
    build.exec(100, "a.c");
    build.exec(101, "b.c");
    build.run_for(20ms);
    CHECK(build.tracker.granted == 0);
}

TEST_CASE("controller: below the floor the smaller growing job is stopped, and resumed when memory returns") {
    Build build(settings_for(1024, 256));
    auto started = build.now;
    build.exec(100, "a.c");
    build.exec(101, "b.c");
    CHECK(build.resumed(100));
    CHECK(build.resumed(101));  // the gate's fast path: 2 x 256 + 64 fit in 1024
    for (std::uint64_t mib = 100; mib <= 480; mib += 95) {
        build.use(100, mib);  // the older job holds less: it is the one stopped
        build.use(101, mib + 20);
        build.run_for(20ms);
    }
    CHECK(build.tracker.stopped == std::set<pid_t>{100});
    CHECK(build.controller.totals().emergency_stops == 1);
    CHECK(build.log_lines.has("EMERGENCY"));
    CHECK(build.log_lines.has("stopped PID=100 /src/a.c at 480MB"));

    auto stopped_at = build.now;
    build.run_for(60ms);
    build.exit(101);
    build.run_for(20ms);
    CHECK(build.tracker.stopped.empty());
    CHECK(build.tracker.resumed_jobs == std::vector<pid_t>{100});
    CHECK(build.log_lines.has("Memory is back"));
    auto stopped_for = build.now - stopped_at;
    build.use(100, 600);  // it grows on once resumed
    build.run_for(40ms);
    build.exit(100);
    // Its curve's rises leave out the time it was stopped: it did not grow meanwhile, so its
    // last rise comes right after the instant it was stopped at, not 80 ms later. Its end keeps
    // that time: a job waiting on the clock gets on while stopped, and ends no sooner.
    const Profile& stopped = build.store.profiles().at("/src/a.c");
    REQUIRE(stopped.curve.has_value());
    CHECK(std::chrono::milliseconds(stopped.curve->duration_ms) == build.now - started);
    CHECK(std::chrono::milliseconds(stopped.curve->reach_ms.back()) == stopped_at - started);
    CHECK(stopped_for > 0ms);
}

TEST_CASE("controller: a stop the tracker cannot carry out leaves the job running, and the net stops another") {
    Build build(settings_for(1024, 256));
    build.tracker.unstoppable = {100};  // its guard entry could not be made: it runs on
    build.exec(100, "a.c");
    build.exec(101, "b.c");
    for (std::uint64_t mib = 100; mib <= 480; mib += 95) {
        build.use(100, mib);
        build.use(101, mib + 20);
        build.run_for(20ms);
    }
    CHECK(build.log_lines.has("could not stop PID=100 /src/a.c"));
    CHECK(build.controller.totals().emergency_stops == 0);
    // Counted as stopped, job 100 would have grown on unseen by the net; at the next reading
    // the net stops job 101 instead.
    build.run_for(20ms);
    CHECK(build.tracker.stopped == std::set<pid_t>{101});
    CHECK(build.controller.totals().emergency_stops == 1);
    build.use(100, 520);
    build.run_for(20ms);
    CHECK(build.tracker.stop_attempts == std::vector<pid_t>{100, 101});  // 100 is passed over from now on
    build.exit(100);
    build.run_for(20ms);
    CHECK(build.tracker.resumed_jobs == std::vector<pid_t>{101});
}

TEST_CASE("controller: after Ctrl-Z and fg the running jobs' curves are not learned") {
    Build build(settings_for(4096, 256));
    build.exec(100, "a.c");
    build.use(100, 100);
    build.run_for(200ms);
    build.controller.build_was_suspended();
    build.use(100, 200);
    build.run_for(200ms);
    build.exit(100);
    CHECK(build.only_profile().peak_bytes == 200 * MiB);
    CHECK_FALSE(build.only_profile().curve.has_value());
}

TEST_CASE("controller: a job whose exit record is late or lost releases its reservation, a late record still teaches") {
    Build build(settings_for(1024, 512));
    build.exec(100, "a.c");
    build.exec(101, "b.c");
    build.use(100, 300);
    build.run_for(40ms);
    CHECK_FALSE(build.resumed(101));

    std::uint64_t peak = build.tracker.usage[100].peak_bytes;
    build.tracker.usage.erase(100);  // the kernel dropped the job; no exit record yet
    build.run_for(20ms);
    CHECK(build.log_lines.has("PID=100 job is gone (no exit record yet): released its reservation"));
    CHECK(build.resumed(101));

    build.controller.handle(ExitEvent{.pid = 100, .ppid = 1, .job = 100, .job_peak_bytes = peak, .comm = "cc"});
    REQUIRE(build.store.profiles().contains("/src/a.c"));
    CHECK(build.store.profiles().at("/src/a.c").peak_bytes == 300 * MiB);
}

TEST_CASE("controller: interrupted, it releases every held job, holds no new one and grants nothing") {
    Build build(settings_for(1024, 512));
    build.exec(100, "a.c");
    build.exec(101, "b.c");
    CHECK_FALSE(build.resumed(101));
    build.controller.interrupt(SIGINT);
    CHECK(build.tracker.resumed_jobs == std::vector<pid_t>{101});
    CHECK(build.log_lines.has("PID=101 released so it can handle Interrupt"));

    build.exec(102, "c.c");
    CHECK(build.resumed(102));  // continued at once: the build is ending
    build.run_for(100ms);
    CHECK(build.tracker.granted == 0);
    CHECK(build.tracker.stopped.empty());
}

TEST_CASE("controller: a failed job's peak, or one with a process OOM-killed, is kept only as a lower bound") {
    Build build(settings_for(4096, 512));
    build.exec(100, "a.c");
    build.use(100, 50);
    build.run_for(40ms);
    build.exit(100, /*wait_status=*/1 << 8);
    CHECK(build.log_lines.has(
        "PID=100 job exited, final peak for /src/a.c: 0MB -> 50MB (did not finish: kept as a lower bound)"));

    build.exec(101, "b.c");
    build.use(101, 70);
    build.run_for(40ms);
    build.controller.handle(OomKillEvent{.pid = 102, .job = 101, .rss_bytes = 60 * MiB, .comm = "cc1"});
    build.exit(101, /*wait_status=*/0);  // the driver itself may exit 0
    CHECK(build.log_lines.has(
        "PID=101 job exited, final peak for /src/b.c: 0MB -> 70MB (did not finish: kept as a lower bound)"));
    CHECK(build.log_lines.has("PID=102 (cc1) killed by the OOM killer at 60MB"));
}

TEST_CASE(
    "reading schedule: fast while jobs wait, are stopped or memory is near the floor, sampling scales with jobs") {
    constexpr std::uint64_t floor = 64 * MiB;
    GovernorView idle;
    CHECK(reading_interval(idle, 4096 * MiB, floor) == 100ms);
    CHECK(reading_interval(idle, 200 * MiB, floor) == 20ms);  // within 4 floors
    GovernorView waiting{.waiting = 1, .running = 1};
    CHECK(reading_interval(waiting, 4096 * MiB, floor) == 20ms);
    GovernorView stopped{.running = 2, .emergency_stopped = 1};
    CHECK(reading_interval(stopped, 4096 * MiB, floor) == 20ms);
    GovernorView imminent{.running = 1, .imminent_bytes = 1000 * MiB};
    CHECK(reading_interval(imminent, 1200 * MiB, floor) == 20ms);

    CHECK(tick_interval(idle, 100ms) == 100ms);
    CHECK(tick_interval(GovernorView{.running = 4}, 100ms) == 20ms);
    CHECK(tick_interval(GovernorView{.running = 60}, 100ms) == 60ms);
    CHECK(tick_interval(GovernorView{.running = 500}, 100ms) == 100ms);  // at least once a reading
}

TEST_CASE("decision text: each kind of decision in the log's words") {
    DecisionFacts facts{.key = "/src/a.c",
                        .waited_seconds = 2.54,
                        .available_bytes = 300 * MiB,
                        .emergency_floor_bytes = 64 * MiB,
                        .kept_free_bytes = 64 * MiB,
                        .stall_timeout = 10s};
    Decision waiting{DecisionKind::keep_waiting, 7, 512 * MiB, 200 * MiB, 300 * MiB};
    CHECK(decision_text(waiting, facts) ==
          "PID=7 /src/a.c: needs 512MB and 64MB kept free, only 200MB free (300MB imminent) - WAITING");
    Decision surprised{DecisionKind::keep_waiting, 7, 100 * MiB, 200 * MiB, 300 * MiB};
    surprised.surprise_bytes = 400 * MiB;
    CHECK(decision_text(surprised, facts) ==
          "PID=7 /src/a.c: needs 100MB and 64MB kept free and 400MB in case a guess is as large as its largest "
          "peer, only 200MB free (300MB imminent) - WAITING");
    Decision on_curve{DecisionKind::keep_waiting, 7, 100 * MiB, 200 * MiB, 300 * MiB};  // fits now, not later
    CHECK(decision_text(on_curve, facts) ==
          "PID=7 /src/a.c: needs 100MB and 64MB kept free, have 200MB free (300MB imminent) - WAITING "
          "(running jobs' growth would take it)");

    Decision admitted{DecisionKind::admit, 7, 100 * MiB, 200 * MiB, 0};
    CHECK(decision_text(admitted, facts) == "PID=7 /src/a.c: needs 100MB, have 200MB free (0MB imminent) - OK");
    admitted.waited = true;
    admitted.on_curve = true;
    CHECK(decision_text(admitted, facts) ==
          "PID=7 /src/a.c: needs 100MB, have 200MB free (0MB imminent) - PROCEEDING (waited 2.5s) "
          "(its growth meets memory running jobs free as they end)");
    Decision forced{DecisionKind::admit, 7, 900 * MiB, -50 * static_cast<std::int64_t>(MiB), 0};
    forced.forced = true;
    CHECK(
        decision_text(forced, facts) ==
        "PID=7 /src/a.c: needs 900MB, only -50MB free (0MB imminent) - PROCEEDING (nothing else running, waited 2.5s)");
    forced.stalled = true;
    forced.backfill = true;
    CHECK(decision_text(forced, facts)
              .ends_with("PROCEEDING (no running job changed for 10s: they may be waiting for it) (passes a larger "
                         "waiting job)"));

    Decision floor_stop{DecisionKind::emergency_stop, 7, 400 * MiB, 0, 0};
    floor_stop.below_floor = true;
    floor_stop.current_bytes = 120 * MiB;
    CHECK(decision_text(floor_stop, facts) ==
          "EMERGENCY: only 300MB available (floor 64MB): stopped PID=7 /src/a.c "
          "at 120MB (of the running jobs, growing ones first, the one holding least) until memory returns");
    Decision plan_stop{DecisionKind::emergency_stop, 7, 400 * MiB, -100 * static_cast<std::int64_t>(MiB), 0};
    plan_stop.current_bytes = 120 * MiB;
    CHECK(decision_text(plan_stop, facts) ==
          "EMERGENCY: running jobs still need 400MB more, 300MB available: "
          "stopped PID=7 /src/a.c at 120MB (the growing job holding least) so the "
          "others can finish");

    Decision resumed{DecisionKind::emergency_resume, 7, 100 * MiB, 250 * MiB, 0};
    CHECK(decision_text(resumed, facts) == "Memory is back (250MB free after imminent): resumed PID=7 /src/a.c");

    Decision repredicted{DecisionKind::repredict, 7, 600 * MiB};
    repredicted.previous_bytes = 400 * MiB;
    repredicted.current_bytes = 380 * MiB;
    repredicted.growth_bytes_per_second = 900 * MiB;
    CHECK(decision_text(repredicted, facts) ==
          "PID=7 /src/a.c: at 380MB growing 900MB/s, past its prediction of 400MB: re-predicted at 600MB");
}
