// Runs memgov and memhog as real processes and reads what they report.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace harness {

struct Outcome {
    int exit_status = -1;
    std::string out;  // the build's stdout
    std::string err;  // memgov's and the build's stderr
    nlohmann::json stats;
};

class TestCgroup;

// Runs `memgov <memgov_args> --stats-json TMP -- <command>`, inside `cgroup` if given.
Outcome run_memgov(const std::vector<std::string>& memgov_args, const std::vector<std::string>& command,
                   const TestCgroup* cgroup = nullptr);

// A fresh directory under /tmp, removed with its contents when it goes out of scope.
class ScratchDir {
public:
    // world_writable: for tests whose build runs as another user (nobody).
    explicit ScratchDir(bool world_writable = false);
    ~ScratchDir();
    ScratchDir(const ScratchDir&) = delete;
    ScratchDir& operator=(const ScratchDir&) = delete;
    const std::string& path() const { return path_; }
    void write(const std::string& relative, const std::string& text) const;

private:
    std::string path_;
};

// Wall seconds of running argv (its status must be 0 for the time to mean anything).
double timed_run(const std::vector<std::string>& argv, int* status);

// Runs argv, capturing stdout and stderr; returns the shell-style exit status.
int run(const std::vector<std::string>& argv, std::string* out = nullptr, std::string* err = nullptr);

// pid -> ru_maxrss in bytes, from memhog's "memhog pid=P maxrss_kb=K" lines.
std::map<pid_t, std::uint64_t> memhog_maxrss(const std::string& out);

// The pids pgrep prints for `args` (its options and pattern); none when nothing matches.
std::vector<pid_t> pgrep(const std::vector<std::string>& args);

// The state letter of /proc/PID/stat ('R', 'S', 'T' …), or 0 if gone.
char process_state(pid_t pid);
// utime of /proc/PID/stat in clock ticks, or -1.
long process_utime(pid_t pid);

std::string memgov_bin();
std::string memhog_bin();
std::string become_root_bin();  // tests/helpers/become_root.cpp
// A copy of become_root in `dir` (root's, not writable by others), setuid root and runnable by
// nobody's group only (04710 root:nogroup), set up on the open file: a build step's `sudo`.
std::string install_become_root(const std::string& dir);

// Peaks agree within max(1 %, 2 MiB), the tracker's promise.
bool peaks_agree(std::uint64_t tracked, std::uint64_t kernel);

}  // namespace harness
