#include "job_key.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <string_view>

namespace memgov {
namespace {

// Options of gcc/clang/cc1/ld/rustc whose value is the next argument; skipping them keeps
// `-o foo.c`, `-include x.h` or `-MF a.d` from being mistaken for inputs.
// (-MD and -MMD take a value only in cc1, and that value is a .d file: no source either way.)
constexpr std::array<std::string_view, 50> options_with_separate_value = {
    "-o",
    "-MF",
    "-MT",
    "-MQ",
    "-include",
    "-imacros",
    "-I",
    "-isystem",
    "-iquote",
    "-idirafter",
    "-iprefix",
    "-iwithprefix",
    "-isysroot",
    "-x",
    "-D",
    "-U",
    "-L",
    "-Xlinker",
    "-Xassembler",
    "-Xpreprocessor",
    "-Xclang",
    "-mllvm",
    "-aux-info",
    "-dumpbase",
    "-dumpbase-ext",
    "-dumpdir",
    "-auxbase",
    "-auxbase-strip",
    "-main-file-name",
    "--param",
    "-T",
    "-z",
    "-arch",
    "-target",
    "-e",
    "-soname",
    "-rpath",
    "-plugin",
    "-plugin-opt",
    "--crate-name",
    "--crate-type",
    "--edition",
    "--out-dir",
    "--emit",
    "--cfg",
    "--extern",
    "--cap-lints",
    "--target",
    "--error-format",
    "-C",
};

constexpr std::array<std::string_view, 33> source_extensions = {
    ".c",   ".cc",  ".cp", ".cpp", ".cxx", ".c++", ".C",    ".CPP", ".CC",   ".i",   ".ii",
    ".m",   ".mm",  ".M",  ".s",   ".S",   ".sx",  ".f",    ".for", ".f77",  ".f90", ".f95",
    ".f03", ".f08", ".F",  ".F90", ".rs",  ".go",  ".java", ".cu",  ".cppm", ".ixx", ".c++m",
};

bool takes_separate_value(std::string_view arg) {
    return std::find(options_with_separate_value.begin(), options_with_separate_value.end(), arg) !=
           options_with_separate_value.end();
}

bool is_source(std::string_view arg) {
    auto dot = arg.rfind('.');
    if (dot == std::string_view::npos || dot == 0) return false;
    auto slash = arg.rfind('/');
    if (slash != std::string_view::npos && dot < slash) return false;
    auto extension = arg.substr(dot);
    return std::find(source_extensions.begin(), source_extensions.end(), extension) != source_extensions.end();
}

// "x86_64-linux-gnu-g++-12" -> "g++": drops a version suffix and a target prefix.
std::string_view tool_name(std::string_view program) {
    auto dash = program.rfind('-');
    if (dash != std::string_view::npos && program.find_first_not_of("0123456789.", dash + 1) == std::string_view::npos)
        program = program.substr(0, dash);
    dash = program.rfind('-');
    return dash == std::string_view::npos ? program : program.substr(dash + 1);
}

// With no source among their inputs these link, and write a.out unless told otherwise.
bool is_linker_or_driver(std::string_view program) {
    static constexpr std::array<std::string_view, 14> linkers = {
        "ld",  "ld.bfd", "ld.gold", "ld.lld", "lld",   "mold",    "collect2",
        "gcc", "g++",    "cc",      "c++",    "clang", "clang++", "gfortran",
    };
    return std::find(linkers.begin(), linkers.end(), tool_name(program)) != linkers.end();
}

// lto1 (GCC) and lto-wrapper are LTO's code generation; a link that passes -flto runs it.
bool is_lto(const std::vector<std::string>& argv, std::string_view program) {
    if (program == "lto1" || program == "lto-wrapper") return true;
    return std::any_of(argv.begin() + 1, argv.end(), [](const std::string& arg) {
        return arg.starts_with("-flto") && !arg.starts_with("-flto-partition=none") && arg != "-fno-lto";
    });
}

bool is_preprocessed(std::string_view path) {
    return path.ends_with(".i") || path.ends_with(".ii") || path.ends_with(".mi") || path.ends_with(".mii");
}

// The quoted file name of a line marker (`# 12 "name" 1 3`), unescaped as cpp escapes it
// (\\, \" and octal); nullopt for any other line.
std::optional<std::string> marker_file(std::string_view line) {
    if (!line.starts_with("# ")) return std::nullopt;
    line.remove_prefix(2);
    auto digits = line.find_first_not_of("0123456789");
    if (digits == 0 || digits == std::string_view::npos || line.substr(digits, 2) != " \"") return std::nullopt;
    line.remove_prefix(digits + 2);
    std::string name;
    for (std::size_t i = 0; i < line.size(); ++i) {
        char c = line[i];
        if (c == '"') return name.find('\0') == std::string::npos ? std::optional(name) : std::nullopt;
        if (c != '\\' || i + 1 == line.size()) {
            name += c;
            continue;
        }
        char next = line[++i];
        if (next >= '0' && next <= '7') {
            int value = 0;
            for (int n = 0; n < 3 && i < line.size() && line[i] >= '0' && line[i] <= '7'; ++n, ++i)
                value = value * 8 + (line[i] - '0');
            --i;
            name += static_cast<char>(value);
        } else {
            name += next;
        }
    }
    return std::nullopt;  // no closing quote: cut off
}

}  // namespace

std::optional<std::string> preprocessed_origin(std::string_view head) {
    auto first_end = head.find('\n');
    if (first_end == std::string_view::npos) return std::nullopt;
    auto origin = marker_file(head.substr(0, first_end));
    if (!origin || origin->empty() || origin->starts_with("<")) return std::nullopt;
    if (origin->front() == '/') return absolute_path(*origin, "/");
    head.remove_prefix(first_end + 1);
    auto second_end = head.find('\n');
    auto directory = marker_file(head.substr(0, second_end));
    if (directory && directory->ends_with("//"))
        return absolute_path(*origin, directory->substr(0, directory->size() - 2));
    return origin;
}

const char* kind_name(JobKind kind) {
    switch (kind) {
        case JobKind::compile: return "compile";
        case JobKind::link: return "link";
        case JobKind::lto: return "lto";
        case JobKind::other: return "other";
    }
    return "other";
}

std::optional<JobKind> kind_from_name(std::string_view name) {
    for (JobKind kind : {JobKind::compile, JobKind::link, JobKind::lto, JobKind::other})
        if (name == kind_name(kind)) return kind;
    return std::nullopt;
}

std::string basename_of(std::string_view path) {
    auto slash = path.rfind('/');
    return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

std::string absolute_path(const std::string& path, const std::string& cwd) {
    std::filesystem::path p(path);
    if (p.is_relative()) p = std::filesystem::path(cwd.empty() ? "/" : cwd) / p;
    auto normal = p.lexically_normal().string();
    if (normal.size() > 1 && normal.back() == '/') normal.pop_back();
    return normal;
}

std::string joined(const std::vector<std::string>& argv) {
    std::string text;
    for (const auto& arg : argv) text += (text.empty() ? "" : " ") + arg;
    return text;
}

JobKey job_key(const std::vector<std::string>& argv, const std::string& cwd, const FileHead& head_of) {
    if (argv.empty()) return {JobKind::other, "(no argv)"};

    std::vector<std::string> sources;
    std::string output;
    bool from_stdin = false;
    bool compile_only = false;  // -c or -S: no link, whatever the program
    bool preprocessed = false;  // -fpreprocessed: its input has line markers (icecream's)
    for (std::size_t i = 1; i < argv.size(); ++i) {
        std::string_view arg = argv[i];
        if (arg == "-") {
            from_stdin = true;
        } else if (arg == "-c" || arg == "-S") {
            compile_only = true;
        } else if (arg == "-fpreprocessed") {
            preprocessed = true;
        } else if (arg == "-o" && i + 1 < argv.size()) {
            output = argv[++i];
        } else if (arg.starts_with("-o") && arg.size() > 2 && !arg.starts_with("-o=")) {
            output = arg.substr(2);
        } else if (takes_separate_value(arg)) {
            ++i;
        } else if (!arg.starts_with("-") && !arg.starts_with("@") && is_source(arg)) {
            sources.push_back(absolute_path(std::string(arg), cwd));
        }
    }

    if (!sources.empty()) {
        std::sort(sources.begin(), sources.end());
        sources.erase(std::unique(sources.begin(), sources.end()), sources.end());
        if (sources.size() == 1 && is_preprocessed(sources.front()) && head_of)
            if (auto origin = preprocessed_origin(head_of(sources.front()))) return {JobKind::compile, *origin};
        std::string key = sources.front();
        for (std::size_t i = 1; i < sources.size(); ++i) key += ", " + sources[i];
        return {JobKind::compile, key};
    }

    std::string program = basename_of(argv.front());
    if (program.empty()) program = argv.front().empty() ? "(unnamed program)" : argv.front();  // "", "dir/"
    if (from_stdin && compile_only) {
        std::string head = head_of && preprocessed ? head_of("-") : std::string();
        if (auto origin = preprocessed_origin(head)) return {JobKind::compile, *origin};
        std::string key = program;
        for (std::size_t i = 1; i < argv.size() && key.size() < 512; ++i) {
            if (argv[i].starts_with("-o")) {
                i += argv[i] == "-o" ? 1 : 0;  // a temporary name
                continue;
            }
            key += " " + argv[i];
        }
        // Only preprocessed input will name its source: a plain one piped in (a configure
        // check) is keyed by how it compiles at once.
        return {JobKind::compile, key, preprocessed && head.empty()};
    }
    if (is_linker_or_driver(program) || program == "lto-wrapper")
        return {is_lto(argv, program) ? JobKind::lto : JobKind::link,
                absolute_path(output.empty() ? "a.out" : output, cwd)};
    if (program == "lto1") return {JobKind::lto, output.empty() ? program : absolute_path(output, cwd)};
    if (!output.empty()) return {JobKind::other, program + " -o " + absolute_path(output, cwd)};

    std::string key = program;
    for (std::size_t i = 1; i < argv.size() && key.size() < 512; ++i) key += " " + argv[i];
    return {JobKind::other, key};
}

}  // namespace memgov
