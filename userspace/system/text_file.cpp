#include "text_file.h"

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

}  // namespace memgov
