#include "daemon_protocol.h"

#include <fmt/format.h>

#include <limits>

namespace memgov {
namespace {

using json = nlohmann::json;

constexpr const char* op_names[] = {"register", "usage", "hold", "release", "processes", "turn", "publish", "end_turn"};
// More ids than any message can carry: a request listing more is malformed.
constexpr std::size_t max_ids = max_daemon_message / 2;

std::vector<std::uint8_t> cbor(const json& value) { return json::to_cbor(value); }

// Throws json::exception (caught by the parsers) for a wrong type or a value out of range.
pid_t pid_from(const json& value) {
    auto number = value.get<std::int64_t>();
    if (number <= 0 || number > std::numeric_limits<pid_t>::max())
        throw json::other_error::create(501, "bad pid", &value);
    return static_cast<pid_t>(number);
}

std::vector<pid_t> pids_from(const json& value) {
    if (!value.is_array() || value.size() > max_ids) throw json::other_error::create(501, "bad pid list", &value);
    std::vector<pid_t> pids;
    for (const auto& item : value) pids.push_back(pid_from(item));
    return pids;
}

std::uint64_t count_from(const json& object, const char* name) {
    auto it = object.find(name);
    return it == object.end() ? 0 : it->get<std::uint64_t>();
}

std::optional<json> parse_cbor(std::span<const std::uint8_t> bytes, std::string& error) {
    if (bytes.size() > max_daemon_message) {
        error = fmt::format("a message of {} bytes (at most {})", bytes.size(), max_daemon_message);
        return std::nullopt;
    }
    json value;
    try {
        // allow_exceptions=false is not enough: a huge declared array size still throws
        // (out_of_range.408), as the fuzzer found.
        value = json::from_cbor(bytes.begin(), bytes.end(), true, false);
    } catch (const json::exception&) {
        value = json::value_t::discarded;
    }
    if (value.is_discarded() || !value.is_object()) {
        error = "a message that is not a CBOR map";
        return std::nullopt;
    }
    return value;
}

json costs_json(const TaskCosts& costs) {
    return {costs.cpu_ns, costs.run_delay_ns, costs.io_delay_ns, costs.reclaim_delay_ns, costs.major_faults};
}

TaskCosts costs_from(const json& value) {
    if (!value.is_array() || value.size() != 5) throw json::other_error::create(501, "bad costs", &value);
    return {value[0].get<std::uint64_t>(), value[1].get<std::uint64_t>(), value[2].get<std::uint64_t>(),
            value[3].get<std::uint64_t>(), value[4].get<std::uint64_t>()};
}

json event_json(const TrackerEvent& event) {
    return std::visit(
        [](const auto& e) -> json {
            using Event = std::decay_t<decltype(e)>;
            json out{{"pid", e.pid}, {"build", e.build}, {"job", e.job}, {"at", e.timestamp_ns}, {"comm", e.comm}};
            if constexpr (std::is_same_v<Event, ExecEvent>) {
                out.update(
                    {{"kind", "exec"},
                     {"ppid", e.ppid},
                     {"flags", json::array({e.job_root, e.waiting, e.granted, e.argv_truncated, e.argv_unreadable})},
                     {"filename", e.filename},
                     {"argv", e.argv}});
                // A key of its own, only when set: a client older than it reads the rest.
                if (e.other_user) out["other_user"] = true;
            } else if constexpr (std::is_same_v<Event, ExitEvent>) {
                out.update({{"kind", "exit"},
                            {"ppid", e.ppid},
                            {"status", e.wait_status},
                            {"peak", e.peak_rss_bytes},
                            {"job_peak", e.job_peak_bytes},
                            {"costs", costs_json(e.costs)}});
            } else {
                out.update({{"kind", "oom"}, {"rss", e.rss_bytes}, {"peak", e.peak_rss_bytes}});
            }
            return out;
        },
        event);
}

// Pids in events may be 0 (glue has no job; a process whose parent is not followed).
pid_t any_pid(const json& value) {
    auto number = value.get<std::int64_t>();
    if (number < 0 || number > std::numeric_limits<pid_t>::max())
        throw json::other_error::create(501, "bad pid", &value);
    return static_cast<pid_t>(number);
}

TrackerEvent event_from(const json& in) {
    std::string kind = in.at("kind").get<std::string>();
    pid_t pid = pid_from(in.at("pid"));
    pid_t build = any_pid(in.at("build"));
    pid_t job = any_pid(in.at("job"));
    std::uint64_t at = in.at("at").get<std::uint64_t>();
    std::string comm = in.at("comm").get<std::string>();
    if (kind == "exec") {
        const auto& flags = in.at("flags");
        if (!flags.is_array() || flags.size() != 5) throw json::other_error::create(501, "bad flags", &flags);
        return ExecEvent{.pid = pid,
                         .build = build,
                         .ppid = any_pid(in.at("ppid")),
                         .job = job,
                         .job_root = flags[0].get<bool>(),
                         .waiting = flags[1].get<bool>(),
                         .granted = flags[2].get<bool>(),
                         .other_user = in.contains("other_user") && in.at("other_user").get<bool>(),
                         .argv_truncated = flags[3].get<bool>(),
                         .argv_unreadable = flags[4].get<bool>(),
                         .timestamp_ns = at,
                         .comm = std::move(comm),
                         .filename = in.at("filename").get<std::string>(),
                         .argv = in.at("argv").get<std::vector<std::string>>()};
    }
    if (kind == "exit")
        return ExitEvent{.pid = pid,
                         .build = build,
                         .ppid = any_pid(in.at("ppid")),
                         .job = job,
                         .wait_status = in.at("status").get<int>(),
                         .timestamp_ns = at,
                         .peak_rss_bytes = in.at("peak").get<std::uint64_t>(),
                         .job_peak_bytes = in.at("job_peak").get<std::uint64_t>(),
                         .comm = std::move(comm),
                         .costs = costs_from(in.at("costs"))};
    if (kind == "oom")
        return OomKillEvent{.pid = pid,
                            .build = build,
                            .job = job,
                            .timestamp_ns = at,
                            .rss_bytes = in.at("rss").get<std::uint64_t>(),
                            .peak_rss_bytes = in.at("peak").get<std::uint64_t>(),
                            .comm = std::move(comm)};
    throw json::other_error::create(501, "unknown event kind", &in);
}

}  // namespace

std::vector<std::uint8_t> encode_request(const DaemonRequest& request) {
    json out{{"op", op_names[static_cast<int>(request.op)]}};
    if (request.op == DaemonRequest::Op::register_build) {
        out["gate"] = request.gate;
        out["ledger"] = request.ledger;
        if (request.nice) out["nice"] = request.nice;
    }
    if (request.job) out["job"] = *request.job;
    if (!request.ids.empty()) out["ids"] = request.ids;
    if (!request.text.empty()) out["text"] = request.text;
    if (!request.cgroup.empty()) out["cgroup"] = request.cgroup;
    if (request.patience_ms) out["patience_ms"] = request.patience_ms;
    return cbor(out);
}

std::optional<DaemonRequest> parse_request(std::span<const std::uint8_t> bytes, std::string& error) {
    auto in = parse_cbor(bytes, error);
    if (!in) return std::nullopt;
    try {
        DaemonRequest request;
        std::string op = in->at("op").get<std::string>();
        auto known = std::find(std::begin(op_names), std::end(op_names), op);
        if (known == std::end(op_names)) {
            error = fmt::format("an unknown request '{}'", op.substr(0, 32));
            return std::nullopt;
        }
        request.op = static_cast<DaemonRequest::Op>(known - std::begin(op_names));
        if (in->contains("gate")) request.gate = in->at("gate").get<bool>();
        if (in->contains("ledger")) request.ledger = in->at("ledger").get<bool>();
        if (in->contains("nice")) request.nice = in->at("nice").get<std::int32_t>();
        if (in->contains("job")) request.job = pid_from(in->at("job"));
        if (in->contains("ids")) request.ids = pids_from(in->at("ids"));
        if (in->contains("text")) request.text = in->at("text").get<std::string>();
        if (in->contains("cgroup")) request.cgroup = in->at("cgroup").get<std::string>();
        if (in->contains("patience_ms")) request.patience_ms = in->at("patience_ms").get<std::uint32_t>();
        if (request.op == DaemonRequest::Op::hold && !request.job) {
            error = "a hold request without a job";
            return std::nullopt;
        }
        return request;
    } catch (const json::exception& bad) {
        error = fmt::format("a malformed request ({})", bad.what());
        return std::nullopt;
    }
}

std::vector<std::uint8_t> encode_reply(const DaemonMessage& reply) {
    json out{{"ok", reply.ok}};
    if (!reply.error.empty()) out["error"] = reply.error;
    if (!reply.note.empty()) out["note"] = reply.note;
    if (!reply.entries.empty()) out["entries"] = reply.entries;
    if (!reply.pids.empty()) out["pids"] = reply.pids;
    if (!reply.usage.empty()) {
        json usage = json::array();
        for (const auto& [job, use] : reply.usage) usage.push_back({job, use.rss_bytes, use.peak_bytes, use.nprocs});
        out["usage"] = std::move(usage);
    }
    const TrackerTotals& totals = reply.totals;
    out["totals"] = {{"rss", totals.rss_bytes},
                     {"peak", totals.peak_bytes},
                     {"live", totals.procs_live},
                     {"seen", totals.procs_seen},
                     {"execs", totals.execs},
                     {"dropped", totals.events_dropped},
                     {"procs_full", totals.procs_map_full},
                     {"jobs_full", totals.jobs_map_full},
                     {"oom", totals.oom_kills}};
    return cbor(json{{"reply", std::move(out)}});
}

std::vector<std::uint8_t> encode_event(const TrackerEvent& event) { return cbor(json{{"event", event_json(event)}}); }

std::optional<DaemonMessage> parse_message(std::span<const std::uint8_t> bytes, std::string& error) {
    auto in = parse_cbor(bytes, error);
    if (!in) return std::nullopt;
    try {
        DaemonMessage message;
        if (in->contains("event")) {
            message.kind = DaemonMessage::Kind::event;
            message.event = event_from(in->at("event"));
            return message;
        }
        const json& reply = in->at("reply");
        message.ok = reply.at("ok").get<bool>();
        if (reply.contains("error")) message.error = reply.at("error").get<std::string>();
        if (reply.contains("note")) message.note = reply.at("note").get<std::string>();
        if (reply.contains("entries")) message.entries = reply.at("entries").get<std::vector<std::string>>();
        if (reply.contains("pids")) message.pids = pids_from(reply.at("pids"));
        if (reply.contains("usage")) {
            for (const auto& row : reply.at("usage")) {
                if (!row.is_array() || row.size() != 4) throw json::other_error::create(501, "bad usage row", &row);
                message.usage.emplace_back(
                    pid_from(row[0]),
                    JobUsage{row[1].get<std::uint64_t>(), row[2].get<std::uint64_t>(), row[3].get<std::uint32_t>()});
            }
        }
        if (reply.contains("totals")) {
            const json& totals = reply.at("totals");
            message.totals = {.rss_bytes = count_from(totals, "rss"),
                              .peak_bytes = count_from(totals, "peak"),
                              .procs_live = count_from(totals, "live"),
                              .procs_seen = count_from(totals, "seen"),
                              .execs = count_from(totals, "execs"),
                              .events_dropped = count_from(totals, "dropped"),
                              .procs_map_full = count_from(totals, "procs_full"),
                              .jobs_map_full = count_from(totals, "jobs_full"),
                              .oom_kills = count_from(totals, "oom")};
        }
        return message;
    } catch (const json::exception& bad) {
        error = fmt::format("a malformed message from the daemon ({})", bad.what());
        return std::nullopt;
    }
}

}  // namespace memgov
