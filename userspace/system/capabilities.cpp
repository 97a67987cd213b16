#include "capabilities.h"

#include "text_file.h"

namespace memgov {

std::optional<std::uint64_t> capability_mask(std::string_view status_text, std::string_view field) {
    auto mask = field_numbers(status_text, field, 16);
    if (mask.size() != 1) return std::nullopt;
    return mask.front();
}

std::optional<std::uint64_t> process_capabilities(const std::string& pid, std::string_view field) {
    auto text = read_text_file("/proc/" + pid + "/status");
    return text ? capability_mask(*text, field) : std::nullopt;
}

bool may_signal_anyone() { return (process_capabilities("self", "CapEff").value_or(0) >> cap_kill) & 1u; }

bool has_bpf_privilege() {
    auto effective = process_capabilities("self", "CapEff").value_or(0);
    auto has = [&](int cap) { return (effective >> cap) & 1u; };
    return has(cap_sys_admin) || (has(cap_bpf) && has(cap_perfmon));
}

}  // namespace memgov
