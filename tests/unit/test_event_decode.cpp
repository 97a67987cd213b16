#include <doctest/doctest.h>

#include <cstring>
#include <vector>

#include "event_decode.h"
#include "memgov/abi.h"

using namespace memgov;

namespace {

std::vector<std::byte> exec_record(const std::string& argv_block, __u32 flags, __u32 claimed_len) {
    mg_exec_event raw{};
    raw.header.kind = MG_EVENT_EXEC;
    raw.header.pid = 42;
    raw.header.timestamp_ns = 7;
    raw.ppid = 41;
    raw.job = 42;
    raw.flags = flags;
    raw.argv_len = claimed_len;
    std::strncpy(raw.comm, "cc1plus", sizeof(raw.comm));
    std::strncpy(raw.filename, "/usr/bin/g++", sizeof(raw.filename));
    std::vector<std::byte> bytes(sizeof(raw) + argv_block.size());
    std::memcpy(bytes.data(), &raw, sizeof(raw));
    std::memcpy(bytes.data() + sizeof(raw), argv_block.data(), argv_block.size());
    return bytes;
}

}  // namespace

TEST_CASE("exec records decode with argv split on NUL") {
    std::string block("g++\0-c\0a b.cc\0", 14);
    auto event = decode_event(exec_record(block, MG_EXEC_JOB_ROOT | MG_EXEC_WAITING, block.size()));
    REQUIRE(event);
    auto& exec = std::get<ExecEvent>(*event);
    CHECK(exec.pid == 42);
    CHECK(exec.ppid == 41);
    CHECK(exec.job_root);
    CHECK(exec.waiting);
    CHECK_FALSE(exec.granted);
    CHECK_FALSE(exec.argv_truncated);
    CHECK(exec.comm == "cc1plus");
    CHECK(exec.filename == "/usr/bin/g++");
    CHECK(exec.argv == std::vector<std::string>{"g++", "-c", "a b.cc"});
}

TEST_CASE("records of a daemon's client in a container carry its own pids beside ours") {
    std::string block("cc\0", 3);
    auto bytes = exec_record(block, MG_EXEC_JOB_ROOT, block.size());
    auto* raw = reinterpret_cast<mg_exec_event*>(bytes.data());
    raw->header.build = 3;
    raw->header.ns_pid = 7;
    raw->ns_ppid = 5;
    raw->ns_job = 7;
    auto exec = std::get<ExecEvent>(*decode_event(bytes));
    CHECK(exec.pid == 42);
    CHECK(exec.build == 3);
    CHECK(exec.in_client.pid == 7);
    CHECK(exec.in_client.ppid == 5);
    CHECK(exec.in_client.job == 7);

    mg_exit_event exit_raw{.header = {.kind = MG_EVENT_EXIT, .pid = 42, .ns_pid = 7}, .ns_ppid = 5, .ns_job = 7};
    std::vector<std::byte> exit_bytes(sizeof(exit_raw));
    std::memcpy(exit_bytes.data(), &exit_raw, sizeof(exit_raw));
    auto exit = std::get<ExitEvent>(*decode_event(exit_bytes));
    CHECK(exit.in_client.pid == 7);
    CHECK(exit.in_client.ppid == 5);
    CHECK(exit.in_client.job == 7);
}

TEST_CASE("an exec the kernel started under the grant, or one its daemon client may not signal: a job root, not held") {
    auto decoded = [](std::uint32_t flags) {
        std::string block("cc\0", 3);
        auto event = decode_event(exec_record(block, MG_EXEC_JOB_ROOT | flags, block.size()));
        REQUIRE(event);
        return std::get<ExecEvent>(*event);
    };
    auto granted = decoded(MG_EXEC_GRANTED);
    CHECK(granted.job_root);
    CHECK(granted.granted);
    CHECK_FALSE(granted.waiting);
    CHECK_FALSE(granted.other_user);
    auto other_user = decoded(MG_EXEC_OTHER_USER);
    CHECK(other_user.job_root);
    CHECK(other_user.other_user);
    CHECK_FALSE(other_user.waiting);
    CHECK_FALSE(other_user.granted);
}

TEST_CASE("a record shorter than its claimed argv is truncated, not overread") {
    std::string block("make\0-j", 7);
    auto event = decode_event(exec_record(block, 0, 4096));
    REQUIRE(event);
    auto& exec = std::get<ExecEvent>(*event);
    CHECK(exec.argv_truncated);
    CHECK(exec.argv == std::vector<std::string>{"make", "-j"});
}

TEST_CASE("argv with empty arguments and binary bytes survives") {
    std::string block("a\0\0\xff\xfe\0", 6);
    CHECK(split_argv({block.data(), block.size()}) == std::vector<std::string>{"a", "", "\xff\xfe"});
    CHECK(split_argv({}).empty());
}

TEST_CASE("exit and OOM records decode") {
    mg_exit_event raw{};
    raw.header.kind = MG_EVENT_EXIT;
    raw.header.pid = 9;
    raw.job = 8;
    raw.exit_code = 9;  // killed by SIGKILL
    raw.peak_rss_bytes = 1 << 20;
    raw.job_peak_bytes = 3 << 20;
    std::memcpy(raw.comm, "sixteen-chars-xx", 16);  // no NUL: bounded anyway
    auto event = decode_event({reinterpret_cast<const std::byte*>(&raw), sizeof(raw)});
    REQUIRE(event);
    auto& exit = std::get<ExitEvent>(*event);
    CHECK(exit.wait_status == 9);
    CHECK(exit.peak_rss_bytes == 1 << 20);
    CHECK(exit.job_peak_bytes == 3 << 20);
    CHECK(exit.comm == "sixteen-chars-xx");

    mg_oom_event oom{};
    oom.header.kind = MG_EVENT_OOM_KILL;
    oom.header.pid = 5;
    oom.rss_bytes = 100;
    auto oom_event = decode_event({reinterpret_cast<const std::byte*>(&oom), sizeof(oom)});
    REQUIRE(oom_event);
    CHECK(std::get<OomKillEvent>(*oom_event).rss_bytes == 100);
}

TEST_CASE("short or unknown records are rejected") {
    mg_event_header header{};
    header.kind = MG_EVENT_EXIT;
    CHECK_FALSE(decode_event({reinterpret_cast<const std::byte*>(&header), sizeof(header)}));
    header.kind = 99;
    CHECK_FALSE(decode_event({reinterpret_cast<const std::byte*>(&header), sizeof(header)}));
    CHECK_FALSE(decode_event({}));
}
