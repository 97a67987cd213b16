// `memgov check`: can this machine run memgov, and if not, what to do about it.
#pragma once

#include <string>
#include <vector>

namespace memgov {

struct CheckResult {
    std::string what;
    bool ok = false;
    std::string detail;  // what was found
    std::string fix;     // one line, only when !ok
};

// Kernel version and memory cgroup checks read `proc_root` (tests pass a fixture tree);
// `socket_path`: where a memgov daemon would listen ("off": none asked).
std::vector<CheckResult> check_system(bool verbose_libbpf, const std::string& socket_path,
                                      const std::string& proc_root = "/proc");

// "6.18.44-fc" -> {6, 18}; {0, 0} when unreadable.
std::pair<int, int> kernel_version(const std::string& release);

}  // namespace memgov
