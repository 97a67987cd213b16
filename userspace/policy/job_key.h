// What a job's cost is learned under (docs/DESIGN.md §5): the absolute path of the
// source file(s) it compiles, else the output it links, else its program and output.
// Pure: argv and the job's cwd in, key out.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace memgov {

// A job's role: what its peak is compared with when its key has never been seen. A link
// and a compile by the same g++ need very different memory; an LTO link (code generation of
// the whole program at link time) needs far more than a plain one.
enum class JobKind { compile, link, lto, other };

const char* kind_name(JobKind kind);
// The role named by kind_name; nullopt for anything else.
std::optional<JobKind> kind_from_name(std::string_view name);

struct JobKey {
    JobKind kind = JobKind::other;
    std::string key;
    // A compile of its standard input whose pipe held nothing yet: the key says only how it
    // compiles; ask again (BuildController does, while it lives).
    bool pending = false;
};

// The first bytes of a file, or "" when it cannot be read.
using FileHead = std::function<std::string(const std::string& path)>;

// A compile of one preprocessed file (.i, .ii, .mi, .mii: a distcc worker compiles
// /tmp/distccd_XXXX.ii, named anew every time) is keyed by the source it was made from, read
// from the file's head with `head_of` (see preprocessed_origin), when given and found. So is
// a compile of its standard input (`-c … -`: an icecream worker pipes the preprocessed source
// to `g++ -x c++ -c - -o icecc-N_XXXX.o`), whose head `head_of("-")` gives; when it names no
// source, the compile is keyed by its program and options alone, never by a temporary name,
// and when it holds nothing yet and is preprocessed (-fpreprocessed: it will), that key is
// pending.
JobKey job_key(const std::vector<std::string>& argv, const std::string& cwd, const FileHead& head_of = {});

// The source a preprocessed file was made from: its first line marker (`# 0 "src/a.cpp"`),
// made absolute by the working-directory marker gcc writes after it with -g
// (`# 1 "/home/u/proj//"`). nullopt when `head` starts with no such marker, or names no file
// ("<stdin>").
std::optional<std::string> preprocessed_origin(std::string_view head);

// The last component of a path: "/usr/bin/g++" -> "g++" (the exec gate's and key's program name).
std::string basename_of(std::string_view path);
// argv as one line, arguments joined by spaces (for the log).
std::string joined(const std::vector<std::string>& argv);

// Lexically normal absolute path of `path` seen from `cwd`; never touches the file system.
std::string absolute_path(const std::string& path, const std::string& cwd);

}  // namespace memgov
