#include <doctest/doctest.h>

#include "bytes.h"
#include "capabilities.h"
#include "gate_list.h"
#include "pressure.h"
#include "temp_dir.h"
#include "text_file.h"

#include <algorithm>

using namespace memgov;

TEST_CASE("field_numbers: the numbers of one /proc field, on any line, up to a unit") {
    std::string status = "Name:\tcc1plus\nPid:\t42\nUid:\t1000\t1000\t1000\t1000\nVmHWM:\t  5120 kB\n";
    CHECK(field_numbers(status, "Name").empty());
    CHECK(field_numbers("Pid:\t7\n", "Pid") == std::vector<std::uint64_t>{7});  // the first line too
    CHECK(field_numbers(status, "Uid") == std::vector<std::uint64_t>{1000, 1000, 1000, 1000});
    CHECK(field_numbers(status, "VmHWM") == std::vector<std::uint64_t>{5120});
    CHECK(field_numbers(status, "Vm").empty());         // a prefix of a name is not the name
    CHECK(field_numbers("Pid:\t-1\n", "Pid").empty());  // a pidfd's exited process
    CHECK(field_numbers("CapEff:\t000001ffffffffff\n", "CapEff", 16) == std::vector<std::uint64_t>{0x1ffffffffffull});
    CHECK(field_numbers(status, "NSpid").empty());
}

TEST_CASE("bytes are formatted for people") {
    CHECK(format_bytes(0) == "0 B");
    CHECK(format_bytes(1023) == "1023 B");
    CHECK(format_bytes(1536) == "1.50 KiB");
    CHECK(format_bytes(200ull << 20) == "200 MiB");
    CHECK(format_bytes(5ull << 30) == "5.00 GiB");
    CHECK(format_mb(620ull << 20) == "620MB");
    CHECK(format_mb((1ull << 20) - 1) == "1MB");
}

TEST_CASE("capability masks are read from a status text") {
    std::string status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\nCapBnd:\t0\n";
    CHECK(capability_mask(status, "CapEff") == 0x000001ffffffffffull);
    CHECK(capability_mask(status, "CapInh") == 0);
    CHECK_FALSE(capability_mask(status, "CapAmb"));
    CHECK_FALSE(capability_mask("CapEff:\tzz\n", "CapEff"));
    CHECK_FALSE(capability_mask("CapEffX:\t1\n", "CapEff"));
}

TEST_CASE("the default gate list has drivers, compilers proper and linkers") {
    auto names = default_gate_names();
    for (const char* name : {"gcc", "g++", "cc1plus", "lto1", "clang++", "rustc", "ld.lld", "mold",
                             "x86_64-linux-gnu-g++-12", "clang-14", "collect2"})
        CHECK_MESSAGE(std::count(names.begin(), names.end(), name) == 1, name);
    for (const auto& name : names) CHECK(name.size() < 64);
    CHECK(std::count(names.begin(), names.end(), "make") == 0);
    CHECK(std::count(names.begin(), names.end(), "sh") == 0);
}

TEST_CASE("pressure: the some and full totals of a PSI file") {
    auto both = parse_pressure(
        "some avg10=0.00 avg60=0.00 avg300=0.01 total=9930990\n"
        "full avg10=0.00 avg60=0.00 avg300=0.00 total=4332400\n");
    REQUIRE(both);
    CHECK(both->first == 9930990);
    CHECK(both->second == 4332400);
    CHECK(parse_pressure("some avg10=1.00 avg60=0.00 avg300=0.00 total=12\n")->second == 0);  // no full line
    CHECK_FALSE(parse_pressure(""));
    CHECK_FALSE(parse_pressure("full avg10=0.00 total=3\n"));
    CHECK_FALSE(parse_pressure("some avg10=0.00 total=x\n"));
}

TEST_CASE("pressure: a cgroup's own files first, else the host's") {
    TempDir dir;
    std::string psi =
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=100\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=50\n";
    for (const char* resource : {"memory", "cpu", "io"}) dir.write(std::string("proc/pressure/") + resource, psi);
    dir.write("cg/memory.pressure",
              "some avg10=0.00 avg60=0.00 avg300=0.00 total=7\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=3\n");
    std::string proc = (dir.path() / "proc").string();
    // The cgroup lacks cpu.pressure and io.pressure: the host's set, whole.
    auto host = read_pressure((dir.path() / "cg").string(), proc);
    REQUIRE(host);
    CHECK(host->total_us[Pressure::memory_some] == 100);
    dir.write("cg/cpu.pressure", psi);
    dir.write("cg/io.pressure", psi);
    auto own = read_pressure((dir.path() / "cg").string(), proc);
    REQUIRE(own);
    CHECK(own->total_us[Pressure::memory_some] == 7);
    CHECK(own->total_us[Pressure::memory_full] == 3);
    CHECK(own->total_us[Pressure::io_full] == 50);
    CHECK_FALSE(read_pressure("", (dir.path() / "nowhere").string()));
}

TEST_CASE("read_text_file: a read that fails midway is a short read, never an exception") {
    // A directory opens and then fails to read (EISDIR), as a /proc file of a process that
    // exits while it is read fails (ESRCH); libstdc++ throws from the stream buffer there.
    TempDir dir;
    std::optional<std::string> text;
    CHECK_NOTHROW(text = read_text_file(dir.path().string()));
    CHECK(text.value_or("").empty());
    CHECK_FALSE(read_text_file((dir.path() / "missing").string()));
}
