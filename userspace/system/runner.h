// Starts the build: fork, drop privileges, wait at a barrier until the tracker follows
// the child, exec. Only the Runner forks, execs and reaps.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace memgov {

// Who the build runs as. From sudo's SUDO_UID/SUDO_GID when memgov runs as root.
struct Identity {
    uid_t uid = 0;
    gid_t gid = 0;
    std::string user;
    std::string home;
};

// The invoking user under sudo; nullopt when not root or not started by sudo.
std::optional<Identity> sudo_invoker();

// While alive, the calling thread opens and creates files as `who` (fsuid/fsgid): files
// memgov writes for the user (profiles, --stats-json, --log) are theirs, and root never
// follows a path, symlink or directory the user could not write themselves.
class FilesystemIdentity {
public:
    explicit FilesystemIdentity(const std::optional<Identity>& who);
    ~FilesystemIdentity();
    FilesystemIdentity(const FilesystemIdentity&) = delete;
    FilesystemIdentity& operator=(const FilesystemIdentity&) = delete;

private:
    bool switched_ = false;
    uid_t uid_ = 0;
    gid_t gid_ = 0;
};

class Runner {
public:
    struct Options {
        std::vector<std::string> argv;
        std::optional<Identity> run_as;
    };

    // Forks the child; it waits before exec until start(). Throws std::system_error.
    explicit Runner(const Options& options);
    ~Runner();
    Runner(const Runner&) = delete;
    Runner& operator=(const Runner&) = delete;

    pid_t pid() const { return pid_; }

    // Lets the child exec. Returns 0, or the shell-style status when exec failed
    // (127: not found, 126: not executable) after printing why.
    int start();

    // The child's shell-style exit status (128+N when killed by signal N) once it exited.
    std::optional<int> try_wait();
    int wait();

private:
    pid_t pid_ = -1;
    int go_fd_ = -1;     // parent writes one byte: exec now
    int error_fd_ = -1;  // child writes errno if exec fails; EOF on success (O_CLOEXEC)
    std::string program_;
    std::optional<int> status_;
};

int shell_status(int wait_status);

}  // namespace memgov
