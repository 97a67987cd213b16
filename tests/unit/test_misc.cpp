#include <doctest/doctest.h>

#include "bytes.h"
#include "capabilities.h"
#include "gate_list.h"

#include <algorithm>

using namespace memgov;

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

