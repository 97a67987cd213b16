// The rules of Chrome Trace Event JSON that ui.perfetto.dev and chrome://tracing rely on, as
// memgov's traces use them: known phases, numeric pids, tids and times, B/E slices that nest
// on each track and all end, numeric counters, named metadata. Returns what breaks them.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace trace_check {

inline std::vector<std::string> problems(const nlohmann::json& trace) {
    std::vector<std::string> found;
    if (!trace.is_array()) return {"the trace is not a JSON array"};
    std::map<std::pair<long, long>, std::vector<std::pair<std::string, double>>> open;  // per track
    std::size_t index = 0;
    for (const auto& event : trace) {
        std::string at = "event " + std::to_string(index++) + " " + event.dump().substr(0, 200);
        if (!event.is_object() || !event.contains("ph") || !event["ph"].is_string()) {
            found.push_back(at + ": no phase");
            continue;
        }
        std::string phase = event["ph"];
        static const std::set<std::string> phases{"B", "E", "X", "i", "I", "C", "M"};
        if (!phases.contains(phase)) found.push_back(at + ": unknown phase");
        if (!event.contains("pid") || !event["pid"].is_number_integer() || !event.contains("tid") ||
            !event["tid"].is_number_integer()) {
            found.push_back(at + ": pid and tid must be integers");
            continue;
        }
        if (phase != "E" &&
            (!event.contains("name") || !event["name"].is_string() || event["name"].get<std::string>().empty()))
            found.push_back(at + ": no name");
        if (phase == "M") {
            if (!event.contains("args") || !event["args"].contains("name") || !event["args"]["name"].is_string())
                found.push_back(at + ": metadata without args.name");
            continue;
        }
        if (!event.contains("ts") || !event["ts"].is_number() || event["ts"].get<double>() < 0) {
            found.push_back(at + ": ts must be a number >= 0");
            continue;
        }
        double ts = event["ts"];
        auto track = std::pair{event["pid"].get<long>(), event["tid"].get<long>()};
        if (phase == "B") open[track].push_back({event["name"], ts});
        if (phase == "E") {
            auto& stack = open[track];
            if (stack.empty()) {
                found.push_back(at + ": ends a slice that was never begun");
            } else {
                if (ts < stack.back().second) found.push_back(at + ": ends before its slice began");
                stack.pop_back();
            }
        }
        if (phase == "C") {
            if (!event.contains("args") || !event["args"].is_object() || event["args"].empty())
                found.push_back(at + ": counter without values");
            else
                for (const auto& [name, value] : event["args"].items())
                    if (!value.is_number()) found.push_back(at + ": counter value " + name + " is not a number");
        }
        if (phase == "i" || phase == "I") {
            static const std::set<std::string> scopes{"g", "p", "t"};
            if (event.contains("s") && (!event["s"].is_string() || !scopes.contains(event["s"].get<std::string>())))
                found.push_back(at + ": instant scope must be g, p or t");
        }
        if (event.contains("args") && !event["args"].is_object()) found.push_back(at + ": args must be an object");
    }
    for (const auto& [track, stack] : open)
        for (const auto& [name, ts] : stack)
            found.push_back("slice " + name + " on pid " + std::to_string(track.first) + " tid " +
                            std::to_string(track.second) + " never ends");
    return found;
}

// Names of the B slices on process `pid`, in order.
inline std::vector<std::string> slice_names(const nlohmann::json& trace, long pid) {
    std::vector<std::string> names;
    for (const auto& event : trace)
        if (event.value("ph", "") == "B" && event.value("pid", 0L) == pid) names.push_back(event["name"]);
    return names;
}

}  // namespace trace_check
