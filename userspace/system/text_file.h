// A small text file (procfs, cgroupfs, sysfs) read whole.
#pragma once

#include <optional>
#include <string>

namespace memgov {

// The file's text; nullopt when it cannot be opened.
std::optional<std::string> read_text_file(const std::string& path);

}  // namespace memgov
