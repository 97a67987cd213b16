// Pressure stall information (PSI): cumulative time tasks stalled on memory, CPU and I/O,
// from a cgroup v2 directory's *.pressure files or the host's /proc/pressure/.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace memgov {

// Cumulative stall time (µs): memory, cpu and io, each `some` and `full`.
struct Pressure {
    enum Index { memory_some, memory_full, cpu_some, cpu_full, io_some, io_full, count };
    std::array<std::uint64_t, count> total_us{};
};

// The `total=` of the `some` and `full` lines of one PSI file; nullopt when there is no
// `some` line (a `full` line is missing for the host's cpu on older kernels: 0).
std::optional<std::pair<std::uint64_t, std::uint64_t>> parse_pressure(std::string_view text);

// Reads memory, cpu and io pressure from `dir` (a cgroup v2 directory: memory.pressure …)
// when it has them, else from <proc>/pressure/ (the host); nullopt when neither has PSI.
std::optional<Pressure> read_pressure(const std::string& dir, const std::string& proc = "/proc");

}  // namespace memgov
