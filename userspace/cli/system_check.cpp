#include "system_check.h"

#include <fmt/format.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "bpf_tracker.h"
#include "capabilities.h"
#include "remote_tracker.h"
#include "text_file.h"

namespace memgov {
namespace {

constexpr std::pair<int, int> minimum_kernel{6, 13};  // bpf_send_signal_task kfunc

CheckResult check_kernel() {
    utsname name{};
    uname(&name);
    auto version = kernel_version(name.release);
    bool ok = version >= minimum_kernel;
    return {"kernel", ok,
            fmt::format("Linux {} ({}.{} or newer needed)", name.release, minimum_kernel.first, minimum_kernel.second),
            ok ? "" : "boot a newer kernel (Debian 12: bookworm-backports linux-image-amd64)"};
}

CheckResult check_btf() {
    bool ok = access("/sys/kernel/btf/vmlinux", R_OK) == 0;
    return {"BTF", ok, ok ? "/sys/kernel/btf/vmlinux" : "/sys/kernel/btf/vmlinux missing",
            ok ? "" : "use a kernel built with CONFIG_DEBUG_INFO_BTF=y"};
}

CheckResult check_privilege(bool daemon) {
    bool own = has_bpf_privilege();
    return {"privilege", own || daemon,
            own      ? (geteuid() == 0 ? "root" : "CAP_BPF and CAP_PERFMON")
            : daemon ? "none needed: the memgov daemon follows the build"
                     : "neither root nor CAP_BPF+CAP_PERFMON, and no memgov daemon",
            own || daemon ? ""
                          : "run with sudo, or: sudo setcap cap_bpf,cap_perfmon+ep $(which memgov), or start the "
                            "daemon (sudo systemctl enable --now memgov)"};
}

// Whether a daemon listens where a memgov without privilege would ask it (never a failure).
CheckResult check_daemon(const std::string& socket_path, bool& listening) {
    std::string error;
    listening = socket_path != "off" && RemoteTracker::connect(socket_path, error, [](const std::string&) {});
    return {"daemon", true,
            listening ? fmt::format("listening on {}", socket_path)
                      : fmt::format("none on {} (memgov loads its own BPF programs; `memgov daemon` serves users "
                                    "without privilege)",
                                    socket_path),
            ""};
}

CheckResult check_memory_cgroup(const std::string& proc_root) {
    std::ifstream in(proc_root + "/self/cgroup");
    std::string line;
    std::string unified;
    while (std::getline(in, line)) {
        // v1: "4:memory:/path"; v2: "0::/path"
        auto first = line.find(':');
        auto second = line.find(':', first + 1);
        if (first == std::string::npos || second == std::string::npos) continue;
        std::string controllers = line.substr(first + 1, second - first - 1);
        std::string path = line.substr(second + 1);
        if (controllers == "memory") return {"memory cgroup", true, "v1 " + path, ""};
        if (controllers.empty()) unified = path;
    }
    if (!unified.empty()) {
        for (const char* mount : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
            std::ifstream list(std::string(mount) + unified + "/cgroup.controllers");
            std::string names;
            std::getline(list, names);
            if (names.find("memory") != std::string::npos) return {"memory cgroup", true, "v2 " + unified, ""};
        }
    }
    return {"memory cgroup", false, "no memory controller for this process",
            "memgov still works, using MemAvailable only; enable the memory controller "
            "(cgroup_enable=memory) to respect container limits"};
}

// What --trace, --stats-json and memgov report can say of a job's stalls (never a failure).
CheckResult check_stall_accounting(const std::string& proc_root) {
    auto delay_accounting = read_text_file(proc_root + "/sys/kernel/task_delayacct");
    bool delays = delay_accounting && delay_accounting->starts_with("1");
    bool pressure = access((proc_root + "/pressure/memory").c_str(), R_OK) == 0;
    return {"job stalls", true,
            fmt::format("CPU time, waiting for a CPU and major faults per job; waiting for I/O and in direct reclaim "
                        "{}; pressure (PSI) {}",
                        delays ? "too" : "not (sysctl -w kernel.task_delayacct=1 to measure them)",
                        pressure ? "in --trace" : "not available (boot with psi=1)"),
            ""};
}

CheckResult check_bpf_load(bool verbose_libbpf) {
    try {
        TrackerOptions options;
        options.pause_job_roots = false;
        options.verbose_libbpf = verbose_libbpf;
        BpfTracker::open(options);
        return {"BPF programs", true, "tp_btf fork/exec/exit/rss_stat/mark_victim load and attach", ""};
    } catch (const TrackerError& error) {
        return {"BPF programs", false, "cannot load or attach", error.what()};
    }
}

}  // namespace

std::pair<int, int> kernel_version(const std::string& release) {
    int major = 0;
    int minor = 0;
    if (std::sscanf(release.c_str(), "%d.%d", &major, &minor) != 2) return {0, 0};
    return {major, minor};
}

std::vector<CheckResult> check_system(bool verbose_libbpf, const std::string& socket_path,
                                      const std::string& proc_root) {
    bool daemon = false;
    CheckResult daemon_line = check_daemon(socket_path, daemon);
    std::vector<CheckResult> results{check_kernel(),
                                     check_btf(),
                                     check_privilege(daemon),
                                     daemon_line,
                                     check_memory_cgroup(proc_root),
                                     check_stall_accounting(proc_root)};
    // Without privilege the programs are the daemon's, loaded already.
    if (has_bpf_privilege() || !daemon) results.push_back(check_bpf_load(verbose_libbpf));
    return results;
}

}  // namespace memgov
