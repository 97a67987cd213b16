// The daemon's messages (tracking/daemon_protocol.h): what is sent is what is read, argv bytes
// included, and anything malformed is refused with the reason.
#include <doctest/doctest.h>

#include "daemon_protocol.h"

using namespace memgov;

TEST_CASE("daemon protocol: requests come back as they were sent") {
    for (const DaemonRequest& sent : {DaemonRequest{.op = DaemonRequest::Op::register_build, .gate = false},
                                      DaemonRequest{.op = DaemonRequest::Op::usage, .ids = {1, 2, 4'000'000}},
                                      DaemonRequest{.op = DaemonRequest::Op::hold, .job = 42},
                                      DaemonRequest{.op = DaemonRequest::Op::release, .ids = {7}},
                                      DaemonRequest{.op = DaemonRequest::Op::processes},
                                      DaemonRequest{.op = DaemonRequest::Op::register_build,
                                      .ledger = true,
                                      .nice = -5,
                                      .text = "make -j8",
                                      .cgroup = "/sys/fs/cgroup/ci"},
                                      DaemonRequest{.op = DaemonRequest::Op::turn, .patience_ms = 200},
                                      DaemonRequest{.op = DaemonRequest::Op::publish, .text = "{\"pid\":1}"},
                                      DaemonRequest{.op = DaemonRequest::Op::end_turn}}) {
        std::string error;
        auto read = parse_request(encode_request(sent), error);
        REQUIRE(read);
        CHECK(read->op == sent.op);
        CHECK(read->gate == sent.gate);
        CHECK(read->job == sent.job);
        CHECK(read->ids == sent.ids);
        CHECK(read->ledger == sent.ledger);
        CHECK(read->nice == sent.nice);
        CHECK(read->text == sent.text);
        CHECK(read->cgroup == sent.cgroup);
        CHECK(read->patience_ms == sent.patience_ms);
    }
}

TEST_CASE("daemon protocol: events and replies come back whole, argv bytes as they were") {
    ExecEvent exec{.pid = 10,
                   .build = 9,
                   .ppid = 9,
                   .job = 10,
                   .job_root = true,
                   .waiting = true,
                   .other_user = true,
                   .timestamp_ns = 123456789,
                   .comm = "cc1plus",
                   .filename = "/usr/bin/g++",
                   .argv = {"g++", "-c", std::string("caf\xe9.cpp", 8), std::string("a\0b", 3)}};
    std::string error;
    auto read = parse_message(encode_event(exec), error);
    REQUIRE(read);
    REQUIRE(read->kind == DaemonMessage::Kind::event);
    const auto& back = std::get<ExecEvent>(*read->event);
    CHECK(back.argv == exec.argv);
    CHECK(back.build == 9);
    CHECK(back.waiting);
    CHECK_FALSE(back.granted);
    CHECK(back.other_user);
    CHECK(back.timestamp_ns == 123456789);

    ExitEvent exit{
        .pid = 10, .job = 10, .wait_status = 9, .peak_rss_bytes = 5, .costs = {.cpu_ns = 1, .major_faults = 2}};
    auto exit_back = std::get<ExitEvent>(*parse_message(encode_event(exit), error)->event);
    CHECK(exit_back.wait_status == 9);
    CHECK(exit_back.costs.major_faults == 2);
    CHECK(std::holds_alternative<OomKillEvent>(
        *parse_message(encode_event(OomKillEvent{.pid = 3, .rss_bytes = 7}), error)->event));

    DaemonMessage reply{.ok = false,
                        .error = "no",
                        .note = "no ledger",
                        .entries = {"{}", "{\"a\":1}"},
                        .pids = {4, 5},
                        .usage = {{4, JobUsage{100, 200, 2}}}};
    reply.totals.rss_bytes = 300;
    auto reply_back = parse_message(encode_reply(reply), error);
    REQUIRE(reply_back);
    CHECK(reply_back->kind == DaemonMessage::Kind::reply);
    CHECK_FALSE(reply_back->ok);
    CHECK(reply_back->error == "no");
    CHECK(reply_back->note == "no ledger");
    CHECK(reply_back->entries == reply.entries);
    CHECK(reply_back->pids == std::vector<pid_t>{4, 5});
    REQUIRE(reply_back->usage.size() == 1);
    CHECK(reply_back->usage[0].second.peak_bytes == 200);
    CHECK(reply_back->totals.rss_bytes == 300);
}

TEST_CASE("daemon protocol: malformed messages are refused with the reason") {
    auto cbor = [](const nlohmann::json& value) { return nlohmann::json::to_cbor(value); };
    std::string error;
    CHECK_FALSE(parse_request(std::vector<std::uint8_t>{0xff, 0x00}, error));
    CHECK(error.find("not a CBOR map") != std::string::npos);
    CHECK_FALSE(parse_request(cbor(nlohmann::json::array({1, 2})), error));
    CHECK_FALSE(parse_request(cbor({{"op", "format-disk"}}), error));
    CHECK(error.find("unknown request 'format-disk'") != std::string::npos);
    CHECK_FALSE(parse_request(cbor({{"op", "hold"}}), error));
    CHECK(error.find("without a job") != std::string::npos);
    CHECK_FALSE(parse_request(cbor({{"op", "hold"}, {"job", -1}}), error));
    CHECK_FALSE(parse_request(cbor({{"op", "usage"}, {"ids", "all"}}), error));
    CHECK(error.find("malformed request") != std::string::npos);
    CHECK_FALSE(parse_request(std::vector<std::uint8_t>(max_daemon_message + 1, 0xa0), error));
    CHECK(error.find("at most") != std::string::npos);
    // A declared array of 2^63 items (the fuzzer's find: the CBOR reader threw through
    // allow_exceptions=false).
    CHECK_FALSE(parse_request(
        std::vector<std::uint8_t>{0xa1, 0x62, 'o', 'p', 0x9b, 0x97, 0x90, 0x93, 0x9c, 0x90, 0xdb, 0x36, 0x6f}, error));
    CHECK(error.find("not a CBOR map") != std::string::npos);
    CHECK_FALSE(parse_message(cbor({{"event", {{"kind", "exec"}, {"pid", 1}}}}), error));
    CHECK(error.find("malformed message from the daemon") != std::string::npos);
    CHECK_FALSE(parse_message(cbor({{"reply", {{"ok", "yes"}}}}), error));
}
