#include "test_cgroup.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "memory_probe.h"

namespace harness {
namespace {

void write_file(const std::string& path, const std::string& text) {
    std::ofstream out(path);
    out << text;
    out.close();
    if (!out) throw std::runtime_error("cannot write " + path);
}

std::uint64_t field_value(const std::string& path, const std::string& key) {
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
        std::istringstream words(line);
        std::string name;
        std::uint64_t value = 0;
        if (words >> name >> value && name == key) return value;
    }
    return 0;
}

}  // namespace

TestCgroup::TestCgroup(std::uint64_t limit_bytes) {
    memgov::MemoryProbe probe;  // finds our own memory cgroup the way memgov does
    if (probe.cgroup_dirs().empty()) throw std::runtime_error("no memory cgroup on this machine");
    v2_ = probe.cgroup_v2();
    dir_ = probe.cgroup_dirs().front() + "/memgov-test-" + std::to_string(getpid());
    if (mkdir(dir_.c_str(), 0755) != 0 && errno != EEXIST) throw std::runtime_error("cannot create " + dir_);
    write_file(dir_ + (v2_ ? "/memory.max" : "/memory.limit_in_bytes"), std::to_string(limit_bytes));
}

TestCgroup::~TestCgroup() {
    for (int attempt = 0; attempt < 50; ++attempt) {
        std::ifstream procs(dir_ + "/cgroup.procs");
        bool any = false;
        for (pid_t pid; procs >> pid;) {
            kill(pid, SIGKILL);
            any = true;
        }
        if (!any && rmdir(dir_.c_str()) == 0) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
}

std::uint64_t TestCgroup::oom_kills() const {
    return field_value(dir_ + (v2_ ? "/memory.events" : "/memory.oom_control"), "oom_kill");
}

std::vector<std::string> TestCgroup::wrap(const std::vector<std::string>& command) const {
    std::vector<std::string> argv{"/bin/sh", "-c", "echo $$ > \"$0\" && exec \"$@\"", dir_ + "/cgroup.procs"};
    argv.insert(argv.end(), command.begin(), command.end());
    return argv;
}

}  // namespace harness
