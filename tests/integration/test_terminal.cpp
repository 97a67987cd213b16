// The bar in a real terminal (tmux): shown while the build runs, the build's lines intact,
// nothing left after exit; and not one escape sequence when stderr is a file.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "harness.h"

using namespace harness;
using namespace std::chrono_literals;

namespace {

std::string makefile_with_output() {
    std::string makefile = "all: a b c\n";
    for (const char* job : {"a", "b", "c"})
        makefile += fmt::format(
            "{0}:\n\t@echo 'job {0} starts, a line the bar must not touch'\n"
            "\t@{1} --mb 60 --ramp-ms 500 --hold-ms 1500 > /dev/null\n"
            "\t@echo 'job {0} ends, also intact'\n",
            job, memhog_bin());
    return makefile + ".PHONY: all a b c\n";
}

std::string capture(const std::string& session) {
    std::string out;
    run({"tmux", "capture-pane", "-t", session, "-p"}, &out);
    return out;
}

bool has_bar(const std::string& screen) {
    std::istringstream lines(screen);
    for (std::string line; std::getline(lines, line);)
        if (line.find("% (") != std::string::npos && line.find("proc") != std::string::npos) return true;
    return false;
}

}  // namespace

TEST_CASE("in a terminal the bar is drawn during the build, never over its lines, and gone after") {
    ScratchDir build;
    ScratchDir profiles;
    build.write("Makefile", makefile_with_output());
    std::string session = fmt::format("memgov-test-{}", getpid());
    REQUIRE(run({"tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "30", "/bin/sh"}) == 0);
    std::string command = fmt::format(
        "TERM=xterm {} --gate memhog --profiles-dir {} --limit 150M -- make -s -j3 -C {}; "
        "echo \"memgov\"\"-exit-$?\"",  // typed text must not match
        memgov_bin(), profiles.path(), build.path());
    run({"tmux", "send-keys", "-t", session, command, "Enter"});

    bool bar_seen = false;
    std::string screen;
    for (int i = 0; i < 40 && !bar_seen; ++i) {
        std::this_thread::sleep_for(100ms);
        screen = capture(session);
        bar_seen = has_bar(screen);
    }
    CHECK_MESSAGE(bar_seen, screen);
    for (int i = 0; i < 150 && screen.find("memgov-exit-") == std::string::npos; ++i) {
        std::this_thread::sleep_for(100ms);
        screen = capture(session);
    }
    run({"tmux", "kill-session", "-t", session});
    INFO(screen);
    CHECK(screen.find("memgov-exit-0") != std::string::npos);
    CHECK_FALSE(has_bar(screen));
    for (const char* job : {"a", "b", "c"}) {
        CHECK(screen.find(fmt::format("job {} starts, a line the bar must not touch\n", job)) != std::string::npos);
        CHECK(screen.find(fmt::format("job {} ends, also intact\n", job)) != std::string::npos);
    }
    CHECK(screen.find("memgov: exit 0") != std::string::npos);
}

TEST_CASE("with stderr redirected to a file not one escape sequence is written") {
    ScratchDir build;
    ScratchDir profiles;
    build.write("Makefile", makefile_with_output());
    std::string err_path = build.path() + "/stderr.txt";
    int status = run({"/bin/sh", "-c",
                      fmt::format("TERM=xterm CLICOLOR_FORCE= {} -v --gate memhog --profiles-dir {} --limit 150M -- "
                                  "make -s -j3 -C {} 2> {}",
                                  memgov_bin(), profiles.path(), build.path(), err_path)});
    CHECK(status == 0);
    std::ifstream in(err_path);
    std::string err((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(err.find("[PREDICT]") != std::string::npos);
    CHECK(err.find("memgov: exit 0") != std::string::npos);
    CHECK(err.find('\033') == std::string::npos);
}

TEST_CASE("--bar=always with NO_COLOR draws the bar without colour") {
    ScratchDir build;
    ScratchDir profiles;
    build.write("Makefile", makefile_with_output());
    std::string err;
    // Not a TTY: no window size to draw in, so even 'always' draws nothing rather than garbage.
    run({"env", "NO_COLOR=1", memgov_bin(), "--bar=always", "--gate", "memhog", "--profiles-dir", profiles.path(), "--",
         "make", "-s", "-C", build.path()},
        nullptr, &err);
    CHECK(err.find('\033') == std::string::npos);
}
