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

// Far above any message (an exec event's argv is at most 30 KiB, a ledger entry with its
// 256 jobs ~100 KiB), below a Unix socket's default send buffer; larger ones are refused.
constexpr std::size_t max_daemon_message = 160 * 1024;
// A command line or cgroup path sent for the ledger is cut to this.
constexpr std::size_t max_daemon_text = 4096;

struct DaemonRequest {
    enum class Op {
        register_build,  // the root's pidfd rides along (SCM_RIGHTS); `gate`, `nice`; with `ledger`,
                         // the daemon keeps the build's host-ledger entry (`text`: its
                         // command, `cgroup`: its memory cgroup directory)
        usage,           // `ids`: jobs whose use to report, with the build's totals
        hold,            // `job`: enter its processes in the guard, for the client to stop
        release,         // `ids`: processes the client continued (no reply)
        processes,       // the build's processes, or `job`'s only
        turn,            // the ledger's turn, waiting up to `patience_ms`: the other entries
        publish,         // `text`: the build's ledger entry, one line (no reply)
        end_turn         // (no reply)
    };
    Op op = Op::usage;
    bool gate = true;
    bool ledger = false;
    std::int32_t nice = 0;  // register_build: the build's --nice
    std::optional<pid_t> job;
    std::vector<pid_t> ids;
    std::string text;
    std::string cgroup;
    std::uint32_t patience_ms = 0;
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
    std::string note;                               // register: why there is no ledger entry
    std::vector<std::string> entries;               // turn: the other builds' ledger entries
    std::vector<pid_t> pids;                        // hold, processes
    std::vector<std::pair<pid_t, JobUsage>> usage;  // usage
    TrackerTotals totals;                           // usage
    std::optional<TrackerEvent> event;              // event
};

std::vector<std::uint8_t> encode_reply(const DaemonMessage& reply);
std::vector<std::uint8_t> encode_event(const TrackerEvent& event);
std::optional<DaemonMessage> parse_message(std::span<const std::uint8_t> bytes, std::string& error);

}  // namespace memgov
