#include "pressure.h"

#include <charconv>

#include "text_file.h"

namespace memgov {
namespace {

std::optional<std::uint64_t> total_of(std::string_view line) {
    auto at = line.find("total=");
    if (at == std::string_view::npos) return std::nullopt;
    line.remove_prefix(at + 6);
    std::uint64_t value = 0;
    auto [end, error] = std::from_chars(line.data(), line.data() + line.size(), value);
    if (error != std::errc() || (end != line.data() + line.size() && *end != ' ' && *end != '\n')) return std::nullopt;
    return value;
}

}  // namespace

std::optional<std::pair<std::uint64_t, std::uint64_t>> parse_pressure(std::string_view text) {
    std::optional<std::uint64_t> some;
    std::uint64_t full = 0;
    while (!text.empty()) {
        auto end = text.find('\n');
        std::string_view line = text.substr(0, end);
        if (line.starts_with("some ")) some = total_of(line);
        if (line.starts_with("full ")) full = total_of(line).value_or(0);
        if (end == std::string_view::npos) break;
        text.remove_prefix(end + 1);
    }
    if (!some) return std::nullopt;
    return std::pair{*some, full};
}

std::optional<Pressure> read_pressure(const std::string& dir, const std::string& proc) {
    auto read_set = [](const std::string& prefix, const std::string& suffix) -> std::optional<Pressure> {
        Pressure pressure;
        int index = 0;
        for (const char* resource : {"memory", "cpu", "io"}) {
            auto text = read_text_file(prefix + resource + suffix);
            auto totals = text ? parse_pressure(*text) : std::nullopt;
            if (!totals) return std::nullopt;
            pressure.total_us[static_cast<std::size_t>(index++)] = totals->first;
            pressure.total_us[static_cast<std::size_t>(index++)] = totals->second;
        }
        return pressure;
    };
    if (!dir.empty())
        if (auto own = read_set(dir + "/", ".pressure")) return own;
    return read_set(proc + "/pressure/", "");
}

}  // namespace memgov
