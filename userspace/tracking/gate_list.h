// Which programs start a job (docs/DESIGN.md §5).
#pragma once

#include <string>
#include <vector>

namespace memgov {

// Compiler drivers, compilers proper and linkers, with the versioned and
// target-prefixed names Debian installs (g++-12, x86_64-linux-gnu-gcc-12, clang++-14).
std::vector<std::string> default_gate_names();

}  // namespace memgov
