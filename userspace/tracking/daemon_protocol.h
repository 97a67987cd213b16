// What `memgov daemon` and its clients say to each other over the daemon's Unix socket
// (docs/DESIGN.md §12): one message per SOCK_SEQPACKET datagram, a CBOR map (binary-safe:
// argv bytes pass unchanged). Pure, so the parser is fuzzed (tests/fuzz/fuzz_daemon_message.cpp).
//
// A client registers its build's root (a child stopped before its exec, passed as a pidfd),
// then receives that build's tracker events and asks for its jobs' use; it stops and
// continues its own processes itself, entering them in the guard first ("hold"). The daemon
// never signals anyone's process: it only follows them.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "tracker.h"

namespace memgov {

// Far above any message (an exec event's argv is at most 30 KiB); larger ones are refused.
constexpr std::size_t max_daemon_message = 64 * 1024;

struct DaemonRequest {
    enum class Op {
        register_build,  // the root's pidfd rides along (SCM_RIGHTS); `gate`
        usage,           // `ids`: jobs whose use to report, with the build's totals
        hold,            // `job`: enter its processes in the guard, for the client to stop
        release,         // `ids`: processes the client continued (no reply)
        processes        // the build's processes, or `job`'s only
    };
    Op op = Op::usage;
    bool gate = true;
    std::optional<pid_t> job;
    std::vector<pid_t> ids;
};

std::vector<std::uint8_t> encode_request(const DaemonRequest& request);
// nullopt, with `error` set, for anything malformed (the daemon then drops the client).
std::optional<DaemonRequest> parse_request(std::span<const std::uint8_t> bytes, std::string& error);

// From the daemon: a reply to the last request, or one of the build's events.
struct DaemonMessage {
    enum class Kind { reply, event };
    Kind kind = Kind::reply;
    // reply
    bool ok = true;
    std::string error;
    std::vector<pid_t> pids;                        // hold, processes
    std::vector<std::pair<pid_t, JobUsage>> usage;  // usage
    TrackerTotals totals;                           // usage
    std::optional<TrackerEvent> event;              // event
};

std::vector<std::uint8_t> encode_reply(const DaemonMessage& reply);
std::vector<std::uint8_t> encode_event(const TrackerEvent& event);
std::optional<DaemonMessage> parse_message(std::span<const std::uint8_t> bytes, std::string& error);

}  // namespace memgov
