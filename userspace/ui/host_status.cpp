#include "host_status.h"

#include <fmt/format.h>

#include <functional>
#include <vector>

#include "bytes.h"

namespace memgov {
namespace {

struct Sums {
    std::uint64_t build = 0;
    std::uint64_t imminent = 0;
    std::uint64_t kept = 0;
};

Sums sums_of(const std::vector<LedgerEntry>& builds) {
    Sums sums;
    for (const auto& entry : builds) {
        sums.build += entry.state.build_bytes;
        sums.imminent += entry.state.share.imminent_bytes;
        sums.kept += entry.state.share.kept_bytes + entry.state.grant_bytes;
    }
    return sums;
}

}  // namespace

std::string host_status_text(const HostStatus& status, const UserNames& user_name) {
    std::string text;
    if (status.builds.empty())
        return fmt::format("memgov status: no build is governed on this host (ledger {})\n", status.ledger_dir);
    text += fmt::format("memgov status: {} build{} governed on this host (ledger {})\n", status.builds.size(),
                        status.builds.size() == 1 ? "" : "s", status.ledger_dir);
    Sums sums = sums_of(status.builds);
    text += fmt::format(
        "memory: {} total, {} available; the builds use {}, are about to take {} more and keep {} "
        "free for surprises and granted starts\n",
        format_bytes(status.memory.total_bytes), format_bytes(status.memory.available_bytes), format_bytes(sums.build),
        format_bytes(sums.imminent), format_bytes(sums.kept));
    if (status.memory.cgroup)
        text += fmt::format("memory cgroup of this command: {} of {} used\n",
                            format_bytes(status.memory.cgroup->used_bytes),
                            format_bytes(status.memory.cgroup->limit_bytes));
    for (const auto& entry : status.builds) {
        const LedgerState& state = entry.state;
        text += fmt::format("\nbuild of {} (memgov pid {}): {}\n", user_name(entry.build.uid), entry.build.pid,
                            entry.build.command);
        text += fmt::format("  {} running, {} waiting, {} stopped; uses {}, {} imminent; memory cgroup {}\n",
                            state.share.running, state.waiting, state.stopped, format_bytes(state.build_bytes),
                            format_bytes(state.share.imminent_bytes),
                            entry.build.cgroup.empty() ? "none" : entry.build.cgroup);
        const auto& jobs = state.jobs.value_or(std::vector<LedgerJob>{});
        if (jobs.empty()) continue;
        text += fmt::format("  {:>8}  {:<8} {:>10} {:>10}  {}\n", "PID", "STATE", "CURRENT", "PREDICTED", "KEY");
        for (const auto& job : jobs)
            text += fmt::format("  {:>8}  {:<8} {:>10} {:>10}  {}\n", job.view.job, state_name(job.view.state),
                                job.view.state == JobView::State::waiting ? "-" : format_bytes(job.view.current_bytes),
                                format_bytes(job.view.reserved_bytes), job.key);
        std::size_t listed_of = state.share.running + state.waiting + state.stopped;
        if (listed_of > jobs.size()) text += fmt::format("  … and {} more\n", listed_of - jobs.size());
    }
    return text;
}

std::string host_status_prometheus(const HostStatus& status, const UserNames& user_name) {
    // Label values escape backslash, double quote and newline.
    auto label = [](const std::string& value) {
        std::string escaped;
        for (char c : value) {
            if (c == '\\' || c == '"') escaped += '\\';
            escaped += c == '\n' ? std::string("\\n") : std::string(1, c);
        }
        return escaped;
    };
    std::string text;
    auto family = [&](const char* name, const char* type, const char* help) {
        text += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    };
    family("memgov_builds", "gauge", "Builds governed on this host.");
    text += fmt::format("memgov_builds {}\n", status.builds.size());
    family("memgov_available_bytes", "gauge", "Memory available on the host (MemAvailable).");
    text += fmt::format("memgov_available_bytes {}\n", status.memory.available_bytes);
    struct Series {
        const char* name;
        const char* type;
        const char* help;
        std::function<std::string(const LedgerState&)> value;
    };
    auto whole = [](auto member) { return [member](const LedgerState& s) { return std::to_string(member(s)); }; };
    const std::vector<Series> series = {
        {"memgov_build_bytes", "gauge", "Resident memory of the build's processes.",
         whole([](const LedgerState& s) { return s.build_bytes; })},
        {"memgov_imminent_bytes", "gauge", "Memory the build's running jobs are about to take.",
         whole([](const LedgerState& s) { return s.share.imminent_bytes; })},
        {"memgov_job_waits_total", "counter", "Jobs held back for memory at least once.",
         whole([](const LedgerState& s) { return s.jobs_waited; })},
        {"memgov_job_wait_seconds_total", "counter", "Time jobs waited for memory, summed over jobs.",
         [](const LedgerState& s) { return fmt::format("{:.3f}", s.seconds_waited); }},
        {"memgov_emergency_stops_total", "counter", "Running jobs stopped because memory was about to run out.",
         whole([](const LedgerState& s) { return s.emergency_stops; })},
        {"memgov_oom_kills_total", "counter", "Processes of the build killed by the kernel's OOM killer.",
         whole([](const LedgerState& s) { return s.oom_kills; })},
        {"memgov_events_dropped_total", "counter", "Kernel records memgov could not receive.",
         whole([](const LedgerState& s) { return s.events_dropped; })},
    };
    auto labels = [&](const LedgerEntry& entry) {
        return fmt::format("memgov_pid=\"{}\",user=\"{}\"", entry.build.pid, label(user_name(entry.build.uid)));
    };
    family("memgov_jobs", "gauge", "The build's jobs by state: running, waiting (held at exec), stopped.");
    for (const auto& entry : status.builds)
        for (auto [state, count] : {std::pair{"running", entry.state.share.running},
                                    {"waiting", entry.state.waiting},
                                    {"stopped", entry.state.stopped}})
            text += fmt::format("memgov_jobs{{{},state=\"{}\"}} {}\n", labels(entry), state, count);
    for (const auto& one : series) {
        family(one.name, one.type, one.help);
        for (const auto& entry : status.builds)
            text += fmt::format("{}{{{}}} {}\n", one.name, labels(entry), one.value(entry.state));
    }
    return text;
}

nlohmann::json host_status_json(const HostStatus& status, const UserNames& user_name) {
    Sums sums = sums_of(status.builds);
    nlohmann::json json{{"ledger", status.ledger_dir},
                        {"memory",
                         {{"total_bytes", status.memory.total_bytes},
                          {"available_bytes", status.memory.available_bytes},
                          {"builds_bytes", sums.build},
                          {"imminent_bytes", sums.imminent},
                          {"kept_bytes", sums.kept}}},
                        {"builds", nlohmann::json::array()}};
    for (const auto& entry : status.builds) {
        const LedgerState& state = entry.state;
        nlohmann::json jobs = nlohmann::json::array();
        for (const auto& job : state.jobs.value_or(std::vector<LedgerJob>{}))
            jobs.push_back({{"pid", job.view.job},
                            {"state", state_name(job.view.state)},
                            {"current_bytes", job.view.current_bytes},
                            {"predicted_bytes", job.view.reserved_bytes},
                            {"key", job.key}});
        json["builds"].push_back({{"memgov_pid", entry.build.pid},
                                  {"uid", entry.build.uid},
                                  {"user", user_name(entry.build.uid)},
                                  {"command", entry.build.command},
                                  {"cgroup", entry.build.cgroup},
                                  {"running", state.share.running},
                                  {"waiting", state.waiting},
                                  {"stopped", state.stopped},
                                  {"build_bytes", state.build_bytes},
                                  {"imminent_bytes", state.share.imminent_bytes},
                                  {"kept_bytes", state.share.kept_bytes + state.grant_bytes},
                                  {"jobs", jobs}});
    }
    return json;
}

}  // namespace memgov
