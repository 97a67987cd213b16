// The live memory bar (docs/DESIGN.md §10): status in, one line of text out. Pure, so every width
// and corner case is a unit test; writing it to a terminal is terminal.h's job.
//   ⠋ ████████████░░░░░░░░ 62% (5905MB) 5 jobs, 3 waiting, 1 stopped, 24 procs
#pragma once

#include <cstdint>
#include <string>

namespace memgov {

struct BarStatus {
    std::uint64_t ceiling_bytes = 0;    // the limit that applies: cgroup, --limit or RAM
    std::uint64_t build_bytes = 0;      // the build's memory now
    std::uint64_t other_bytes = 0;      // everything else using the same ceiling
    std::uint64_t imminent_bytes = 0;   // still to come from running jobs
    std::uint64_t available_bytes = 0;  // what the governor may hand out
    std::size_t running = 0;
    std::size_t waiting = 0;
    std::size_t stopped = 0;
    std::uint64_t procs = 0;
    unsigned frame = 0;  // spinner position
};

struct BarStyle {
    int width = 80;       // terminal columns; the line never exceeds width - 1
    bool color = true;    // ANSI colours: build purple, other green, imminent yellow, free gray
    bool unicode = true;  // block characters and braille spinner, else ASCII
};

std::string format_bar(const BarStatus& status, const BarStyle& style);

// Visible columns of `text`: escape sequences count 0, each UTF-8 code point 1.
int visible_width(const std::string& text);

}  // namespace memgov
