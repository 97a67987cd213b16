#include "memory_probe.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <sstream>
#include <vector>

#include "text_file.h"

namespace memgov {
namespace {

// A v1 limit of PAGE_COUNTER_MAX pages (or anything near 2^63) means "no limit".
constexpr std::uint64_t unlimited = 1ull << 60;

std::optional<std::uint64_t> parse_number(std::string_view text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
    std::uint64_t value = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return value;
}

std::optional<std::uint64_t> read_number(const std::string& path) {
    auto text = read_text_file(path);
    if (!text) return std::nullopt;
    if (text->starts_with("max")) return unlimited;
    return parse_number(*text);
}

// The value of `key` in a "key value" per line file (memory.stat, /proc/meminfo).
std::optional<std::uint64_t> field(const std::string& text, std::string_view key) {
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        if (!line.starts_with(key)) continue;
        std::string_view rest(line);
        rest.remove_prefix(key.size());
        if (rest.empty() || (rest.front() != ' ' && rest.front() != ':')) continue;
        while (!rest.empty() && (rest.front() == ' ' || rest.front() == ':' || rest.front() == '\t'))
            rest.remove_prefix(1);
        auto space = rest.find(' ');
        return parse_number(rest.substr(0, space));
    }
    return std::nullopt;
}

struct CgroupMount {
    std::string point;  // where it is mounted
    std::string root;   // the cgroup its root directory shows
};

// A mountinfo field, with its octal escapes (\040 for a space) undone.
std::string unescaped(std::string_view field) {
    std::string text;
    for (std::size_t i = 0; i < field.size(); ++i) {
        if (field[i] == '\\' && i + 4 <= field.size() &&
            field.substr(i + 1, 3).find_first_not_of("01234567") == std::string_view::npos) {
            text += static_cast<char>(std::stoi(std::string(field.substr(i + 1, 3)), nullptr, 8));
            i += 3;
        } else {
            text += field[i];
        }
    }
    return text;
}

// The memory hierarchy's mount in /proc/self/mountinfo: cgroup2, or a v1 cgroup mount
// whose super options name the memory controller.
std::optional<CgroupMount> memory_mount(const std::string& mountinfo, bool v2) {
    std::istringstream lines(mountinfo);
    for (std::string line; std::getline(lines, line);) {
        std::istringstream fields(line);
        std::vector<std::string> words;
        for (std::string word; fields >> word;) words.push_back(word);
        auto dash = std::find(words.begin(), words.end(), "-");
        if (words.size() < 5 || dash == words.end() || words.end() - dash < 4) continue;
        const std::string& type = *(dash + 1);
        std::string options = "," + *(dash + 3) + ",";
        bool wanted = v2 ? type == "cgroup2" : type == "cgroup" && options.find(",memory,") != std::string::npos;
        if (wanted) return CgroupMount{unescaped(words[4]), unescaped(words[3])};
    }
    return std::nullopt;
}

std::string parent_of(const std::string& dir) {
    auto slash = dir.rfind('/');
    return slash == std::string::npos || slash == 0 ? std::string() : dir.substr(0, slash);
}

}  // namespace

MemoryProbe::MemoryProbe(Paths paths) : paths_(std::move(paths)) {
    auto membership = read_text_file(paths_.proc + "/self/cgroup");
    if (!membership) return;
    std::string v1_path;
    std::string v2_path;
    std::istringstream lines(*membership);
    for (std::string line; std::getline(lines, line);) {
        auto first = line.find(':');
        auto second = line.find(':', first + 1);
        if (first == std::string::npos || second == std::string::npos) continue;
        std::string controllers = "," + line.substr(first + 1, second - first - 1) + ",";
        std::string path = line.substr(second + 1);
        if (controllers.find(",memory,") != std::string::npos) v1_path = path;
        if (controllers == ",,") v2_path = path;
    }
    std::string root;
    std::string path;
    if (!v1_path.empty()) {
        root = paths_.cgroup + "/memory";
        path = v1_path;
    } else if (!v2_path.empty()) {
        v2_ = true;
        root = read_text_file(paths_.cgroup + "/cgroup.controllers") ? paths_.cgroup : paths_.cgroup + "/unified";
        path = v2_path;
    } else {
        return;
    }
    std::string dir = root + (path == "/" ? "" : path);
    if (auto mountinfo = read_text_file(paths_.proc + "/self/mountinfo")) {
        auto mount = memory_mount(*mountinfo, v2_);
        if (!mount && path != "/") {
            // A limit set above us that we cannot read: say so rather than take MemAvailable.
            problem_ = fmt::format(
                "memgov's memory cgroup {} is in no {} hierarchy mounted here (a sysfs mounted "
                "anew, as `ip netns exec` mounts one, has none)",
                path, v2_ ? "cgroup2" : "memory cgroup");
            return;
        }
        if (mount) {
            root = local(mount->point);
            auto found = cgroup_dir(root, mount->root, path);
            if (!found) {
                problem_ = fmt::format("memgov's memory cgroup {} is not under {} (whose root is {})", path,
                                       mount->point, mount->root);
                return;
            }
            dir = *found;
        }
    }
    for (; dir.size() >= root.size() && !dir.empty(); dir = parent_of(dir)) {
        dirs_.push_back(dir);
        if (dir == root) break;
    }
}

std::string MemoryProbe::local(const std::string& mount_point) const {
    constexpr std::string_view standard = "/sys/fs/cgroup";
    if (mount_point.starts_with(standard)) return paths_.cgroup + mount_point.substr(standard.size());
    return mount_point;
}

std::optional<std::string> MemoryProbe::cgroup_dir(const std::string& base, const std::string& root,
                                                   const std::string& path) const {
    auto under = [&](const std::string& relative) { return relative == "/" ? base : base + relative; };
    if (root == "/") return under(path);
    if (path == root) return base;
    if (path.starts_with(root + "/")) return base + path.substr(root.size());
    // Inside a cgroup namespace, a hierarchy mounted outside it shows its root as "/.." so many
    // levels above the namespace's: the namespace's root is the directory that many levels
    // down whose cgroup (at `path` below it) lists this process.
    std::size_t levels = 0;
    for (std::string_view rest = root; rest.starts_with("/.."); rest.remove_prefix(3)) {
        ++levels;
        if (rest.size() > 3 && rest[3] != '/') return std::nullopt;
        if (rest.size() == 3) {
            // Level by level, each directory listed on its own: on a busy host cgroups come and
            // go while we look, and one that vanishes must not end the search.
            std::vector<std::filesystem::path> level{base};
            for (std::size_t depth = 0; depth < levels; ++depth) {
                std::vector<std::filesystem::path> below;
                for (const auto& dir : level) {
                    std::error_code error;
                    for (std::filesystem::directory_iterator it(dir, error), end; !error && it != end;
                         it.increment(error))
                        if (it->is_directory(error)) below.push_back(it->path());
                }
                level = std::move(below);
            }
            for (const auto& dir : level) {
                std::string candidate = dir.string() + (path == "/" ? "" : path);
                auto procs = read_text_file(candidate + "/cgroup.procs");
                std::istringstream pids(procs.value_or(""));
                for (pid_t pid = 0; pids >> pid;)
                    if (pid == paths_.self) return candidate;
            }
            return std::nullopt;
        }
    }
    return std::nullopt;
}

std::optional<std::uint64_t> MemoryProbe::reclaimable(const std::string& dir) const {
    auto now = std::chrono::steady_clock::now();
    auto cached = stat_cache_.find(dir);
    if (cached != stat_cache_.end() && now - cached->second.read_at < stat_interval) return cached->second.reclaimable;
    std::optional<std::uint64_t> value;
    if (auto stat = read_text_file(dir + "/memory.stat")) {
        // v1 has hierarchical totals (total_*) beside the cgroup's own figures; v2's are
        // hierarchical already.
        auto stat_field = [&](std::string_view v1, std::string_view v2) {
            if (v2_) return field(*stat, v2);
            auto total = field(*stat, fmt::format("total_{}", v1));
            return total ? total : field(*stat, v1);
        };
        // Page cache the kernel takes back before it OOM-kills: file pages, active ones too
        // (compilers reading headers keep hundreds of MB active), but not those mapped by a
        // process (a compiler's own code: taking them back thrashes) nor dirty ones.
        value = stat_field("inactive_file", "inactive_file");
        if (value) {
            std::uint64_t file = *value + stat_field("active_file", "active_file").value_or(0);
            std::uint64_t kept = stat_field("mapped_file", "file_mapped").value_or(0) +
                                 stat_field("dirty", "file_dirty").value_or(0) +
                                 stat_field("writeback", "file_writeback").value_or(0);
            value = file > kept ? file - kept : 0;
        }
    }
    stat_cache_[dir] = {now, value};
    return value;
}

std::optional<CgroupLevel> MemoryProbe::read_level(const std::string& dir) const {
    std::optional<std::uint64_t> limit;
    std::optional<std::uint64_t> usage;
    if (v2_) {
        limit = read_number(dir + "/memory.max");
        if (auto high = read_number(dir + "/memory.high"); high && limit) limit = std::min(*limit, *high);
        usage = read_number(dir + "/memory.current");
    } else {
        limit = read_number(dir + "/memory.limit_in_bytes");
        usage = read_number(dir + "/memory.usage_in_bytes");
    }
    if (!limit || !usage || *limit >= unlimited) return std::nullopt;
    std::uint64_t cache = std::min(reclaimable(dir).value_or(0), *usage);
    return CgroupLevel{dir, *limit, *usage - cache};
}

MemoryReading MemoryProbe::read() const {
    MemoryReading reading;
    if (auto meminfo = read_text_file(paths_.proc + "/meminfo")) {
        reading.total_bytes = field(*meminfo, "MemTotal").value_or(0) * 1024;
        reading.available_bytes = field(*meminfo, "MemAvailable").value_or(0) * 1024;
    }
    for (const auto& dir : dirs_) {
        auto level = read_level(dir);
        if (!level) continue;
        auto room = [](const CgroupLevel& l) {
            return l.limit_bytes > l.used_bytes ? l.limit_bytes - l.used_bytes : 0;
        };
        if (!reading.cgroup || room(*level) < room(*reading.cgroup)) reading.cgroup = level;
    }
    return reading;
}

Availability available_for_build(const MemoryReading& reading, const MemoryBudget& budget,
                                 std::uint64_t build_rss_bytes) {
    Availability result{
        reading.available_bytes, reading.total_bytes, "MemAvailable",
        reading.total_bytes > reading.available_bytes ? reading.total_bytes - reading.available_bytes : 0};
    if (reading.cgroup) {
        const auto& level = *reading.cgroup;
        std::uint64_t room = level.limit_bytes > level.used_bytes ? level.limit_bytes - level.used_bytes : 0;
        if (room < result.bytes) result = {room, level.limit_bytes, "cgroup " + level.dir, level.used_bytes, level.dir};
    }
    if (budget.limit_bytes) {
        std::uint64_t room = *budget.limit_bytes > build_rss_bytes ? *budget.limit_bytes - build_rss_bytes : 0;
        if (room < result.bytes) result = {room, *budget.limit_bytes, "--limit", build_rss_bytes};
    }
    result.bytes = result.bytes > budget.headroom_bytes ? result.bytes - budget.headroom_bytes : 0;
    return result;
}

}  // namespace memgov
