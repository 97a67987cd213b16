// memgov's own output to stderr: log lines and, on a smart terminal, the memory bar on the
// terminal's last line. One writer thread owns the descriptor, so a slow terminal never
// stalls the controller.
//
// The bar lives outside a scroll region (DECSTBM rows 1..N-1, as apt's progress line does):
// the build writes to the same terminal directly, scrolls inside the region and can never
// overwrite or be glued to the bar. Nothing of the build's output passes through memgov.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "status_bar.h"

namespace memgov {

enum class BarMode { automatic, always, never };

struct TerminalTraits {
    bool is_tty = false;
    std::string term;             // $TERM
    bool no_color = false;        // $NO_COLOR set and non-empty
    bool clicolor_force = false;  // $CLICOLOR_FORCE set and not "0"
    bool utf8 = true;             // locale or $TERM allows UTF-8
};

struct TerminalChoice {
    bool bar = false;
    bool color = false;
    bool unicode = false;
};

// ninja's rule: smart = a TTY whose TERM is set and not "dumb". Pure.
TerminalChoice choose_terminal(const TerminalTraits& traits, BarMode mode);
TerminalTraits probe_terminal(int fd);

// Implemented by Terminal and by plain files: where log lines go.
class LineSink {
public:
    virtual ~LineSink() = default;
    virtual void write_line(std::string line) = 0;
    virtual bool color() const = 0;
};

class Terminal final : public LineSink {
public:
    Terminal(int fd, TerminalChoice choice);
    ~Terminal() override;  // clears the bar and restores the whole screen for scrolling
    Terminal(const Terminal&) = delete;
    Terminal& operator=(const Terminal&) = delete;

    void write_line(std::string line) override;
    bool color() const override { return choice_.color; }
    bool bar() const { return choice_.bar; }

    // Replaces the bar's contents; drawn by the writer thread.
    void show(const BarStatus& status);
    // Call after SIGWINCH: size and scroll region are taken anew before the next draw.
    void resized() { resized_ = true; }
    // Lines that could not be queued because the terminal did not keep up.
    std::uint64_t dropped_lines() const { return dropped_; }

private:
    void run();
    void write_all(const std::string& bytes) const;
    std::string setup_region();
    std::string draw(const BarStatus& status) const;

    int fd_;
    TerminalChoice choice_;
    int rows_ = 0;
    int columns_ = 0;
    bool region_set_ = false;
    std::atomic<bool> resized_{false};
    std::atomic<std::uint64_t> dropped_{0};

    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::string> lines_;
    std::optional<BarStatus> pending_bar_;
    bool stopping_ = false;
    std::thread writer_;
};

}  // namespace memgov
