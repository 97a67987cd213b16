#include "harness.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>

#include "runner.h"
#include "test_cgroup.h"

namespace harness {

std::string memgov_bin() { return MEMGOV_BIN; }
std::string memhog_bin() { return MEMHOG_BIN; }
std::string become_root_bin() { return BECOME_ROOT_BIN; }

std::string install_become_root(const std::string& dir) {
    std::string path = dir + "/become_root";
    std::filesystem::copy_file(become_root_bin(), path);
    int helper = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (helper < 0 || fchown(helper, 0, 65534) != 0 || fchmod(helper, 04710) != 0)
        throw std::runtime_error("cannot make " + path + " setuid root: " + std::strerror(errno));
    close(helper);
    return path;
}

int run(const std::vector<std::string>& argv, std::string* out, std::string* err) {
    int out_pipe[2];
    int err_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) || pipe2(err_pipe, O_CLOEXEC)) throw std::runtime_error("pipe");
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out_pipe[1], 1);
        dup2(err_pipe[1], 2);
        std::vector<char*> args;
        for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
        args.push_back(nullptr);
        execvp(args[0], args.data());
        _exit(127);
    }
    close(out_pipe[1]);
    close(err_pipe[1]);
    std::string collected[2];
    pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    int open_fds = 2;
    while (open_fds > 0) {
        if (::poll(fds, 2, -1) < 0) continue;
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
            char buffer[65536];
            ssize_t got = read(fds[i].fd, buffer, sizeof(buffer));
            if (got > 0) {
                collected[i].append(buffer, static_cast<std::size_t>(got));
            } else {
                close(fds[i].fd);
                fds[i].fd = -1;
                --open_fds;
            }
        }
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (out) *out = std::move(collected[0]);
    if (err) *err = std::move(collected[1]);
    return memgov::shell_status(status);
}

Outcome run_memgov(const std::vector<std::string>& memgov_args, const std::vector<std::string>& command,
                   const TestCgroup* cgroup) {
    char path[] = "/tmp/memgov-stats-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    std::vector<std::string> argv{memgov_bin()};
    argv.insert(argv.end(), memgov_args.begin(), memgov_args.end());
    argv.insert(argv.end(), {"--stats-json", path, "--"});
    argv.insert(argv.end(), command.begin(), command.end());
    if (cgroup) argv = cgroup->wrap(argv);
    Outcome outcome;
    outcome.exit_status = run(argv, &outcome.out, &outcome.err);
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    unlink(path);
    if (!text.str().empty()) outcome.stats = nlohmann::json::parse(text.str());
    return outcome;
}

std::map<pid_t, std::uint64_t> memhog_maxrss(const std::string& out) {
    std::map<pid_t, std::uint64_t> peaks;
    static const std::regex line(R"(memhog pid=(\d+) maxrss_kb=(\d+))");
    for (std::sregex_iterator it(out.begin(), out.end(), line), end; it != end; ++it)
        peaks[std::stoi((*it)[1])] = std::stoull((*it)[2]) * 1024;
    return peaks;
}

ScratchDir::ScratchDir(bool world_writable) {
    char pattern[] = "/tmp/memgov-it-XXXXXX";
    path_ = mkdtemp(pattern);
    chmod(path_.c_str(), world_writable ? 0777 : 0755);
}

ScratchDir::~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
}

void ScratchDir::write(const std::string& relative, const std::string& text) const {
    std::filesystem::path file = std::filesystem::path(path_) / relative;
    std::filesystem::create_directories(file.parent_path());
    std::ofstream(file) << text;
}

double timed_run(const std::vector<std::string>& argv, int* status) {
    auto start = std::chrono::steady_clock::now();
    *status = run(argv);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

namespace {

// Fields of /proc/PID/stat after the ")" that closes comm; field 3 (state) is [0].
std::vector<std::string> stat_fields(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto close = text.rfind(')');
    if (close == std::string::npos) return {};
    std::istringstream rest(text.substr(close + 2));
    std::vector<std::string> fields;
    for (std::string field; rest >> field;) fields.push_back(field);
    return fields;
}

}  // namespace

std::vector<pid_t> pgrep(const std::vector<std::string>& args) {
    std::vector<std::string> argv{"pgrep"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string out;
    run(argv, &out);
    std::vector<pid_t> pids;
    for (std::size_t at = 0; at < out.size();) {
        std::size_t end = out.find('\n', at);
        pids.push_back(std::stoi(out.substr(at, end - at)));
        at = end == std::string::npos ? out.size() : end + 1;
    }
    return pids;
}

char process_state(pid_t pid) {
    auto fields = stat_fields(pid);
    return fields.empty() ? 0 : fields[0][0];
}

long process_utime(pid_t pid) {
    auto fields = stat_fields(pid);
    return fields.size() > 11 ? std::stol(fields[11]) : -1;  // field 14
}

bool peaks_agree(std::uint64_t tracked, std::uint64_t kernel) {
    std::uint64_t difference = tracked > kernel ? tracked - kernel : kernel - tracked;
    std::uint64_t tolerance = std::max<std::uint64_t>(kernel / 100, 2ull << 20);
    return difference <= tolerance;
}

}  // namespace harness
