// A small text file (procfs, cgroupfs, sysfs) read whole.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace memgov {

// The file's text; nullopt when it cannot be opened.
std::optional<std::string> read_text_file(const std::string& path);

// The numbers, in `base`, after "name:" on the line that starts so in a /proc text of
// "Name:\tvalue…" lines (status, fdinfo), up to the first word that is not one ("kB"); empty
// when there is no such line or it starts with no number.
std::vector<std::uint64_t> field_numbers(std::string_view text, std::string_view name, int base = 10);

}  // namespace memgov
