// What a job's cost is learned under (docs/DESIGN.md §3): the absolute path of the
// source file(s) it compiles, else the output it links, else its program and output.
// Pure: argv and the job's cwd in, key out.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace memgov {

enum class JobKind { compile, link, other };

struct JobKey {
    JobKind kind = JobKind::other;
    std::string key;
};

JobKey job_key(const std::vector<std::string>& argv, const std::string& cwd);

// The last component of a path: "/usr/bin/g++" -> "g++" (the exec gate's and key's program name).
std::string basename_of(std::string_view path);

// Lexically normal absolute path of `path` seen from `cwd`; never touches the file system.
std::string absolute_path(const std::string& path, const std::string& cwd);

}  // namespace memgov
