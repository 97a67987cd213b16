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

const char* color_of(Verdict verdict) {
    switch (verdict) {
        case Verdict::ok: return "\033[32m";          // green
        case Verdict::proceeding: return "\033[34m";  // blue
        case Verdict::waiting: return "\033[35m";     // purple
        case Verdict::none: return "";
    }
    return "";
}

}  // namespace

FileSink::FileSink(const std::string& path) : file_(std::fopen(path.c_str(), "ae")) {
    if (!file_) throw std::runtime_error(fmt::format("cannot open log file {}: {}", path, std::strerror(errno)));
}

FileSink::~FileSink() { std::fclose(file_); }

void FileSink::write_line(std::string line) {
    std::lock_guard lock(mutex_);
    std::fputs(line.c_str(), file_);
    std::fputc('\n', file_);
    std::fflush(file_);
}

void Log::emit(LogCategory category, Verdict verdict, std::string_view message) {
    if (verdict != Verdict::none && sink_.color())
        sink_.write_line(fmt::format("{}{} {}\033[0m", color_of(verdict), tag(category), message));
    else
        sink_.write_line(fmt::format("{} {}", tag(category), message));
}

}  // namespace memgov
