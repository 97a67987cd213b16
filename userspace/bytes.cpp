#include "bytes.h"

#include <fmt/format.h>

#include <array>

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

std::string format_mb(std::uint64_t bytes) {
    return fmt::format("{}MB", (bytes + (1u << 19)) >> 20);
}

}  // namespace memgov
