// The categorised debug log of the seed: [DEBUG] [MEMORY] [MONITOR] [PREDICT] [SIGNAL] [EXIT].
#pragma once

#include <fmt/format.h>

#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>

namespace memgov {

enum class LogCategory { debug, memory, monitor, predict, signal, exit };

class Log {
public:
    // Writes nothing when `verbosity` is 0; category debug needs 2.
    Log(int verbosity, std::FILE* sink);
    // Opens `path` for appending; throws std::runtime_error naming the path.
    static Log to_file(int verbosity, const std::string& path);
    Log(Log&& other) noexcept;
    Log& operator=(Log&&) = delete;
    ~Log();

    bool enabled(LogCategory category) const;

    template <typename... Args>
    void write(LogCategory category, fmt::format_string<Args...> format, Args&&... args) {
        if (!enabled(category)) return;
        emit(category, fmt::format(format, std::forward<Args>(args)...));
    }

private:
    void emit(LogCategory category, std::string_view message);

    int verbosity_;
    std::FILE* sink_;
    bool owns_sink_;
    std::mutex mutex_;
};

}  // namespace memgov
