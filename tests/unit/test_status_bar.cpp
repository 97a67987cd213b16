#include <doctest/doctest.h>

#include <algorithm>

#include "status_bar.h"

using namespace memgov;

namespace {

constexpr std::uint64_t MiB = 1ull << 20;

BarStatus typical() {
    BarStatus status;
    status.ceiling_bytes = 1000 * MiB;
    status.build_bytes = 400 * MiB;
    status.other_bytes = 200 * MiB;
    status.imminent_bytes = 100 * MiB;
    status.available_bytes = 300 * MiB;
    status.running = 5;
    status.waiting = 3;
    status.stopped = 1;
    status.procs = 24;
    return status;
}

int count(const std::string& text, const std::string& what) {
    int n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
    return n;
}

}  // namespace

TEST_CASE("the bar: spinner, coloured segments, percent, free MB, counts") {
    auto line = format_bar(typical(), {.width = 100});
    CHECK(line.starts_with("⠋ \033[35m"));
    CHECK(line.find(" 60% (300MB) 5 jobs, 3 waiting, 1 stopped, 24 procs") != std::string::npos);
    // 40 cells: 16 build, 8 other, 4 imminent, 12 free
    CHECK(count(line, "█") == 24);
    CHECK(count(line, "░") == 16);
    CHECK(line.find("\033[33m░░░░\033[90m") != std::string::npos);
    CHECK(line.ends_with("procs"));
}

TEST_CASE("every width from 20 to 300 fits in width - 1 columns, unicode or ASCII, colour or not") {
    for (int width = 1; width <= 300; ++width) {
        for (bool unicode : {true, false}) {
            for (bool color : {true, false}) {
                auto line = format_bar(typical(), {.width = width, .color = color, .unicode = unicode});
                CHECK_MESSAGE(visible_width(line) <= std::max(width - 1, 0), "width ", width);
                if (!color) CHECK(line.find('\033') == std::string::npos);
                if (!unicode) CHECK(std::all_of(line.begin(), line.end(), [](char c) { return (c & 0x80) == 0; }));
            }
        }
    }
    CHECK(visible_width(format_bar(typical(), {.width = 300})) < 100);           // the bar stops growing
    CHECK(format_bar(typical(), {.width = 30}).find("█") == std::string::npos);  // text first
}

TEST_CASE("corner cases: nothing used, all imminent, over the ceiling, zero ceiling") {
    BarStatus empty;
    empty.ceiling_bytes = 1000 * MiB;
    empty.available_bytes = 1000 * MiB;
    auto idle = format_bar(empty, {.width = 80, .color = false});
    CHECK(count(idle, "░") == 40);
    CHECK(idle.find(" 0% (1000MB) 0 jobs, 0 procs") != std::string::npos);

    BarStatus imminent = empty;
    imminent.imminent_bytes = 5000 * MiB;  // more than fits: clamped
    auto yellow = format_bar(imminent, {.width = 80, .color = false, .unicode = false});
    CHECK(count(yellow, "+") == 40);

    BarStatus over = typical();
    over.build_bytes = 3000 * MiB;
    auto full = format_bar(over, {.width = 120, .color = false, .unicode = false});
    CHECK(count(full, "#") == 40);
    CHECK(full.find(" 320% ") != std::string::npos);

    BarStatus zero;
    CHECK(visible_width(format_bar(zero, {.width = 80})) <= 79);
}

TEST_CASE("the spinner advances and singular counts read right") {
    BarStatus status = typical();
    status.running = 1;
    status.waiting = 0;
    status.stopped = 0;
    status.procs = 1;
    status.frame = 1;
    auto line = format_bar(status, {.width = 100, .color = false});
    CHECK(line.starts_with("⠙ "));
    CHECK(line.ends_with("1 job, 1 proc"));
    status.frame = 2;
    CHECK(format_bar(status, {.width = 100, .unicode = false}).starts_with("- "));
}

TEST_CASE("visible width ignores escapes and counts code points") {
    CHECK(visible_width("abc") == 3);
    CHECK(visible_width("\033[35m██\033[0m") == 2);
    CHECK(visible_width("⠋ x") == 3);
    CHECK(visible_width("") == 0);
}
