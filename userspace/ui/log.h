// The categorised log: [DEBUG] [MEMORY] [MONITOR] [PREDICT] [SIGNAL] [EXIT].
#pragma once

#include <fmt/format.h>

#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "terminal.h"

namespace memgov {

enum class LogCategory { debug, memory, monitor, predict, signal, exit };

// Admission verdicts are coloured where the sink can show colours (green OK, blue PROCEEDING, purple WAITING and
// re-predictions).
enum class Verdict { none, ok, proceeding, waiting };

// Log lines to a file, written and flushed as they come.
class FileSink final : public LineSink {
public:
    // Opens `path` for appending; throws std::runtime_error naming the path.
    explicit FileSink(const std::string& path);
    ~FileSink() override;
    FileSink(const FileSink&) = delete;
    FileSink& operator=(const FileSink&) = delete;
    void write_line(std::string line) override;
    bool color() const override { return false; }

private:
    std::FILE* file_;
    std::mutex mutex_;
};

class Log {
public:
    // Writes nothing when `verbosity` is 0; category debug needs 2. `sink` outlives the Log.
    Log(int verbosity, LineSink& sink) : verbosity_(verbosity), sink_(sink) {}

    bool enabled(LogCategory category) const { return verbosity_ >= (category == LogCategory::debug ? 2 : 1); }

    template <typename... Args>
    void write(LogCategory category, fmt::format_string<Args...> format, Args&&... args) {
        if (enabled(category)) emit(category, Verdict::none, fmt::format(format, std::forward<Args>(args)...));
    }

    template <typename... Args>
    void verdict(Verdict verdict, fmt::format_string<Args...> format, Args&&... args) {
        if (enabled(LogCategory::predict))
            emit(LogCategory::predict, verdict, fmt::format(format, std::forward<Args>(args)...));
    }

private:
    void emit(LogCategory category, Verdict verdict, std::string_view message);

    int verbosity_;
    LineSink& sink_;
};

}  // namespace memgov
