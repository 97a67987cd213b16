#include "test_cgroup.h"

#include <unistd.h>

#include <stdexcept>

#include "harness.h"

namespace harness {
namespace {

// tools/memcg.py: the one cgroup helper of the tests, the benchmarks and the demo.
std::vector<std::string> memcg(std::vector<std::string> args) {
    args.insert(args.begin(), {"python3", std::string(MEMGOV_SOURCE_DIR) + "/tools/memcg.py"});
    return args;
}

std::string memcg_output(const std::vector<std::string>& args) {
    std::string out, err;
    if (run(memcg(args), &out, &err) != 0) throw std::runtime_error("memcg.py " + args.front() + ": " + err);
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
}

}  // namespace

TestCgroup::TestCgroup(std::uint64_t limit_bytes)
    : dir_(memcg_output({"make", std::to_string(limit_bytes), "memgov-test-" + std::to_string(getpid())})) {}

TestCgroup::~TestCgroup() { run(memcg({"remove", dir_})); }

std::uint64_t TestCgroup::oom_kills() const { return std::stoull(memcg_output({"oom-kills", dir_})); }

void TestCgroup::set_limit(std::uint64_t limit_bytes) const {
    memcg_output({"limit", dir_, std::to_string(limit_bytes)});
}

std::vector<std::string> TestCgroup::wrap(const std::vector<std::string>& command) const {
    std::vector<std::string> argv = memcg({"run", dir_});
    argv.insert(argv.end(), command.begin(), command.end());
    return argv;
}

}  // namespace harness
