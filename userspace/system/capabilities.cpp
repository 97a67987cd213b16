#include "capabilities.h"

#include <charconv>

#include "text_file.h"

namespace memgov {

std::optional<std::uint64_t> capability_mask(std::string_view status_text, std::string_view field) {
    std::size_t at = 0;
    while (at < status_text.size()) {
        std::size_t end = status_text.find('\n', at);
        if (end == std::string_view::npos) end = status_text.size();
        std::string_view line = status_text.substr(at, end - at);
        at = end + 1;
        if (!line.starts_with(field) || line.size() <= field.size() || line[field.size()] != ':') continue;
        line.remove_prefix(field.size() + 1);
        while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
        std::uint64_t mask = 0;
        auto [ptr, ec] = std::from_chars(line.data(), line.data() + line.size(), mask, 16);
        if (ec != std::errc() || ptr == line.data()) return std::nullopt;
        return mask;
    }
    return std::nullopt;
}

std::optional<std::uint64_t> process_capabilities(const std::string& pid, std::string_view field) {
    auto text = read_text_file("/proc/" + pid + "/status");
    return text ? capability_mask(*text, field) : std::nullopt;
}

bool has_bpf_privilege() {
    auto effective = process_capabilities("self", "CapEff").value_or(0);
    auto has = [&](int cap) { return (effective >> cap) & 1u; };
    return has(cap_sys_admin) || (has(cap_bpf) && has(cap_perfmon));
}

}  // namespace memgov
