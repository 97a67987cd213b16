#include "status_bar.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>

namespace memgov {
namespace {

constexpr std::array<const char*, 10> braille = {"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"};
constexpr std::array<const char*, 4> ascii_spinner = {"|", "/", "-", "\\"};
constexpr int max_bar_cells = 40;
constexpr int min_bar_cells = 5;

struct Segment {
    std::uint64_t bytes;
    const char* color;
    const char* unicode_cell;
    char ascii_cell;
};

// Cells for each segment, largest remainders first so the cells add up to `cells` exactly.
std::array<int, 4> apportion(const std::array<Segment, 4>& segments, std::uint64_t total, int cells) {
    std::array<int, 4> counts{};
    std::array<double, 4> remainders{};
    int used = 0;
    for (std::size_t i = 0; i < segments.size(); ++i) {
        double exact = total ? static_cast<double>(segments[i].bytes) * cells / static_cast<double>(total) : 0;
        counts[i] = static_cast<int>(exact);
        remainders[i] = exact - counts[i];
        used += counts[i];
    }
    while (used < cells) {
        auto largest = std::max_element(remainders.begin(), remainders.end()) - remainders.begin();
        counts[largest] += 1;
        remainders[largest] = -1;
        ++used;
    }
    return counts;
}

std::string plural(std::uint64_t n, const char* word) { return fmt::format("{} {}{}", n, word, n == 1 ? "" : "s"); }

}  // namespace

int visible_width(const std::string& text) {
    int width = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        auto c = static_cast<unsigned char>(text[i]);
        if (c == 0x1b) {  // CSI: ESC [ … final byte in 0x40–0x7e
            ++i;
            if (i < text.size() && text[i] == '[')
                while (i + 1 < text.size() && !(text[i + 1] >= 0x40 && text[i + 1] <= 0x7e)) ++i;
            ++i;
            continue;
        }
        if ((c & 0xc0) != 0x80) ++width;  // count lead bytes only
    }
    return width;
}

std::string format_bar(const BarStatus& status, const BarStyle& style) {
    std::uint64_t ceiling = std::max<std::uint64_t>(status.ceiling_bytes, 1);
    std::uint64_t used = status.build_bytes + status.other_bytes;
    auto percent = static_cast<int>(std::min<std::uint64_t>(used * 100 / ceiling, 999));

    std::string counts = plural(status.running, "job");
    if (status.waiting) counts += fmt::format(", {} waiting", status.waiting);
    if (status.stopped) counts += fmt::format(", {} stopped", status.stopped);
    counts += ", " + plural(status.procs, "proc");
    std::string spinner =
        style.unicode ? braille[status.frame % braille.size()] : ascii_spinner[status.frame % ascii_spinner.size()];
    std::string text = fmt::format(" {}% ({}MB) {}", percent, (status.available_bytes + (1u << 19)) >> 20, counts);

    int room = style.width - 1;  // never the last column: some terminals wrap on it
    int bar_cells = std::min(max_bar_cells, room - 2 - visible_width(text));
    std::string line = spinner;
    if (bar_cells >= min_bar_cells) {
        // Over the ceiling (a racy reading, or a cgroup at its limit) shows as a full bar.
        std::uint64_t build = std::min(status.build_bytes, ceiling);
        std::uint64_t other = std::min(status.other_bytes, ceiling - build);
        std::uint64_t imminent = std::min(status.imminent_bytes, ceiling - build - other);
        std::array<Segment, 4> segments = {{
            {build, "\033[35m", "█", '#'},
            {other, "\033[32m", "█", '='},
            {imminent, "\033[33m", "░", '+'},
            {ceiling - build - other - imminent, "\033[90m", "░", '.'},
        }};
        auto cells = apportion(segments, ceiling, bar_cells);
        line += " ";
        for (std::size_t i = 0; i < segments.size(); ++i) {
            if (!cells[i]) continue;
            if (style.color) line += segments[i].color;
            for (int n = 0; n < cells[i]; ++n)
                line += style.unicode ? segments[i].unicode_cell : std::string(1, segments[i].ascii_cell);
        }
        if (style.color) line += "\033[0m";
    }
    line += text;
    // Too narrow even for the text: cut it, code point by code point.
    while (visible_width(line) > room && !line.empty()) {
        std::size_t cut = line.size() - 1;
        while (cut > 0 && (static_cast<unsigned char>(line[cut]) & 0xc0) == 0x80) --cut;
        line.erase(cut);
    }
    return line;
}

}  // namespace memgov
