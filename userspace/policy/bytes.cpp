#include "bytes.h"

#include <fmt/format.h>

#include <array>
#include <charconv>
#include <cmath>

namespace memgov {

std::string format_bytes(std::uint64_t bytes) {
    static constexpr std::array<const char*, 5> units = {"B", "KiB", "MiB", "GiB", "TiB"};
    double value = static_cast<double>(bytes);
    std::size_t unit = 0;
    while (value >= 1024.0 && unit + 1 < units.size()) {
        value /= 1024.0;
        ++unit;
    }
    if (unit == 0) return fmt::format("{} B", bytes);
    if (value >= 100.0) return fmt::format("{:.0f} {}", value, units[unit]);
    if (value >= 10.0) return fmt::format("{:.1f} {}", value, units[unit]);
    return fmt::format("{:.2f} {}", value, units[unit]);
}

std::string format_mb(std::uint64_t bytes) { return fmt::format("{}MB", (bytes + (1u << 19)) >> 20); }

std::optional<std::uint64_t> parse_size(const std::string& text, std::uint64_t percent_of) {
    if (text.empty()) return std::nullopt;
    double number = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (error != std::errc() || !(number > 0) || !std::isfinite(number)) return std::nullopt;
    std::string unit(end, text.data() + text.size());
    if (unit == "%") {
        if (number > 100) return std::nullopt;
        return static_cast<std::uint64_t>(static_cast<double>(percent_of) * number / 100.0);
    }
    double scale = 0;
    if (unit.empty() || unit == "B")
        scale = 1;
    else if (unit == "K" || unit == "k" || unit == "KiB" || unit == "KB")
        scale = 1024.0;
    else if (unit == "M" || unit == "MiB" || unit == "MB")
        scale = 1024.0 * 1024;
    else if (unit == "G" || unit == "GiB" || unit == "GB")
        scale = 1024.0 * 1024 * 1024;
    else if (unit == "T" || unit == "TiB" || unit == "TB")
        scale = 1024.0 * 1024 * 1024 * 1024;
    else
        return std::nullopt;
    double bytes = number * scale;
    if (bytes < 1 || bytes > 1e19) return std::nullopt;
    return static_cast<std::uint64_t>(bytes);
}

std::optional<std::int64_t> parse_age(const std::string& text) {
    std::int64_t number = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (error != std::errc() || number < 0 || end + 1 != text.data() + text.size()) return std::nullopt;
    switch (*end) {
        case 's': return number;
        case 'm': return number * 60;
        case 'h': return number * 3600;
        case 'd': return number * 86400;
        case 'w': return number * 7 * 86400;
        default: return std::nullopt;
    }
}

}  // namespace memgov
