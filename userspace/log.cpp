#include "log.h"

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace memgov {
namespace {

const char* tag(LogCategory category) {
    switch (category) {
        case LogCategory::debug: return "[DEBUG]";
        case LogCategory::memory: return "[MEMORY]";
        case LogCategory::monitor: return "[MONITOR]";
        case LogCategory::predict: return "[PREDICT]";
        case LogCategory::signal: return "[SIGNAL]";
        case LogCategory::exit: return "[EXIT]";
    }
    return "[?]";
}

}  // namespace

Log::Log(int verbosity, std::FILE* sink) : verbosity_(verbosity), sink_(sink), owns_sink_(false) {}

Log Log::to_file(int verbosity, const std::string& path) {
    std::FILE* file = std::fopen(path.c_str(), "ae");
    if (!file)
        throw std::runtime_error(fmt::format("cannot open log file {}: {}", path, std::strerror(errno)));
    Log log(verbosity < 1 ? 1 : verbosity, file);
    log.owns_sink_ = true;
    return log;
}

Log::Log(Log&& other) noexcept
    : verbosity_(other.verbosity_), sink_(other.sink_), owns_sink_(other.owns_sink_) {
    other.owns_sink_ = false;
}

Log::~Log() {
    if (owns_sink_) std::fclose(sink_);
}

bool Log::enabled(LogCategory category) const {
    return verbosity_ >= (category == LogCategory::debug ? 2 : 1);
}

void Log::emit(LogCategory category, std::string_view message) {
    std::lock_guard lock(mutex_);
    fmt::print(sink_, "{} {}\n", tag(category), message);
    std::fflush(sink_);
}

}  // namespace memgov
