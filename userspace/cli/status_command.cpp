#include "status_command.h"

#include <fmt/format.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <thread>

#include "host_status.h"
#include "memory_probe.h"

namespace memgov {
namespace {

std::string user_name(uid_t uid) {
    passwd entry{};
    passwd* found = nullptr;
    char buffer[4096];
    if (getpwuid_r(uid, &entry, buffer, sizeof buffer, &found) == 0 && found) return found->pw_name;
    return std::to_string(uid);
}

// A node_exporter textfile collector must never read half a file: a temporary file beside it,
// then rename.
bool write_atomically(const std::string& path, const std::string& text) {
    std::string temporary = path + ".tmp";
    std::ofstream out(temporary, std::ios::trunc);
    out << text;
    out.close();
    if (!out || std::rename(temporary.c_str(), path.c_str()) != 0) {
        fmt::print(stderr, "memgov status: cannot write {}: {}\n", path, std::strerror(errno));
        std::remove(temporary.c_str());
        return false;
    }
    return true;
}

}  // namespace

int status_command(const StatusOptions& options) {
    MemoryProbe probe;
    bool clear = options.watch && !options.json && isatty(STDOUT_FILENO);
    for (;;) {
        HostStatus status{.ledger_dir = options.ledger_dir, .memory = probe.read(), .builds = {}};
        try {
            status.builds = read_ledger(options.ledger_dir);
        } catch (const std::runtime_error& error) {
            if (errno != ENOENT) {  // no ledger yet: no memgov has governed a build here
                fmt::print(stderr,
                           "memgov status: {}: run it as the user memgov runs as (root under sudo), or pass "
                           "--ledger DIR\n",
                           error.what());
                return 1;
            }
        }
        if (options.metrics_file) {
            if (!write_atomically(*options.metrics_file, host_status_prometheus(status, user_name))) return 1;
        } else {
            std::string shown = options.prometheus ? host_status_prometheus(status, user_name)
                                : options.json     ? host_status_json(status, user_name).dump() + "\n"
                                                   : host_status_text(status, user_name);
            fmt::print("{}{}", clear ? "\033[H\033[2J" : "", shown);
            std::fflush(stdout);
        }
        if (!options.watch) return 0;
        if (!clear && !options.json) fmt::print("\n");
        std::this_thread::sleep_for(options.interval);
    }
}

}  // namespace memgov
