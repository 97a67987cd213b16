// become_root PROGRAM [ARGS…]: becomes root and runs PROGRAM, as `sudo` does in a build step
// (`sudo make install`). Tests install a copy setuid root; its real uid is then the user's
// until setuid(0), after which that user may no longer signal PROGRAM.
#include <unistd.h>

#include <cstdio>

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: become_root PROGRAM [ARGS...]\n");
        return 2;
    }
    if (setgid(0) != 0 || setuid(0) != 0) {
        std::perror("become_root: setuid (is this copy setuid root?)");
        return 1;
    }
    execvp(argv[1], argv + 1);
    std::perror("become_root: exec");
    return 127;
}
