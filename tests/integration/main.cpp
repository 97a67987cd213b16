#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>
#include <string_view>

int main(int argc, char** argv) {
    // Listing the test cases (ctest's discovery at build time) needs no privilege.
    bool listing = false;
    for (int i = 1; i < argc; ++i) listing |= std::string_view(argv[i]).starts_with("--list");
    if (geteuid() != 0 && !listing) {
        std::printf(
            "integration tests skipped: they load BPF programs and need root "
            "(run: sudo ctest --test-dir build)\n");
        return 77;
    }
    return doctest::Context(argc, argv).run();
}
