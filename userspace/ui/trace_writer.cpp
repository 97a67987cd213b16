#include "trace_writer.h"

#include <algorithm>
#include <cmath>

#include "build_report.h"
#include "job_key.h"

namespace memgov {

double mib(std::uint64_t bytes) { return std::round(static_cast<double>(bytes) / (1 << 20) * 10) / 10; }

namespace {

// Track groups (Chrome's "pid").
constexpr int jobs_track = 1;
constexpr int processes_track = 2;
// Counters are written again after this long even when unchanged, so a flat line is drawn.
constexpr auto counter_refresh = std::chrono::seconds(1);
constexpr std::size_t shown_argv_bytes = 512;

}  // namespace

int TraceWriter::Lanes::take() {
    auto free = std::find(busy.begin(), busy.end(), false);
    if (free == busy.end()) free = busy.insert(busy.end(), false);
    *free = true;
    return static_cast<int>(free - busy.begin()) + 1;
}

void TraceWriter::Lanes::give_back(int lane) {
    if (lane >= 1 && static_cast<std::size_t>(lane) <= busy.size()) busy[static_cast<std::size_t>(lane) - 1] = false;
}

TraceWriter::TraceWriter(std::ostream& out, Clock::time_point zero, const std::string& title, unsigned cpus)
    : out_(out), zero_(zero) {
    write({{"ph", "M"}, {"pid", jobs_track}, {"tid", 0}, {"name", "process_name"}, {"args", {{"name", title}}}});
    write({{"ph", "M"},
           {"pid", processes_track},
           {"tid", 0},
           {"name", "process_name"},
           {"args", {{"name", "processes that exec'd"}}}});
    nlohmann::json build{{"command", title}};
    if (cpus) build["cpus"] = cpus;
    instant(0, "build", zero, std::move(build));
}

TraceWriter::~TraceWriter() {
    // Slices still open (memgov stops before its build) end where the trace ends.
    for (const auto& [pid, job] : std::map<pid_t, OpenJob>(jobs_)) {
        nlohmann::json args = nlohmann::json::object();
        put_status(args, std::nullopt);  // still running when the trace ended
        close_job(pid, last_at_, std::move(args));
    }
    for (const auto& [pid, process] : std::map<pid_t, OpenProcess>(processes_)) process_exit(pid, last_at_, 0);
    out_ << (first_ ? "[\n" : "\n") << "]\n";
    out_.flush();
}

double TraceWriter::micros(Clock::time_point at) const {
    return std::max(0.0, std::chrono::duration<double, std::micro>(at - zero_).count());
}

void TraceWriter::write(nlohmann::json event) {
    out_ << (first_ ? "[\n" : ",\n") << event.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    first_ = false;
}

void TraceWriter::name_lane(int pid, int lane, const std::string& kind) {
    auto& named = pid == jobs_track ? named_job_lanes_ : named_process_lanes_;
    if (std::find(named.begin(), named.end(), lane) != named.end()) return;
    named.push_back(lane);
    write({{"ph", "M"},
           {"pid", pid},
           {"tid", lane},
           {"name", "thread_name"},
           {"args", {{"name", kind + " lane " + std::to_string(lane)}}}});
}

void TraceWriter::begin(int pid, int lane, const std::string& name, Clock::time_point at, nlohmann::json args) {
    auto& lane_last = lane_last_[{pid, lane}];
    at = lane_last = std::max(lane_last, at);
    last_at_ = std::max(last_at_, at);
    nlohmann::json event{{"ph", "B"}, {"pid", pid}, {"tid", lane}, {"ts", micros(at)}, {"name", name}};
    if (!args.is_null()) event["args"] = std::move(args);
    write(std::move(event));
}

void TraceWriter::end(int pid, int lane, Clock::time_point at, nlohmann::json args) {
    auto& lane_last = lane_last_[{pid, lane}];
    at = lane_last = std::max(lane_last, at);
    last_at_ = std::max(last_at_, at);
    nlohmann::json event{{"ph", "E"}, {"pid", pid}, {"tid", lane}, {"ts", micros(at)}};
    if (!args.is_null()) event["args"] = std::move(args);
    write(std::move(event));
}

void TraceWriter::instant(int lane, const std::string& name, Clock::time_point at, nlohmann::json args) {
    last_at_ = std::max(last_at_, at);
    write({{"ph", "i"},
           {"pid", jobs_track},
           {"tid", lane},
           {"ts", micros(at)},
           {"s", lane ? "t" : "g"},
           {"name", name},
           {"args", args.is_null() ? nlohmann::json::object() : std::move(args)}});
}

void TraceWriter::counter(const std::string& name, Clock::time_point at, nlohmann::json values) {
    write({{"ph", "C"}, {"pid", jobs_track}, {"tid", 0}, {"ts", micros(at)}, {"name", name}, {"args", values}});
    last_counters_[name] = std::move(values);
    last_counter_at_[name] = at;
}

void TraceWriter::job_started(pid_t job, const std::string& key, bool waiting, Clock::time_point at) {
    if (jobs_.contains(job)) return;
    OpenJob open{.lane = job_lanes_.take(), .waiting = waiting};
    name_lane(jobs_track, open.lane, "job");
    begin(jobs_track, open.lane, key, at, {{"job", job}});
    begin(jobs_track, open.lane, waiting ? "waiting" : "running", at);
    jobs_[job] = open;
}

void TraceWriter::job_admitted(pid_t job, Clock::time_point at, nlohmann::json why) {
    auto it = jobs_.find(job);
    if (it == jobs_.end() || !it->second.waiting) return;
    OpenJob& open = it->second;
    end(jobs_track, open.lane, at);
    open.waiting = false;
    instant(open.lane, "admitted", at, std::move(why));
    begin(jobs_track, open.lane, "running", at);
}

void TraceWriter::job_stopped(pid_t job, Clock::time_point at, nlohmann::json why) {
    auto it = jobs_.find(job);
    if (it == jobs_.end() || it->second.waiting || it->second.stopped) return;
    it->second.stopped = true;
    instant(it->second.lane, "emergency stop", at, why);
    begin(jobs_track, it->second.lane, "stopped", at, std::move(why));
}

void TraceWriter::job_resumed(pid_t job, Clock::time_point at, nlohmann::json why) {
    auto it = jobs_.find(job);
    if (it == jobs_.end() || !it->second.stopped) return;
    it->second.stopped = false;
    end(jobs_track, it->second.lane, at);
    instant(it->second.lane, "resumed", at, std::move(why));
}

void TraceWriter::job_note(pid_t job, const std::string& what, Clock::time_point at, nlohmann::json details) {
    auto it = jobs_.find(job);
    if (it != jobs_.end()) instant(it->second.lane, what, at, std::move(details));
}

void TraceWriter::job_ended(pid_t job, Clock::time_point at, std::uint64_t peak_bytes, int wait_status,
                            const TaskCosts& costs) {
    nlohmann::json args{{"peak_mib", mib(peak_bytes)}};
    put_status(args, wait_status);
    put_costs(args, costs);
    close_job(job, at, std::move(args));
}

void TraceWriter::close_job(pid_t job, Clock::time_point at, nlohmann::json args) {
    auto it = jobs_.find(job);
    if (it == jobs_.end()) return;
    OpenJob open = it->second;
    jobs_.erase(it);
    if (open.stopped) end(jobs_track, open.lane, at);
    end(jobs_track, open.lane, at);  // waiting or running
    end(jobs_track, open.lane, at, std::move(args));
    counter("lane " + std::to_string(open.lane) + " RSS (MiB)", at, {{"rss", 0}});
    job_lanes_.give_back(open.lane);
}

void TraceWriter::process_exec(pid_t pid, const std::vector<std::string>& argv, Clock::time_point at) {
    auto it = processes_.find(pid);
    if (it != processes_.end()) {
        end(processes_track, it->second.lane, at);  // its previous image
    } else {
        it = processes_.emplace(pid, OpenProcess{process_lanes_.take()}).first;
        name_lane(processes_track, it->second.lane, "process");
    }
    std::string shown = joined(argv);
    if (shown.size() > shown_argv_bytes) shown = shown.substr(0, shown_argv_bytes) + " …";
    begin(processes_track, it->second.lane, argv.empty() ? "?" : basename_of(argv.front()), at,
          {{"pid", pid}, {"argv", shown}});
}

void TraceWriter::process_exit(pid_t pid, Clock::time_point at, std::uint64_t peak_rss_bytes, const TaskCosts& costs) {
    auto it = processes_.find(pid);
    if (it == processes_.end()) return;
    nlohmann::json args{{"peak_rss_mib", mib(peak_rss_bytes)}};
    put_costs(args, costs);
    end(processes_track, it->second.lane, at, std::move(args));
    process_lanes_.give_back(it->second.lane);
    processes_.erase(it);
}

void TraceWriter::oom_kill(pid_t victim, const std::string& comm, Clock::time_point at, nlohmann::json details) {
    details["victim"] = victim;
    details["comm"] = comm;
    instant(0, "OOM kill", at, std::move(details));
}

void TraceWriter::events_dropped(std::uint64_t count, Clock::time_point at) {
    instant(0, "events lost", at, {{"count", count}});
}

void TraceWriter::memory(Clock::time_point at, const MemorySample& sample,
                         const std::map<pid_t, std::uint64_t>& job_rss, const std::optional<Pressure>& pressure) {
    // Written when a value moved by `step` or more, or a second after the last one.
    auto due = [&](const std::string& name, const nlohmann::json& values, double step) {
        auto last = last_counters_.find(name);
        if (last == last_counters_.end() || at - last_counter_at_[name] >= counter_refresh) return true;
        for (const auto& [key, value] : values.items())
            if (!last->second.contains(key) || std::abs(value.get<double>() - last->second[key].get<double>()) >= step)
                return true;
        return false;
    };
    auto maybe = [&](const std::string& name, nlohmann::json values, double step) {
        if (due(name, values, step)) counter(name, at, std::move(values));
    };
    maybe("memory (MiB)",
          {{"build", mib(sample.build_bytes)},
           {"other", mib(sample.other_bytes)},
           {"imminent", mib(sample.imminent_bytes)},
           {"available", mib(sample.available_bytes)},
           {"limit", mib(sample.limit_bytes)}},
          1.0);
    for (const auto& [job, rss] : job_rss)
        if (auto it = jobs_.find(job); it != jobs_.end())
            maybe("lane " + std::to_string(it->second.lane) + " RSS (MiB)", {{"rss", mib(rss)}}, 1.0);
    if (pressure) {
        if (last_pressure_ && at > last_pressure_->first) {
            double wall_us = std::chrono::duration<double, std::micro>(at - last_pressure_->first).count();
            auto share = [&](Pressure::Index index) {
                auto now = pressure->total_us[index];
                auto before = last_pressure_->second.total_us[index];
                return now > before ? std::round(static_cast<double>(now - before) / wall_us * 1000) / 10 : 0.0;
            };
            maybe("pressure (% of time stalled)",
                  {{"memory some", share(Pressure::memory_some)},
                   {"memory full", share(Pressure::memory_full)},
                   {"cpu some", share(Pressure::cpu_some)},
                   {"io some", share(Pressure::io_some)},
                   {"io full", share(Pressure::io_full)}},
                  0.1);
        }
        last_pressure_ = {at, *pressure};
    }
    out_.flush();  // a trace read while the build runs, or after memgov died, is up to date
}

}  // namespace memgov
