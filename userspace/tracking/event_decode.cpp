#include "event_decode.h"

#include <cstring>

#include "memgov/abi.h"

namespace memgov {
namespace {

template <std::size_t N>
std::string bounded_string(const char (&field)[N]) {
    return std::string(field, strnlen(field, N));
}

template <typename Record>
std::optional<Record> read_record(std::span<const std::byte> bytes) {
    if (bytes.size() < sizeof(Record)) return std::nullopt;
    Record record;
    std::memcpy(&record, bytes.data(), sizeof(Record));
    return record;
}

std::optional<TrackerEvent> decode_exec(std::span<const std::byte> bytes) {
    auto raw = read_record<mg_exec_event>(bytes);
    if (!raw) return std::nullopt;
    std::size_t argv_len = std::min<std::size_t>(raw->argv_len, bytes.size() - sizeof(mg_exec_event));
    auto argv_bytes = bytes.subspan(sizeof(mg_exec_event), argv_len);

    ExecEvent event;
    event.pid = static_cast<pid_t>(raw->header.pid);
    event.build = static_cast<pid_t>(raw->header.build);
    event.ppid = static_cast<pid_t>(raw->ppid);
    event.job = static_cast<pid_t>(raw->job);
    event.job_root = raw->flags & MG_EXEC_JOB_ROOT;
    event.waiting = raw->flags & MG_EXEC_WAITING;
    event.granted = raw->flags & MG_EXEC_GRANTED;
    event.other_user = raw->flags & MG_EXEC_OTHER_USER;
    event.argv_truncated = (raw->flags & MG_EXEC_ARGV_TRUNCATED) || argv_len < raw->argv_len;
    event.argv_unreadable = raw->flags & MG_EXEC_ARGV_UNREADABLE;
    event.timestamp_ns = raw->header.timestamp_ns;
    event.comm = bounded_string(raw->comm);
    event.filename = bounded_string(raw->filename);
    event.argv = split_argv({reinterpret_cast<const char*>(argv_bytes.data()), argv_bytes.size()});
    event.in_client = {static_cast<pid_t>(raw->header.ns_pid), static_cast<pid_t>(raw->ns_ppid),
                       static_cast<pid_t>(raw->ns_job)};
    return event;
}

std::optional<TrackerEvent> decode_exit(std::span<const std::byte> bytes) {
    auto raw = read_record<mg_exit_event>(bytes);
    if (!raw) return std::nullopt;
    ExitEvent event;
    event.pid = static_cast<pid_t>(raw->header.pid);
    event.build = static_cast<pid_t>(raw->header.build);
    event.ppid = static_cast<pid_t>(raw->ppid);
    event.job = static_cast<pid_t>(raw->job);
    event.wait_status = static_cast<int>(raw->exit_code);
    event.timestamp_ns = raw->header.timestamp_ns;
    event.peak_rss_bytes = raw->peak_rss_bytes;
    event.job_peak_bytes = raw->job_peak_bytes;
    event.comm = bounded_string(raw->comm);
    event.costs = {.cpu_ns = raw->costs.cpu_ns,
                   .run_delay_ns = raw->costs.run_delay_ns,
                   .io_delay_ns = raw->costs.io_delay_ns,
                   .reclaim_delay_ns = raw->costs.reclaim_delay_ns,
                   .major_faults = raw->costs.major_faults};
    event.in_client = {static_cast<pid_t>(raw->header.ns_pid), static_cast<pid_t>(raw->ns_ppid),
                       static_cast<pid_t>(raw->ns_job)};
    return event;
}

std::optional<TrackerEvent> decode_oom_kill(std::span<const std::byte> bytes) {
    auto raw = read_record<mg_oom_event>(bytes);
    if (!raw) return std::nullopt;
    OomKillEvent event;
    event.pid = static_cast<pid_t>(raw->header.pid);
    event.build = static_cast<pid_t>(raw->header.build);
    event.job = static_cast<pid_t>(raw->job);
    event.timestamp_ns = raw->header.timestamp_ns;
    event.rss_bytes = raw->rss_bytes;
    event.peak_rss_bytes = raw->peak_rss_bytes;
    event.comm = bounded_string(raw->comm);
    event.in_client = {.pid = static_cast<pid_t>(raw->header.ns_pid), .job = static_cast<pid_t>(raw->ns_job)};
    return event;
}

}  // namespace

std::vector<std::string> split_argv(std::span<const char> block) {
    std::vector<std::string> argv;
    std::size_t start = 0;
    for (std::size_t i = 0; i < block.size(); ++i) {
        if (block[i] == '\0') {
            argv.emplace_back(block.data() + start, i - start);
            start = i + 1;
        }
    }
    if (start < block.size()) argv.emplace_back(block.data() + start, block.size() - start);
    return argv;
}

std::optional<TrackerEvent> decode_event(std::span<const std::byte> record) {
    auto header = read_record<mg_event_header>(record);
    if (!header) return std::nullopt;
    switch (header->kind) {
        case MG_EVENT_EXEC: return decode_exec(record);
        case MG_EVENT_EXIT: return decode_exit(record);
        case MG_EVENT_OOM_KILL: return decode_oom_kill(record);
        default: return std::nullopt;
    }
}

}  // namespace memgov
