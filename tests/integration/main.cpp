#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>

int main(int argc, char** argv) {
    if (geteuid() != 0) {
        std::printf("integration tests skipped: they load BPF programs and need root "
                    "(run: sudo ctest --test-dir build)\n");
        return 77;
    }
    return doctest::Context(argc, argv).run();
}
