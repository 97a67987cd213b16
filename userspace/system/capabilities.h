// Which capabilities this process holds, from /proc/self/status (no libcap needed).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace memgov {

constexpr int cap_kill = 5;
constexpr int cap_sys_admin = 21;
constexpr int cap_perfmon = 38;
constexpr int cap_bpf = 39;

// The hex mask of a "CapEff:\t…" style line in a /proc/PID/status text.
std::optional<std::uint64_t> capability_mask(std::string_view status_text, std::string_view field);

// Reads `field` (CapEff, CapPrm, CapAmb …) of /proc/<pid>/status; "self" for this process.
std::optional<std::uint64_t> process_capabilities(const std::string& pid, std::string_view field);

// CAP_BPF+CAP_PERFMON, or CAP_SYS_ADMIN, in the effective set.
bool has_bpf_privilege();
// CAP_KILL in the effective set: signals reach any process, not only our own user's.
bool may_signal_anyone();

}  // namespace memgov
