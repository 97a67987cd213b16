// A child memory cgroup of the test's own cgroup, with a limit: a small machine for one
// test, created by it and removed (processes killed first) when it ends (tools/memcg.py).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace harness {

class TestCgroup {
public:
    explicit TestCgroup(std::uint64_t limit_bytes);
    ~TestCgroup();
    TestCgroup(const TestCgroup&) = delete;
    TestCgroup& operator=(const TestCgroup&) = delete;

    const std::string& dir() const { return dir_; }
    // OOM kills inside this cgroup so far (v1 memory.oom_control, v2 memory.events).
    std::uint64_t oom_kills() const;
    void set_limit(std::uint64_t limit_bytes) const;
    // argv that runs `command` inside the cgroup.
    std::vector<std::string> wrap(const std::vector<std::string>& command) const;

private:
    std::string dir_;
};

}  // namespace harness
