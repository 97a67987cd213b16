// The host ledger: entries, turns, stale entries, which builds compete for one memory, and
// two controllers on one machine that see each other through it.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "fake_build.h"
#include "host_ledger.h"

using namespace fake_build;

namespace {

LedgerEntry sample_entry() {
    LedgerEntry entry{.build = {.pid = 42, .uid = 1000, .command = "make -j64", .cgroup = "/sys/fs/cgroup/ci/a"}};
    entry.state.share = {.imminent_bytes = 700 * MiB,
                         .near_growth_bytes = 50 * MiB,
                         .kept_bytes = 200 * MiB,
                         .stopped_need_bytes = 150 * MiB,
                         .running = 3,
                         .oldest_waiting = OtherBuilds::Waiting{Clock::time_point(5s), 800 * MiB}};
    entry.state.published_at = Clock::time_point(10s);
    entry.state.grant_bytes = 100 * MiB;
    entry.state.build_bytes = 900 * MiB;
    entry.state.waiting = 2;
    entry.state.stopped = 1;
    entry.state.jobs_waited = 5;
    entry.state.seconds_waited = 7.25;
    entry.state.emergency_stops = 4;
    entry.state.oom_kills = 1;
    entry.state.events_dropped = 6;
    return entry;
}

std::unique_ptr<HostLedger> open_ledger(const TempDir& dir, pid_t pid, const std::string& cgroup = "") {
    return HostLedger::open((dir.path() / "ledger").string(),
                            {.pid = pid, .uid = 0, .command = "make", .cgroup = cgroup});
}

}  // namespace

TEST_CASE("host ledger: an entry reads back as written, and anything else is refused") {
    LedgerEntry entry = sample_entry();
    auto read = parse_ledger_entry(serialize_ledger_entry(entry));
    REQUIRE(read);
    CHECK(read->build.pid == 42);
    CHECK(read->build.uid == 1000);
    CHECK(read->build.command == "make -j64");
    CHECK(read->build.cgroup == "/sys/fs/cgroup/ci/a");
    CHECK(read->state.share.imminent_bytes == 700 * MiB);
    CHECK(read->state.share.near_growth_bytes == 50 * MiB);
    CHECK(read->state.share.kept_bytes == 200 * MiB);
    CHECK(read->state.share.stopped_need_bytes == 150 * MiB);
    CHECK(read->state.share.running == 3);
    REQUIRE(read->state.share.oldest_waiting);
    CHECK(read->state.share.oldest_waiting->queued_at == Clock::time_point(5s));
    CHECK(read->state.share.oldest_waiting->needed_bytes == 800 * MiB);
    CHECK(read->state.published_at == Clock::time_point(10s));
    CHECK(read->state.grant_bytes == 100 * MiB);
    CHECK(read->state.build_bytes == 900 * MiB);
    CHECK(read->state.waiting == 2);
    CHECK(read->state.stopped == 1);
    CHECK(read->state.jobs_waited == 5);
    CHECK(read->state.seconds_waited == 7.25);
    CHECK(read->state.emergency_stops == 4);
    CHECK(read->state.oom_kills == 1);
    CHECK(read->state.events_dropped == 6);
    entry.state.share.oldest_waiting.reset();
    CHECK_FALSE(parse_ledger_entry(serialize_ledger_entry(entry))->state.share.oldest_waiting);

    for (const char* bad : {"", "{", "[]", "42", R"({"pid": 1})", R"({"pid": "x", "uid": 0})"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_ledger_entry(bad));
    }
    std::string text = serialize_ledger_entry(sample_entry());
    text.replace(text.find("\"imminent\":"), 11, "\"imminent\":-");
    CHECK_FALSE(parse_ledger_entry(text));  // negative sizes are no sizes
    // An entry of a memgov from before stopped_need was published: none said.
    auto older = nlohmann::json::parse(serialize_ledger_entry(sample_entry()));
    older.erase("stopped_need");
    auto read_older = parse_ledger_entry(older.dump());
    REQUIRE(read_older);
    CHECK(read_older->state.share.stopped_need_bytes == 0);
}

TEST_CASE("competing: builds in the bounding cgroup or below it, or all of them when bound by the machine") {
    const auto fresh = Clock::time_point(10s) + 100ms;
    auto in = [](const std::string& cgroup, std::uint64_t imminent_mib) {
        LedgerEntry entry = sample_entry();
        entry.build.cgroup = cgroup;
        entry.state.share.imminent_bytes = imminent_mib * MiB;
        return entry;
    };
    std::vector<LedgerEntry> others{in("/cg/ci", 1), in("/cg/ci/a", 2), in("/cg/cix", 4), in("", 8), in("/cg", 16)};
    CHECK(competing(others, std::nullopt, fresh).imminent_bytes == 31 * MiB);
    CHECK(competing(others, std::string("/cg/ci"), fresh).imminent_bytes == 3 * MiB);
    CHECK(competing(others, std::string("/cg"), fresh).imminent_bytes == 23 * MiB);
    OtherBuilds two = competing({sample_entry(), sample_entry()}, std::nullopt, fresh);
    CHECK(two.imminent_bytes == 1400 * MiB);
    CHECK(two.near_growth_bytes == 100 * MiB);
    CHECK(two.kept_bytes == 600 * MiB);  // surprise room and grant, each
    CHECK(two.running == 6);
    CHECK(two.oldest_waiting.size() == 2);
    CHECK(two.granted_bytes == 200 * MiB);
    CHECK(two.stopped == 2);
    CHECK(two.stopped_need_bytes == 300 * MiB);
    // A memgov that has not published for ledger_entry_lifetime is stopped or hung: not counted.
    CHECK(competing({sample_entry()}, std::nullopt, Clock::time_point(10s) + ledger_entry_lifetime).running == 0);
}

TEST_CASE("progress watch: an entry whose memory and running jobs stand still for the timeout is resting") {
    ProgressWatch watch;
    auto entry = [](pid_t pid, std::uint64_t build_mib, std::size_t running) {
        LedgerEntry e = sample_entry();
        e.build.pid = pid;
        e.state.build_bytes = build_mib * MiB;
        e.state.share.running = running;
        return e;
    };
    auto at = [](int ms) { return Clock::time_point(std::chrono::milliseconds(ms)); };
    auto first = watch.rest_idle({entry(1, 100, 3), entry(2, 500, 1)}, at(0), 10s);
    CHECK(first[0].state.share.running == 3);
    // 2 stands still, 1 moves: only 2 rests, and keeps what it is about to take.
    watch.rest_idle({entry(1, 120, 3), entry(2, 500, 1)}, at(5000), 10s);
    auto later = watch.rest_idle({entry(1, 130, 3), entry(2, 500, 1)}, at(10'000), 10s);
    CHECK(later[0].state.share.running == 3);
    CHECK(later[0].state.share.near_growth_bytes == 50 * MiB);
    CHECK(later[1].state.share.running == 0);
    CHECK(later[1].state.share.near_growth_bytes == 0);
    CHECK(later[1].state.stopped == 0);  // nor does it hold back the progress guarantee
    CHECK(later[0].state.stopped == 1);
    CHECK(later[1].state.share.imminent_bytes == 700 * MiB);
    // A job of 2's starts or ends: it moves again.
    auto moved = watch.rest_idle({entry(1, 130, 3), entry(2, 500, 2)}, at(10'100), 10s);
    CHECK(moved[1].state.share.running == 2);
    // An entry gone and back (a new memgov with the same pid) starts afresh.
    watch.rest_idle({entry(1, 130, 3)}, at(30'000), 10s);
    CHECK(watch.rest_idle({entry(1, 130, 3), entry(2, 500, 2)}, at(30'100), 10s)[1].state.share.running == 2);
}

TEST_CASE("vouched_for: a daemon's client's entry is held to what the daemon sees of its build") {
    LedgerState claimed = sample_entry().state;  // 3 running, 700 MiB imminent, a job waiting since 5 s
    ObservedBuild seen{.now = Clock::time_point(60s),
                       .build_bytes = 123 * MiB,
                       .running_jobs = 2,
                       .oldest_held_since = Clock::time_point(8s),
                       .memory_bytes = 4096 * MiB};
    LedgerState vouched = vouched_for(claimed, seen);
    CHECK(vouched.published_at == seen.now);  // a date in the future would never lapse
    CHECK(vouched.build_bytes == 123 * MiB);
    CHECK(vouched.grant_bytes == 0);
    CHECK(vouched.share.running == 2);
    CHECK(vouched.share.imminent_bytes == 700 * MiB);  // how much its jobs will take: its word
    REQUIRE(vouched.share.oldest_waiting);
    CHECK(vouched.share.oldest_waiting->queued_at == Clock::time_point(8s));  // not before its exec
    CHECK(vouched.share.oldest_waiting->needed_bytes == 800 * MiB);
    CHECK(vouched.jobs_waited == claimed.jobs_waited);  // counters for metrics: its own
    CHECK(vouched.stopped == 1);                        // it holds jobs: some may be stopped

    // Nothing running, nothing held: nothing about to be taken, nobody waiting.
    LedgerState idle = vouched_for(claimed, {.now = Clock::time_point(60s), .memory_bytes = 4096 * MiB});
    CHECK(idle.share.running == 0);
    CHECK(idle.share.imminent_bytes == 0);
    CHECK(idle.share.near_growth_bytes == 0);
    CHECK(idle.share.kept_bytes == 0);
    CHECK(idle.stopped == 0);
    CHECK(idle.share.stopped_need_bytes == 0);
    CHECK_FALSE(idle.share.oldest_waiting);

    // Figures beyond all there is are cut to it; a claimed waiting need too.
    claimed.share.imminent_bytes = claimed.share.kept_bytes = claimed.share.near_growth_bytes =
        claimed.share.stopped_need_bytes = ~0ull;
    claimed.share.oldest_waiting->needed_bytes = ~0ull;
    LedgerState huge = vouched_for(claimed, seen);
    CHECK(huge.share.imminent_bytes == 4096 * MiB);
    CHECK(huge.share.kept_bytes == 4096 * MiB);
    CHECK(huge.share.stopped_need_bytes == 4096 * MiB);
    CHECK(huge.share.near_growth_bytes == 4096 * MiB);
    CHECK(huge.share.oldest_waiting->needed_bytes == 4096 * MiB);

    // Its --nice moves the earliest queue time it may claim: root's -1 gains a step, +2 loses two.
    claimed.share.oldest_waiting->queued_at = Clock::time_point(8s) - 100s;
    seen.queue_offset = -nice_step;
    CHECK(vouched_for(claimed, seen).share.oldest_waiting->queued_at == Clock::time_point(8s) - nice_step);
    seen.queue_offset = 2 * nice_step;
    CHECK(vouched_for(claimed, seen).share.oldest_waiting->queued_at == Clock::time_point(8s) + 2 * nice_step);
}

TEST_CASE("host ledger: each memgov reads the others' entries, not its own, and a gone memgov's entry is removed") {
    TempDir dir;
    auto a = open_ledger(dir, 1);
    auto b = open_ledger(dir, 2);
    CHECK(a->others().size() == 1);
    LedgerState state;
    state.share.imminent_bytes = 300 * MiB;
    b->publish(state);
    auto seen = a->others();
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].build.pid == 2);
    CHECK(seen[0].state.share.imminent_bytes == 300 * MiB);
    CHECK(b->others()[0].build.pid == 1);

    // A memgov killed leaves its file, but not its lock.
    std::filesystem::path dead = dir.path() / "ledger" / "build-dead01";
    std::ofstream(dead) << serialize_ledger_entry(sample_entry());
    CHECK(a->others().size() == 1);
    CHECK_FALSE(std::filesystem::exists(dead));
    // Garbage in a live entry is skipped (a writer gone wrong must not make others wait).
    std::string b_path = b->entry_path();
    std::ofstream(b_path) << "not json";
    CHECK(a->others().empty());
    CHECK(std::filesystem::exists(b_path));
    b.reset();
    CHECK_FALSE(std::filesystem::exists(b_path));
    CHECK(a->others().empty());
}

TEST_CASE("host ledger: one turn at a time, and a lock held too long is given up on") {
    TempDir dir;
    auto a = open_ledger(dir, 1);
    auto b = open_ledger(dir, 2);
    {
        auto turn = a->take_turn(10ms);
        REQUIRE(turn);
        CHECK_FALSE(b->take_turn(10ms));
    }
    CHECK(b->take_turn(10ms));
}

TEST_CASE("host ledger: a directory someone else could write is refused") {
    TempDir dir;
    std::filesystem::path open_to_all = dir.path() / "ledger";
    std::filesystem::create_directory(open_to_all);
    chmod(open_to_all.c_str(), 0777);
    CHECK_THROWS_WITH(open_ledger(dir, 1), doctest::Contains("writable by anyone"));
    chmod(open_to_all.c_str(), 0700);
    if (geteuid() == 0) {
        REQUIRE(chown(open_to_all.c_str(), 65534, 65534) == 0);
        CHECK_THROWS_WITH(open_ledger(dir, 1), doctest::Contains("neither root nor us"));
    }
    CHECK_THROWS_WITH(HostLedger::open("/proc/memgov-ledger", {}), doctest::Contains("cannot create"));
}

namespace {

// One machine of 1200 MiB: available is what none of the builds' trackers use.
std::function<MemoryReading()> machine_of(const std::vector<const FakeTracker*>& trackers) {
    return [&trackers] {
        std::uint64_t used = 0;
        for (const auto* tracker : trackers) used += tracker->totals().rss_bytes;
        return MemoryReading{1200 * MiB, 1200 * MiB - used};
    };
}

// No --limit: the machine's memory bounds the build; an unknown job is guessed at `mib`.
ControllerSettings unknown_jobs_at(std::uint64_t mib) {
    ControllerSettings settings = settings_for(0, mib);
    settings.budget.limit_bytes.reset();
    return settings;
}

// The scenario of two builds at once in one memory: each would start its heavy job at once,
// alone, as it sees nothing else running. With places in one ledger, neither takes what the
// other is about to.
void two_builds_leave_each_other_room(Ledger& first, Ledger& second) {
    std::vector<const FakeTracker*> trackers;
    auto machine = machine_of(trackers);
    ControllerSettings settings = unknown_jobs_at(700);
    Build a(settings, &first, machine);
    Build b(settings, &second, machine);
    trackers = {&a.tracker, &b.tracker};
    auto run_both = [&](Clock::duration time) {
        for (auto end = a.now + time; a.now < end;) {
            a.run_for(20ms);
            b.run_for(20ms);
        }
    };

    a.exec(100, "a.c");
    CHECK(a.resumed(100));
    b.exec(200, "x.c");
    CHECK_FALSE(b.resumed(200));  // 1200 - 700 that a.c is about to take < 700 + 64 kept free
    CHECK(b.log_lines.has("WAITING"));
    a.use(100, 300);
    run_both(200ms);
    CHECK_FALSE(b.resumed(200));
    a.use(100, 650);
    run_both(200ms);
    CHECK_FALSE(b.resumed(200));
    a.exit(100);
    run_both(40ms);
    CHECK(b.resumed(200));
    // And the other way round: a's next job waits for b's.
    a.exec(101, "b.c");
    CHECK_FALSE(a.resumed(101));
    b.use(200, 500);
    b.exit(200);
    run_both(40ms);
    CHECK(a.resumed(101));
}

}  // namespace

TEST_CASE("host ledger: two builds on one machine leave each other what they are about to take") {
    TempDir dir;
    auto first = open_ledger(dir, 1);
    auto second = open_ledger(dir, 2);
    two_builds_leave_each_other_room(*first, *second);
}

TEST_CASE("shared ledger: two builds governed by one process leave each other what they are about to take") {
    SharedLedger shared;
    auto first = shared.join({.pid = 1, .uid = 0, .command = "make", .cgroup = ""});
    auto second = shared.join({.pid = 1, .uid = 1000, .command = "ninja", .cgroup = ""});
    two_builds_leave_each_other_room(*first, *second);
    REQUIRE(first->others().size() == 1);
    CHECK(first->others()[0].build.command == "ninja");
    {
        auto turn = first->take_turn(1ms);
        REQUIRE(turn);
        CHECK_FALSE(second->take_turn(1ms));
    }
    CHECK(second->take_turn(1ms));
    second.reset();
    CHECK(first->others().empty());
}

TEST_CASE("host ledger: without it, each build sees nothing running and starts its heavy job (the failure)") {
    std::vector<const FakeTracker*> trackers;
    auto machine = machine_of(trackers);
    ControllerSettings settings = unknown_jobs_at(700);
    Build a(settings, nullptr, machine);
    Build b(settings, nullptr, machine);
    trackers = {&a.tracker, &b.tracker};
    a.exec(100, "a.c");
    b.exec(200, "x.c");
    CHECK(a.resumed(100));
    CHECK(b.resumed(200));
}

TEST_CASE("host ledger: an entry lists its jobs, at most max_ledger_jobs, keys cut, and a bad state is refused") {
    LedgerEntry entry = sample_entry();
    entry.state.jobs.emplace();
    entry.state.jobs->push_back({{7, JobView::State::running, 500 * MiB, 120 * MiB}, "/src/a.cpp"});
    entry.state.jobs->push_back({{8, JobView::State::stopped, 300 * MiB, 200 * MiB}, "/src/b.cpp"});
    entry.state.jobs->push_back({{9, JobView::State::waiting, 700 * MiB, 0}, std::string(1000, 'k')});
    auto read = parse_ledger_entry(serialize_ledger_entry(entry));
    REQUIRE(read);
    REQUIRE(read->state.jobs->size() == 3);
    const LedgerJob& first = read->state.jobs->at(0);
    CHECK(first.view.job == 7);
    CHECK(first.view.state == JobView::State::running);
    CHECK(first.view.reserved_bytes == 500 * MiB);
    CHECK(first.view.current_bytes == 120 * MiB);
    CHECK(first.key == "/src/a.cpp");
    CHECK(read->state.jobs->at(1).view.state == JobView::State::stopped);
    CHECK(read->state.jobs->at(2).view.state == JobView::State::waiting);
    CHECK(read->state.jobs->at(2).key.size() == max_ledger_key_bytes);

    entry.state.jobs->assign(max_ledger_jobs + 10, {{1, JobView::State::waiting, 1, 0}, "/src/x.cpp"});
    CHECK(parse_ledger_entry(serialize_ledger_entry(entry))->state.jobs->size() == max_ledger_jobs);

    std::string text = serialize_ledger_entry(sample_entry());
    text.replace(text.find("\"jobs\":[]"), 9,
                 R"("jobs":[{"pid":1,"key":"k","state":"sleeping","reserved":1,"current":0}])");
    CHECK_FALSE(parse_ledger_entry(text));
}

TEST_CASE("host ledger: jobs published once stay until published again") {
    TempDir dir;
    auto a = open_ledger(dir, 1);
    auto b = open_ledger(dir, 2);
    LedgerState state;
    state.jobs = std::vector<LedgerJob>{{{7, JobView::State::running, 500 * MiB, 0}, "/src/a.cpp"}};
    b->publish(state);
    state.jobs.reset();
    state.share.imminent_bytes = 1;
    b->publish(state);
    auto seen = a->others();
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].state.share.imminent_bytes == 1);
    REQUIRE(seen[0].state.jobs->size() == 1);
    CHECK(seen[0].state.jobs->at(0).key == "/src/a.cpp");
    CHECK(read_ledger((dir.path() / "ledger").string()).size() == 2);
    CHECK_THROWS_WITH(read_ledger((dir.path() / "nowhere").string()), doctest::Contains("cannot read"));
}

TEST_CASE("shared ledger: a build bound by its cgroup still leaves builds elsewhere the machine's memory") {
    SharedLedger shared;
    auto elsewhere = shared.join({.pid = 1, .uid = 0, .command = "make", .cgroup = "/cg/b"});
    auto ours = shared.join({.pid = 2, .uid = 0, .command = "make", .cgroup = "/cg/a"});
    // Our cgroup has 4 GiB of room, the machine 4.5 GiB, of which the build in /cg/b is about to
    // take 4000 MiB.
    auto reading = [] { return MemoryReading{8ull << 30, 4608 * MiB, CgroupLevel{"/cg/a", 4ull << 30, 0}}; };
    ControllerSettings settings = unknown_jobs_at(700);
    Build build(settings, ours.get(), reading);
    LedgerState theirs;
    theirs.published_at = build.now;
    theirs.share.running = 1;
    theirs.share.imminent_bytes = 4000 * MiB;
    elsewhere->publish(theirs);
    build.exec(100, "a.c");
    CHECK_FALSE(build.resumed(100));  // 4608 - 4000 left of the machine < 700 + 64
    theirs.share.imminent_bytes = 0;
    theirs.published_at = build.now + 40ms;
    elsewhere->publish(theirs);
    build.run_for(40ms);
    CHECK(build.resumed(100));
}
