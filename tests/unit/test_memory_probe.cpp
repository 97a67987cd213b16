#include <doctest/doctest.h>

#include "bytes.h"
#include "memory_probe.h"
#include "temp_dir.h"

using namespace memgov;

namespace {

constexpr std::uint64_t MiB = 1ull << 20;
constexpr std::uint64_t GiB = 1ull << 30;

void write_meminfo(const TempDir& root, std::uint64_t total_kib, std::uint64_t available_kib) {
    root.write("proc/meminfo", "MemTotal:       " + std::to_string(total_kib) +
                                   " kB\nMemFree:         1000 kB\nMemAvailable:   " + std::to_string(available_kib) +
                                   " kB\nBuffers: 0 kB\n");
}

MemoryProbe probe_in(const TempDir& root) {
    return MemoryProbe({(root.path() / "proc").string(), (root.path() / "cgroup").string()});
}

}  // namespace

TEST_CASE("no cgroup: MemAvailable is what the build may take") {
    TempDir root;
    write_meminfo(root, 16 * 1024 * 1024, 10 * 1024 * 1024);
    root.write("proc/self/cgroup", "0::/\n");
    auto probe = probe_in(root);
    auto reading = probe.read();
    CHECK(reading.total_bytes == 16 * GiB);
    CHECK(reading.available_bytes == 10 * GiB);
    CHECK_FALSE(reading.cgroup);
    auto availability = available_for_build(reading, {}, 0);
    CHECK(availability.bytes == 10 * GiB);
    CHECK(availability.bound_by == "MemAvailable");
}

TEST_CASE("cgroup v1: limit minus usage less inactive file cache, tightest ancestor wins") {
    TempDir root;
    write_meminfo(root, 16 * 1024 * 1024, 12 * 1024 * 1024);
    root.write("proc/self/cgroup", "9:pids:/\n4:memory,blkio:/ci/job1\n1:cpu:/\n");
    root.write("cgroup/memory/ci/job1/memory.limit_in_bytes", std::to_string(4 * GiB) + "\n");
    root.write("cgroup/memory/ci/job1/memory.usage_in_bytes", std::to_string(1 * GiB) + "\n");
    root.write("cgroup/memory/ci/job1/memory.stat",
               "cache 100\ninactive_file 5\ntotal_inactive_file " + std::to_string(512 * MiB) + "\n");
    // The parent is tighter: 3 GiB limit with 2 GiB used, no cache.
    root.write("cgroup/memory/ci/memory.limit_in_bytes", std::to_string(3 * GiB));
    root.write("cgroup/memory/ci/memory.usage_in_bytes", std::to_string(2 * GiB));
    root.write("cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
    root.write("cgroup/memory/memory.usage_in_bytes", std::to_string(5 * GiB));
    auto probe = probe_in(root);
    CHECK_FALSE(probe.cgroup_v2());
    CHECK(probe.cgroup_dirs().size() == 3);
    auto reading = probe.read();
    REQUIRE(reading.cgroup);
    CHECK(reading.cgroup->dir.ends_with("/memory/ci"));
    CHECK(available_for_build(reading, {}, 0).bytes == 1 * GiB);

    // Drop the parent's limit: the job's own (4 GiB - (1 GiB - 512 MiB)) applies.
    root.write("cgroup/memory/ci/memory.limit_in_bytes", "9223372036854771712");
    auto own = probe.read();
    REQUIRE(own.cgroup);
    CHECK(own.cgroup->used_bytes == 512 * MiB);
    auto availability = available_for_build(own, {}, 0);
    CHECK(availability.bytes == 4 * GiB - 512 * MiB);
    CHECK(availability.ceiling == 4 * GiB);
    CHECK(availability.bound_by.starts_with("cgroup "));
}

TEST_CASE("cgroup v2: memory.max and memory.high, 'max' means none") {
    TempDir root;
    write_meminfo(root, 8 * 1024 * 1024, 6 * 1024 * 1024);
    root.write("proc/self/cgroup", "0::/build.slice/run\n");
    root.write("cgroup/cgroup.controllers", "cpu memory pids\n");
    root.write("cgroup/build.slice/run/memory.max", std::to_string(2 * GiB) + "\n");
    root.write("cgroup/build.slice/run/memory.high", "max\n");
    root.write("cgroup/build.slice/run/memory.current", std::to_string(600 * MiB) + "\n");
    root.write("cgroup/build.slice/run/memory.stat",
               "anon 1\nfile 2\ninactive_file " + std::to_string(100 * MiB) + "\n");
    root.write("cgroup/build.slice/memory.max", "max\n");
    root.write("cgroup/build.slice/memory.current", "1\n");
    auto probe = probe_in(root);
    CHECK(probe.cgroup_v2());
    auto reading = probe.read();
    REQUIRE(reading.cgroup);
    CHECK(available_for_build(reading, {}, 0).bytes == 2 * GiB - 500 * MiB);
    root.write("cgroup/build.slice/run/memory.high", std::to_string(1 * GiB));
    CHECK(available_for_build(probe.read(), {}, 0).bytes == 1 * GiB - 500 * MiB);
}

TEST_CASE("page cache counts as free, active too, but not what processes map or what is dirty (v1 and v2)") {
    for (bool v2 : {false, true}) {
        CAPTURE(v2);
        TempDir root;
        write_meminfo(root, 16 * 1024 * 1024, 12 * 1024 * 1024);
        std::string dir = v2 ? "cgroup/job" : "cgroup/memory/job";
        root.write("proc/self/cgroup", v2 ? "0::/job\n" : "4:memory:/job\n");
        if (v2) root.write("cgroup/cgroup.controllers", "memory\n");
        root.write(dir + (v2 ? "/memory.max" : "/memory.limit_in_bytes"), std::to_string(2 * GiB));
        root.write(dir + (v2 ? "/memory.current" : "/memory.usage_in_bytes"), std::to_string(1 * GiB));
        auto mib = [](int n) { return std::to_string(n * MiB); };
        // Headers a compiler read (active), a compiler's own mapped code, objects not yet written.
        root.write(dir + "/memory.stat",
                   v2 ? "inactive_file " + mib(100) + "\nactive_file " + mib(300) + "\nfile_mapped " + mib(50) +
                            "\nfile_dirty " + mib(30) + "\nfile_writeback " + mib(20) + "\n"
                      : "total_inactive_file " + mib(100) + "\ntotal_active_file " + mib(300) + "\ntotal_mapped_file " +
                            mib(50) + "\ntotal_dirty " + mib(30) + "\ntotal_writeback " + mib(20) + "\n");
        auto reading = probe_in(root).read();
        REQUIRE(reading.cgroup);
        CHECK(reading.cgroup->used_bytes == 1 * GiB - 300 * MiB);
        root.write(dir + "/memory.stat", v2 ? "file_mapped " + mib(50) + "\n" : "total_mapped_file 5\n");
        CHECK(probe_in(root).read().cgroup->used_bytes == 1 * GiB);  // no file LRU figures: none counted
    }
}

TEST_CASE("cgroup v2 on a hybrid machine lives under unified/") {
    TempDir root;
    write_meminfo(root, 8 * 1024 * 1024, 6 * 1024 * 1024);
    root.write("proc/self/cgroup", "0::/x\n");
    root.write("cgroup/unified/x/memory.max", std::to_string(1 * GiB));
    root.write("cgroup/unified/x/memory.current", std::to_string(1 * GiB));
    auto reading = probe_in(root).read();
    REQUIRE(reading.cgroup);
    CHECK(available_for_build(reading, {}, 0).bytes == 0);
}

TEST_CASE("unreadable or missing cgroup files mean no cgroup limit, never a crash") {
    TempDir root;
    write_meminfo(root, 8 * 1024 * 1024, 6 * 1024 * 1024);
    root.write("proc/self/cgroup", "4:memory:/gone\n");
    root.write("cgroup/memory/gone/memory.limit_in_bytes", "garbage\n");
    auto reading = probe_in(root).read();
    CHECK_FALSE(reading.cgroup);
    CHECK(reading.available_bytes == 6 * GiB);

    TempDir empty;
    auto nothing = probe_in(empty).read();
    CHECK(nothing.total_bytes == 0);
    CHECK(available_for_build(nothing, {}, 0).bytes == 0);
}

TEST_CASE("--limit bounds the build's own use, --headroom is always kept free") {
    MemoryReading reading{.total_bytes = 16 * GiB, .available_bytes = 10 * GiB};
    MemoryBudget budget{.limit_bytes = 4 * GiB, .headroom_bytes = 256 * MiB};
    auto availability = available_for_build(reading, budget, 1 * GiB);
    CHECK(availability.bytes == 3 * GiB - 256 * MiB);
    CHECK(availability.bound_by == "--limit");
    CHECK(available_for_build(reading, budget, 5 * GiB).bytes == 0);
    CHECK(available_for_build(reading, {.headroom_bytes = 20 * GiB}, 0).bytes == 0);
}

TEST_CASE("sizes and percentages parse, nonsense is refused") {
    CHECK(parse_size("512M", 0) == 512 * MiB);
    CHECK(parse_size("4G", 0) == 4 * GiB);
    CHECK(parse_size("1.5GiB", 0) == 3 * GiB / 2);
    CHECK(parse_size("4096", 0) == 4096);
    CHECK(parse_size("75%", 8 * GiB) == 6 * GiB);
    CHECK(parse_size("100%", 8 * GiB) == 8 * GiB);
    for (const char* bad : {"", "-5G", "0", "200%", "0%", "5X", "G", "1e30", "nan", "inf", "12 G"})
        CHECK_MESSAGE(!parse_size(bad, 8 * GiB), bad);
}

TEST_CASE("ages parse, nonsense is refused") {
    CHECK(parse_age("90s") == 90);
    CHECK(parse_age("30m") == 1800);
    CHECK(parse_age("12h") == 43200);
    CHECK(parse_age("7d") == 604800);
    CHECK(parse_age("2w") == 1209600);
    CHECK(parse_age("0d") == 0);
    for (const char* bad : {"", "d", "5", "-1d", "5y", "1.5d", "5dd"}) CHECK_MESSAGE(!parse_age(bad), bad);
}

namespace {

// A mountinfo line for the v1 memory hierarchy (or cgroup2), its root showing `root`.
std::string mount_line(const std::string& root, const std::string& point, bool v2 = false) {
    return v2 ? "41 31 0:38 " + root + " " + point + " rw,relatime - cgroup2 cgroup2 rw\n"
              : "35 31 0:32 " + root + " " + point + " rw,relatime - cgroup cgroup rw,memory\n";
}

void write_limit(const TempDir& root, const std::string& dir, std::uint64_t limit, std::uint64_t usage) {
    root.write(dir + "/memory.limit_in_bytes", std::to_string(limit));
    root.write(dir + "/memory.usage_in_bytes", std::to_string(usage));
}

}  // namespace

TEST_CASE("mountinfo: a hierarchy mounted with the container's own cgroup as its root (docker, v1)") {
    TempDir root;
    write_meminfo(root, 16 * 1024 * 1024, 12 * 1024 * 1024);
    root.write("proc/self/cgroup", "4:memory:/docker/abc\n");
    root.write("proc/self/mountinfo", "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n" +
                                          mount_line("/docker/abc", "/sys/fs/cgroup/memory"));
    write_limit(root, "cgroup/memory", 2 * GiB, 1 * GiB);  // the container's cgroup, at the mount's root
    auto probe = probe_in(root);
    CHECK_FALSE(probe.problem());
    REQUIRE(probe.cgroup_dirs().size() == 1);
    auto reading = probe.read();
    REQUIRE(reading.cgroup);
    CHECK(reading.cgroup->limit_bytes == 2 * GiB);
}

TEST_CASE("mountinfo: in a cgroup but no hierarchy mounted (ip netns exec's fresh sysfs): said, not guessed") {
    TempDir root;
    write_meminfo(root, 16 * 1024 * 1024, 12 * 1024 * 1024);
    root.write("proc/self/cgroup", "4:memory:/ci/job1\n");
    root.write("proc/self/mountinfo", "22 1 0:21 / /sys rw,relatime - sysfs sysfs rw\n");
    auto probe = probe_in(root);
    REQUIRE(probe.problem());
    CHECK(probe.problem()->find("/ci/job1 is in no memory cgroup hierarchy mounted here") != std::string::npos);
    CHECK(probe.cgroup_dirs().empty());
    CHECK_FALSE(probe.read().cgroup);
    // In the root cgroup there is no limit to miss: nothing to say.
    root.write("proc/self/cgroup", "4:memory:/\n");
    CHECK_FALSE(probe_in(root).problem());
}

TEST_CASE("mountinfo: in a cgroup namespace, the host's hierarchy is searched for the cgroup that lists us") {
    TempDir root;
    write_meminfo(root, 16 * 1024 * 1024, 12 * 1024 * 1024);
    root.write("proc/self/cgroup", "4:memory:/\n");
    root.write("proc/self/mountinfo", mount_line("/../..", "/sys/fs/cgroup/memory"));
    write_limit(root, "cgroup/memory/ci/other", 8 * GiB, 0);
    root.write("cgroup/memory/ci/other/cgroup.procs", "1\n2\n");
    write_limit(root, "cgroup/memory/ci/job7", 700 * MiB, 100 * MiB);
    root.write("cgroup/memory/ci/job7/cgroup.procs", "5\n4242\n");
    root.write("cgroup/memory/ci/job7/deeper/cgroup.procs", "4242\n");  // too deep to be the namespace's root
    auto probe = MemoryProbe({(root.path() / "proc").string(), (root.path() / "cgroup").string(), 4242});
    CHECK_FALSE(probe.problem());
    REQUIRE_FALSE(probe.cgroup_dirs().empty());
    CHECK(probe.cgroup_dirs().front().ends_with("/memory/ci/job7"));
    auto reading = probe.read();
    REQUIRE(reading.cgroup);
    CHECK(reading.cgroup->limit_bytes == 700 * MiB);

    // Not found: said, not guessed.
    auto stranger = MemoryProbe({(root.path() / "proc").string(), (root.path() / "cgroup").string(), 99});
    REQUIRE(stranger.problem());
    CHECK(stranger.problem()->find("is not under /sys/fs/cgroup/memory") != std::string::npos);
    CHECK(stranger.cgroup_dirs().empty());
}

TEST_CASE("mountinfo: cgroup2 mounted fresh in a namespace, and escaped mount points") {
    TempDir root;
    write_meminfo(root, 16 * 1024 * 1024, 12 * 1024 * 1024);
    root.write("proc/self/cgroup", "0::/build\n");
    root.write("proc/self/mountinfo", mount_line("/", "/sys/fs/cgroup/my\\040tree", true));
    root.write("cgroup/my tree/build/memory.max", std::to_string(3 * GiB));
    root.write("cgroup/my tree/build/memory.current", std::to_string(1 * GiB));
    auto probe = probe_in(root);
    CHECK(probe.cgroup_v2());
    REQUIRE_FALSE(probe.cgroup_dirs().empty());
    CHECK(probe.cgroup_dirs().front().ends_with("/my tree/build"));
    REQUIRE(probe.read().cgroup);
    CHECK(probe.read().cgroup->limit_bytes == 3 * GiB);
}
