// The CLI keeps its word: every example in --help runs, every mistake gets one line and 2.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "harness.h"

using namespace harness;

namespace {

// Command lines of the EXAMPLES section of --help: "  memgov …", "  sudo memgov …", and the
// "run: memgov …" mentioned in a description.
std::vector<std::string> documented_examples() {
    std::string help;
    REQUIRE(run({memgov_bin(), "--help"}, &help) == 0);
    auto section = help.find("\nEXAMPLES\n");
    REQUIRE(section != std::string::npos);
    std::istringstream lines(help.substr(section));
    std::vector<std::string> commands;
    for (std::string line; std::getline(lines, line);) {
        std::string command;
        if (line.starts_with("  sudo memgov "))
            command = line.substr(7);
        else if (line.starts_with("  memgov "))
            command = line.substr(2);
        else if (auto at = line.find("run: memgov "); at != std::string::npos)
            command = line.substr(at + 5);
        if (!command.empty()) commands.push_back(command);
    }
    return commands;
}

}  // namespace

TEST_CASE("every example in --help runs and succeeds") {
    ScratchDir dir;
    dir.write("Makefile", "all: a.o\na.o: a.c\n\tcc -c a.c -o a.o\n");
    dir.write("a.c", "int a(void) { return 1; }\n");
    dir.write("build.ninja", "rule cc\n  command = cc -c $in -o $out\nbuild b.o: cc a.c\n");
    dir.write("project/CMakeLists.txt",
              "cmake_minimum_required(VERSION 3.16)\nproject(p C)\nadd_library(p STATIC a.c)\n");
    dir.write("project/a.c", "int a(void) { return 1; }\n");
    REQUIRE(run({"cmake", "-S", dir.path() + "/project", "-B", dir.path() + "/build"}) == 0);

    auto examples = documented_examples();
    CHECK(examples.size() >= 7);
    for (const auto& example : examples) {
        std::string command = memgov_bin() + example.substr(6);  // "memgov" -> the binary
        std::string out;
        std::string err;
        int status = run({"/bin/sh", "-c",
                          fmt::format("cd {} && MEMGOV_PROFILES_DIR={}/profiles {}", dir.path(), dir.path(), command)},
                         &out, &err);
        CHECK_MESSAGE(status == 0, example, "\nstdout: ", out, "\nstderr: ", err);
    }
}

TEST_CASE("mistakes get one clear line and exit 2") {
    const std::vector<std::vector<std::string>> mistakes = {
        {"--bogus", "--", "true"},
        {"--limit", "-5G", "--", "true"},
        {"--limit", "200%", "--", "true"},
        {"--headroom", "lots", "--", "true"},
        {"--bar", "sometimes", "--", "true"},
        {"--top"},
        {"--"},
        {},
        {"profiles"},
        {"profiles", "forget"},
        {"profiles", "forget", "--older-than", "soon"},
    };
    for (const auto& mistake : mistakes) {
        std::vector<std::string> argv{memgov_bin()};
        argv.insert(argv.end(), mistake.begin(), mistake.end());
        std::string err;
        int status = run(argv, nullptr, &err);
        std::string shown;
        for (const auto& arg : mistake) shown += arg + " ";
        CHECK_MESSAGE(status == 2, shown, "-> ", err);
        CHECK_MESSAGE(std::count(err.begin(), err.end(), '\n') == 1, shown, "-> ", err);
        CHECK_MESSAGE(err.starts_with("memgov: "), shown, "-> ", err);
    }
}

TEST_CASE("a command without -- runs, and a command that is not there exits 127") {
    CHECK(run({memgov_bin(), "-q", "true"}) == 0);
    CHECK(run({memgov_bin(), "run", "-q", "--", "true"}) == 0);
    CHECK(run({memgov_bin(), "-q", "/bin/sh", "-c", "exit 3"}) == 3);
    std::string err;
    CHECK(run({memgov_bin(), "-q", "--", "no-such-command-anywhere"}, nullptr, &err) == 127);
    CHECK(err == "memgov: no-such-command-anywhere: command not found\n");
}

TEST_CASE("every option in --help is in the man page, the README and the bash completion") {
    std::string help;
    REQUIRE(run({memgov_bin(), "--help"}, &help) == 0);
    std::vector<std::string> options;
    std::istringstream lines(help.substr(0, help.find("\nEXAMPLES\n")));
    for (std::string line; std::getline(lines, line);) {
        auto first = line.find_first_not_of(' ');  // option lines start at column 2 with "-"
        if (first != 2 || line[first] != '-') continue;
        auto at = line.find("--", first);
        auto end = line.find_first_of(" ,=", at);
        std::string option = line.substr(at, end == std::string::npos ? std::string::npos : end - at);
        if (option != "--help" && option != "--version") options.push_back(option);  // CLI11's own
    }
    REQUIRE(options.size() > 15);
    auto source = std::filesystem::path(MEMGOV_SOURCE_DIR);
    auto text_of = [](const std::filesystem::path& path) {
        std::ifstream in(path);
        return std::string(std::istreambuf_iterator<char>(in), {});
    };
    std::string man = text_of(source / "docs/memgov.1");
    std::string readme = text_of(source / "README.md");
    std::string completion = text_of(source / "tools/completion/memgov.bash");
    auto man_form = [](std::string option) {  // groff writes each '-' as "\-"
        std::string escaped;
        for (char c : option) escaped += c == '-' ? std::string("\\-") : std::string(1, c);
        return escaped;
    };
    for (const auto& option : options) {
        CAPTURE(option);
        CHECK(man.find(man_form(option)) != std::string::npos);
        CHECK(readme.find("`" + option) != std::string::npos);
        CHECK(completion.find(option) != std::string::npos);
    }
}
