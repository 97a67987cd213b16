// Sizes and ages as people read and type them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace memgov {

// "0 B", "812 KiB", "5.8 GiB": three significant figures at most.
std::string format_bytes(std::uint64_t bytes);
// Whole MiB, the log's unit: "620MB".
std::string format_mb(std::uint64_t bytes);

// Parses "512M", "4G", "1.5GiB", "123456" (bytes) or "75%" (of `percent_of`). nullopt for
// anything else, negative or zero, or a percentage outside (0, 100].
std::optional<std::uint64_t> parse_size(const std::string& text, std::uint64_t percent_of);

// "90s", "30m", "12h", "7d", "2w" -> seconds; nullopt for anything else.
std::optional<std::int64_t> parse_age(const std::string& text);

}  // namespace memgov
