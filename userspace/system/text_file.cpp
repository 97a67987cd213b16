#include "text_file.h"

#include <charconv>
#include <fstream>
#include <sstream>

namespace memgov {

std::optional<std::string> read_text_file(const std::string& path) {
    // A /proc file of a process that exits while it is read fails mid-read (ESRCH), which
    // libstdc++ reports by throwing from the stream buffer: a short read, not an error.
    try {
        std::ifstream in(path);
        if (!in) return std::nullopt;
        std::stringstream text;
        text << in.rdbuf();
        return text.str();
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

std::vector<std::uint64_t> field_numbers(std::string_view text, std::string_view name, int base) {
    std::vector<std::uint64_t> numbers;
    for (std::size_t at = 0; at < text.size();) {
        std::size_t end = std::min(text.find('\n', at), text.size());
        std::string_view line = text.substr(at, end - at);
        at = end + 1;
        if (!line.starts_with(name) || line.size() <= name.size() || line[name.size()] != ':') continue;
        const char* cursor = line.data() + name.size() + 1;
        const char* last = line.data() + line.size();
        while (true) {
            while (cursor < last && (*cursor == ' ' || *cursor == '\t')) ++cursor;
            std::uint64_t value = 0;
            auto [next, error] = std::from_chars(cursor, last, value, base);
            if (error != std::errc() || next == cursor) break;
            numbers.push_back(value);
            cursor = next;
        }
        break;
    }
    return numbers;
}

}  // namespace memgov
