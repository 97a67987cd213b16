#include "terminal.h"

#include <fmt/format.h>
#include <langinfo.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace memgov {
namespace {

constexpr std::size_t max_queued_lines = 10'000;

bool env_set(const char* name) {
    const char* value = std::getenv(name);
    return value && *value;
}

}  // namespace

TerminalChoice choose_terminal(const TerminalTraits& traits, BarMode mode) {
    bool smart = traits.is_tty && !traits.term.empty() && traits.term != "dumb";
    TerminalChoice choice;
    choice.bar = mode == BarMode::always || (mode == BarMode::automatic && smart);
    choice.color = !traits.no_color && (traits.clicolor_force || smart);
    choice.unicode = traits.utf8;
    return choice;
}

TerminalTraits probe_terminal(int fd) {
    TerminalTraits traits;
    traits.is_tty = isatty(fd);
    if (const char* term = std::getenv("TERM")) traits.term = term;
    traits.no_color = env_set("NO_COLOR");
    const char* force = std::getenv("CLICOLOR_FORCE");
    traits.clicolor_force = force && *force && std::strcmp(force, "0") != 0;
    const char* codeset = nl_langinfo(CODESET);
    std::string lang = env_set("LC_ALL") ? std::getenv("LC_ALL") : env_set("LANG") ? std::getenv("LANG") : "";
    traits.utf8 = (codeset && std::strcmp(codeset, "UTF-8") == 0) || lang.find("UTF-8") != std::string::npos ||
                  lang.find("utf8") != std::string::npos;
    return traits;
}

Terminal::Terminal(int fd, TerminalChoice choice) : fd_(fd), choice_(choice) {
    writer_ = std::thread([this] { run(); });
}

Terminal::~Terminal() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_one();
    writer_.join();
}

void Terminal::write_line(std::string line) {
    {
        std::lock_guard lock(mutex_);
        if (lines_.size() >= max_queued_lines) {
            ++dropped_;
            return;
        }
        lines_.push_back(std::move(line));
    }
    wake_.notify_one();
}

void Terminal::show(const BarStatus& status) {
    if (!choice_.bar) return;
    {
        std::lock_guard lock(mutex_);
        pending_bar_ = status;
    }
    wake_.notify_one();
}

void Terminal::write_all(const std::string& bytes) const {
    std::size_t done = 0;
    while (done < bytes.size()) {
        ssize_t wrote = ::write(fd_, bytes.data() + done, bytes.size() - done);
        if (wrote < 0 && errno == EINTR) continue;
        if (wrote <= 0) return;  // a closed terminal: nothing more to show
        done += static_cast<std::size_t>(wrote);
    }
}

// Reserves the last row: scroll the screen up a line if the cursor is on it, confine
// scrolling to the rows above, put the cursor back where output continues.
std::string Terminal::setup_region() {
    std::string out;
    if (region_set_ && rows_) out = fmt::format("\0337\033[{};1H\033[2K\0338", rows_);  // the old bar
    winsize size{};
    if (ioctl(fd_, TIOCGWINSZ, &size) != 0 || size.ws_row < 3 || size.ws_col < 10) {
        rows_ = 0;
        return out;
    }
    rows_ = size.ws_row;
    columns_ = size.ws_col;
    region_set_ = true;
    return out + fmt::format("\n\0337\033[1;{}r\0338\033[1A", rows_ - 1);
}

std::string Terminal::draw(const BarStatus& status) const {
    std::string line = format_bar(status, {.width = columns_, .color = choice_.color, .unicode = choice_.unicode});
    return fmt::format("\0337\033[{};1H\033[2K{}\0338", rows_, line);
}

void Terminal::run() {
    std::optional<BarStatus> last_bar;
    std::unique_lock lock(mutex_);
    while (true) {
        wake_.wait(lock, [this] { return stopping_ || !lines_.empty() || pending_bar_; });
        std::deque<std::string> lines;
        lines.swap(lines_);
        auto bar = pending_bar_;
        pending_bar_.reset();
        bool stopping = stopping_;
        lock.unlock();

        std::string out;
        for (auto& line : lines) out += line + "\n";
        if (choice_.bar) {
            if (bar) last_bar = bar;
            if (resized_.exchange(false) || (!region_set_ && last_bar)) out += setup_region();
            if (rows_ && last_bar && !stopping) out += draw(*last_bar);
            if (stopping && region_set_ && rows_)
                out += fmt::format("\0337\033[r\0338\0337\033[{};1H\033[2K\0338", rows_);
        }
        if (!out.empty()) write_all(out);
        if (stopping) return;
        lock.lock();
    }
}

}  // namespace memgov
