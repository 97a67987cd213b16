// Sizes as people read them.
#pragma once

#include <cstdint>
#include <string>

namespace memgov {

// "0 B", "812 KiB", "5.8 GiB": three significant figures at most.
std::string format_bytes(std::uint64_t bytes);
// Whole MiB, the seed's unit in log lines: "620MB".
std::string format_mb(std::uint64_t bytes);

}  // namespace memgov
