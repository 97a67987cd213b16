#include "runner.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <system_error>

namespace memgov {
namespace {

[[noreturn]] void child_fail(int error_fd, int error) {
    (void)!write(error_fd, &error, sizeof(error));
    _exit(127);
}

void become(const Identity& who, int error_fd) {
    if (initgroups(who.user.c_str(), who.gid) != 0 || setgid(who.gid) != 0 || setuid(who.uid) != 0)
        child_fail(error_fd, errno);
    setenv("HOME", who.home.c_str(), 1);
    setenv("USER", who.user.c_str(), 1);
    setenv("LOGNAME", who.user.c_str(), 1);
}

}  // namespace

std::optional<Identity> sudo_invoker() {
    const char* uid_text = std::getenv("SUDO_UID");
    const char* gid_text = std::getenv("SUDO_GID");
    if (geteuid() != 0 || !uid_text || !gid_text) return std::nullopt;
    char* end = nullptr;
    unsigned long uid = std::strtoul(uid_text, &end, 10);
    if (*end || uid == 0) return std::nullopt;
    unsigned long gid = std::strtoul(gid_text, &end, 10);
    if (*end) return std::nullopt;
    Identity who{static_cast<uid_t>(uid), static_cast<gid_t>(gid), {}, "/"};
    if (const passwd* pw = getpwuid(who.uid)) {
        who.user = pw->pw_name;
        who.home = pw->pw_dir;
    } else if (const char* user = std::getenv("SUDO_USER")) {
        who.user = user;
    } else {
        who.user = uid_text;
    }
    return who;
}

FilesystemIdentity::FilesystemIdentity(const std::optional<Identity>& who) {
    if (!who) return;
    gid_ = static_cast<gid_t>(setfsgid(who->gid));
    uid_ = static_cast<uid_t>(setfsuid(who->uid));
    switched_ = true;
}

FilesystemIdentity::~FilesystemIdentity() {
    if (!switched_) return;
    setfsuid(uid_);
    setfsgid(gid_);
}

int shell_status(int wait_status) {
    if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
    if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
    return 1;
}

Runner::Runner(const Options& options) : program_(options.argv.at(0)) {
    int go[2];
    int error[2];
    if (pipe2(go, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe");
    if (pipe2(error, O_CLOEXEC) != 0) {
        close(go[0]);
        close(go[1]);
        throw std::system_error(errno, std::generic_category(), "pipe");
    }
    std::vector<char*> argv;
    for (const auto& arg : options.argv) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);

    pid_ = fork();
    if (pid_ < 0) throw std::system_error(errno, std::generic_category(), "fork");
    if (pid_ == 0) {
        close(go[1]);
        close(error[0]);
        // Capabilities that made memgov able to load BPF never reach the build.
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
        if (options.run_as) become(*options.run_as, error[1]);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, nullptr);
        char go_byte;
        if (read(go[0], &go_byte, 1) != 1) _exit(127);  // memgov died before starting us
        execvp(argv[0], argv.data());
        child_fail(error[1], errno);
    }
    close(go[0]);
    close(error[1]);
    go_fd_ = go[1];
    error_fd_ = error[0];
}

Runner::~Runner() {
    if (go_fd_ >= 0) close(go_fd_);
    if (error_fd_ >= 0) close(error_fd_);
}

int Runner::start() {
    char go_byte = 1;
    (void)!write(go_fd_, &go_byte, 1);
    close(go_fd_);
    go_fd_ = -1;
    int error = 0;
    ssize_t got;
    do got = read(error_fd_, &error, sizeof(error));
    while (got < 0 && errno == EINTR);
    close(error_fd_);
    error_fd_ = -1;
    if (got != static_cast<ssize_t>(sizeof(error))) return 0;
    wait();
    if (error == ENOENT) {
        fmt::print(stderr, "memgov: {}: command not found\n", program_);
        return 127;
    }
    fmt::print(stderr, "memgov: cannot run {}: {}\n", program_, std::strerror(error));
    return 126;
}

std::optional<int> Runner::try_wait() {
    if (status_) return status_;
    int wait_status = 0;
    pid_t got = waitpid(pid_, &wait_status, WNOHANG);
    if (got == pid_) status_ = shell_status(wait_status);
    return status_;
}

int Runner::wait() {
    while (!status_) {
        int wait_status = 0;
        pid_t got = waitpid(pid_, &wait_status, 0);
        if (got == pid_)
            status_ = shell_status(wait_status);
        else if (got < 0 && errno != EINTR)
            status_ = 1;
    }
    return *status_;
}

}  // namespace memgov
