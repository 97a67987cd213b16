// Turns raw ring-buffer records (include/memgov/abi.h) into TrackerEvents. Pure, so the
// ABI can be checked without a kernel.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "tracker.h"

namespace memgov {

// nullopt for a record that is too short or of an unknown kind.
std::optional<TrackerEvent> decode_event(std::span<const std::byte> record);

// Splits a NUL-separated argv block; a missing final NUL still ends the last argument.
std::vector<std::string> split_argv(std::span<const char> block);

}  // namespace memgov
