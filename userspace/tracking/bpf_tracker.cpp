#include "bpf_tracker.h"

#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "capabilities.h"
#include "event_decode.h"
#include "memgov/abi.h"

#include "memgov.skel.h"  // after the ABI, whose structs it names

namespace memgov {
namespace {

constexpr const char* kernel_btf = "/sys/kernel/btf/vmlinux";

bool verbose_libbpf = false;

int print_libbpf(enum libbpf_print_level level, const char* format, va_list args) {
    // libbpf's own EPERM hint ("try raising ulimit -l") is wrong here; memgov diagnoses instead.
    if (!verbose_libbpf || level == LIBBPF_DEBUG) return 0;
    return std::vfprintf(stderr, format, args);
}

template <typename T>
std::uint64_t load_relaxed(T& field) {
    return static_cast<std::uint64_t>(std::atomic_ref<T>(field).load(std::memory_order_relaxed));
}

void add_gate_name(bpf_map* map, const std::string& name) {
    char key[MG_GATE_NAME_LEN] = {};
    std::strncpy(key, name.c_str(), sizeof(key) - 1);
    std::uint8_t present = 1;
    if (bpf_map__update_elem(map, key, sizeof(key), &present, sizeof(present), BPF_ANY))
        throw TrackerError(fmt::format("gate list is full: cannot add '{}'", name));
}

}  // namespace

std::string diagnose_bpf_failure(int error) {
    if (access(kernel_btf, R_OK) != 0)
        return fmt::format(
            "this kernel has no BTF ({} missing): use a kernel built with "
            "CONFIG_DEBUG_INFO_BTF=y",
            kernel_btf);
    if (!has_bpf_privilege())
        return "no permission to load BPF programs: run memgov as root (sudo memgov …), give it "
               "CAP_BPF and CAP_PERFMON (sudo setcap cap_bpf,cap_perfmon+ep $(which memgov)), or "
               "poll /proc instead (--backend=procfs)";
    if (error == EPERM || error == EACCES)
        return "the kernel refused memgov's BPF programs (a security module or "
               "kernel.unprivileged_bpf_disabled?): run `memgov check -v` for libbpf's details";
    if (error == ENOENT || error == ESRCH)
        return "a tracepoint or kfunc memgov needs is missing from this kernel (Linux 6.13 or "
               "newer is needed): run `memgov check -v` for details";
    return {};
}

std::unique_ptr<BpfTracker> BpfTracker::open(const TrackerOptions& options) {
    verbose_libbpf = options.verbose_libbpf;
    libbpf_set_print(print_libbpf);

    auto fail = [](const char* step, int error) -> TrackerError {
        std::string why = diagnose_bpf_failure(error);
        if (why.empty()) why = fmt::format("{} failed: {}", step, std::strerror(error));
        return TrackerError(why);
    };

    // The programs report pids as memgov's own pid namespace numbers them (a container's
    // included): identified by its inode, which any /proc shows for /proc/self/ns/pid.
    struct stat pid_namespace {};
    if (stat("/proc/self/ns/pid", &pid_namespace) != 0)
        throw TrackerError(
            fmt::format("cannot tell which pid namespace memgov runs in (/proc/self/ns/pid: {}): "
                        "mount /proc in it",
                        std::strerror(errno)));
    // Keys need a job's working directory from /proc, and the BPF programs number processes as
    // memgov's namespace does: a /proc of another pid namespace would name other processes.
    char self[32] = {};
    if (readlink("/proc/self", self, sizeof self - 1) > 0 && std::atoi(self) != getpid())
        throw TrackerError(
            fmt::format("memgov runs in a pid namespace whose /proc is not its own (/proc/self is pid "
                        "{}, memgov is pid {}): mount /proc in it (unshare --mount-proc)",
                        self, getpid()));
    std::unique_ptr<BpfTracker> tracker(new BpfTracker());
    tracker->skeleton_ = memgov_bpf__open();
    if (!tracker->skeleton_) throw fail("opening the BPF object", errno);
    auto* skel = tracker->skeleton_;

    skel->rodata->controller_tgid = static_cast<__u32>(getpid());
    skel->rodata->pause_job_roots = options.pause_job_roots ? 1 : 0;
    skel->rodata->controller_uid_only = options.signals_as ? 1 : 0;
    skel->rodata->controller_uid = static_cast<__u32>(options.signals_as.value_or(0));
    skel->rodata->page_size = static_cast<__u64>(sysconf(_SC_PAGESIZE));
    skel->rodata->pidns_inum = static_cast<__u32>(pid_namespace.st_ino);
    bpf_map__set_max_entries(skel->maps.procs, options.max_procs);
    bpf_map__set_max_entries(skel->maps.held, options.max_procs);
    bpf_map__set_max_entries(skel->maps.jobs, options.max_jobs);

    if (int err = memgov_bpf__load(skel)) throw fail("loading the BPF programs", -err);
    for (const auto& name : options.gate_names) add_gate_name(skel->maps.gate_names, name);
    if (int err = memgov_bpf__attach(skel)) throw fail("attaching the BPF programs", -err);

    tracker->ring_ = ring_buffer__new(bpf_map__fd(skel->maps.events), &BpfTracker::on_record, tracker.get(), nullptr);
    if (!tracker->ring_) throw fail("opening the ring buffer", errno);
    return tracker;
}

BpfTracker::~BpfTracker() {
    if (skeleton_) resume_all_held();
    ring_buffer__free(ring_);
    memgov_bpf__destroy(skeleton_);
}

void BpfTracker::for_each_held(const std::function<void(pid_t)>& fn) const {
    __u32 key = 0;
    __u32 next = 0;
    __u32* previous = nullptr;
    while (bpf_map__get_next_key(skeleton_->maps.held, previous, &next, sizeof(next)) == 0) {
        fn(static_cast<pid_t>(next));
        key = next;
        previous = &key;
    }
}

void BpfTracker::for_each_process(const std::function<void(pid_t, const mg_proc&)>& fn) const {
    __u32 key = 0;
    __u32 next = 0;
    __u32* previous = nullptr;
    while (bpf_map__get_next_key(skeleton_->maps.procs, previous, &next, sizeof(next)) == 0) {
        mg_proc proc{};
        if (bpf_map__lookup_elem(skeleton_->maps.procs, &next, sizeof(next), &proc, sizeof(proc), 0) == 0)
            fn(static_cast<pid_t>(next), proc);
        key = next;
        previous = &key;
    }
}

void BpfTracker::resume_all_held() {
    for_each_held([](pid_t pid) { kill(pid, SIGCONT); });
}

void BpfTracker::restop_held() {
    for_each_held([](pid_t pid) { kill(pid, SIGSTOP); });
}

void BpfTracker::signal_all(int signo) {
    for_each_process([signo](pid_t pid, const mg_proc&) { kill(pid, signo); });
}

void BpfTracker::track(pid_t pid) {
    __u32 key = static_cast<__u32>(pid);
    mg_proc proc{};
    proc.ppid = static_cast<__u32>(getpid());
    if (bpf_map__update_elem(skeleton_->maps.procs, &key, sizeof(key), &proc, sizeof(proc), BPF_ANY))
        throw TrackerError(fmt::format("cannot track pid {}: {}", pid, std::strerror(errno)));
    auto& totals = skeleton_->bss->totals;
    std::atomic_ref<__u64>(totals.procs_live).fetch_add(1);
    std::atomic_ref<__u64>(totals.procs_seen).fetch_add(1);
}

int BpfTracker::on_record(void* self, void* data, std::size_t size) {
    auto* tracker = static_cast<BpfTracker*>(self);
    auto event = decode_event({static_cast<const std::byte*>(data), size});
    if (!event) {
        ++tracker->undecodable_;
        return 0;
    }
    (*tracker->handler_)(*event);
    return 0;
}

int BpfTracker::event_fd() const { return ring_buffer__epoll_fd(ring_); }

int BpfTracker::poll(std::chrono::milliseconds timeout, const EventHandler& handler) {
    handler_ = &handler;
    int count = ring_buffer__poll(ring_, static_cast<int>(timeout.count()));
    handler_ = nullptr;
    if (count == -EINTR) return 0;
    if (count < 0) throw TrackerError(fmt::format("ring buffer poll failed: {}", std::strerror(-count)));
    return count;
}

void BpfTracker::resume(pid_t pid) {
    // Continue first, forget second: a crash in between costs a spare SIGCONT, never a stuck job.
    kill(pid, SIGCONT);
    __u32 key = static_cast<__u32>(pid);
    bpf_map__delete_elem(skeleton_->maps.held, &key, sizeof(key), 0);
}

bool BpfTracker::stop_job(pid_t job) {
    bool stopped = false;
    for (pid_t pid : hold_job(job, getpid())) {
        if (kill(pid, SIGSTOP) == 0)
            stopped = true;
        else
            release(pid);  // another user's now (a setuid step): out of the guard
    }
    return stopped;
}

std::vector<pid_t> BpfTracker::hold_job(pid_t job, pid_t owner) {
    std::vector<pid_t> entered;
    for_each_process([&](pid_t pid, const mg_proc& proc) {
        if (static_cast<pid_t>(proc.job) != job || !proc.host_tgid) return;
        __u32 key = static_cast<__u32>(pid);
        mg_held entry{.host_tgid = proc.host_tgid, .owner = static_cast<__u32>(owner)};
        // Without a guard entry a stop could outlive its owner: no entry, no stop.
        if (bpf_map__update_elem(skeleton_->maps.held, &key, sizeof(key), &entry, sizeof(entry), BPF_ANY) == 0)
            entered.push_back(pid);
    });
    return entered;
}

void BpfTracker::release(pid_t pid) {
    __u32 key = static_cast<__u32>(pid);
    bpf_map__delete_elem(skeleton_->maps.held, &key, sizeof(key), 0);
}

std::optional<pid_t> BpfTracker::held_by(pid_t pid) const {
    __u32 key = static_cast<__u32>(pid);
    mg_held entry{};
    if (bpf_map__lookup_elem(skeleton_->maps.held, &key, sizeof(key), &entry, sizeof(entry), 0)) return std::nullopt;
    return static_cast<pid_t>(entry.owner);
}

void BpfTracker::track_build(pid_t root, pid_t build, const BuildClient& client, bool gate) {
    __u32 key = static_cast<__u32>(build);
    __u32 owner_key = static_cast<__u32>(client.pid);
    __u32 root_key = static_cast<__u32>(root);
    const ClientNamespace& pid_namespace = client.pid_namespace;
    mg_build value{.owner = owner_key,
                   .gate = gate ? 1u : 0u,
                   .pidns_level = pid_namespace.level,
                   .owner_uid = static_cast<__u32>(client.uid),
                   .procs_live = 1,
                   .procs_seen = 1};
    mg_proc proc{};
    proc.ppid = owner_key;
    proc.build = key;
    if (pid_namespace.level) {
        proc.ns_pid = static_cast<__u32>(pid_namespace.root);
        proc.ns_ppid = static_cast<__u32>(pid_namespace.owner);
    }
    // Each entry is new (BPF_NOEXIST): a failure undoes only what this call inserted.
    auto insert = [](bpf_map* map, const void* map_key, const void* map_value, std::size_t size) {
        return bpf_map__update_elem(map, map_key, sizeof(__u32), map_value, size, BPF_NOEXIST) == 0;
    };
    if (!insert(skeleton_->maps.builds, &key, &value, sizeof(value)))
        throw TrackerError(fmt::format("cannot follow another build: {}", std::strerror(errno)));
    if (!insert(skeleton_->maps.owners, &owner_key, &key, sizeof(key))) {
        int error = errno;
        bpf_map__delete_elem(skeleton_->maps.builds, &key, sizeof(key), 0);
        throw TrackerError(fmt::format("pid {} has a build followed already ({})", client.pid, std::strerror(error)));
    }
    if (!insert(skeleton_->maps.procs, &root_key, &proc, sizeof(proc))) {
        int error = errno;
        forget_build(build, client.pid);
        throw TrackerError(fmt::format("cannot follow pid {}: {}", root, std::strerror(error)));
    }
}

void BpfTracker::forget_build(pid_t build, pid_t owner) {
    __u32 key = static_cast<__u32>(build);
    __u32 owner_key = static_cast<__u32>(owner);
    bpf_map__delete_elem(skeleton_->maps.builds, &key, sizeof(key), 0);
    bpf_map__delete_elem(skeleton_->maps.owners, &owner_key, sizeof(owner_key), 0);
}

pid_t BpfTracker::pid_for_client(pid_t pid) const {
    __u32 key = static_cast<__u32>(pid);
    mg_proc proc{};
    if (bpf_map__lookup_elem(skeleton_->maps.procs, &key, sizeof(key), &proc, sizeof(proc), 0)) return 0;
    return static_cast<pid_t>(proc.ns_pid);
}

std::optional<pid_t> BpfTracker::build_of_job(pid_t job) const {
    __u32 key = static_cast<__u32>(job);
    mg_job value{};
    if (bpf_map__lookup_elem(skeleton_->maps.jobs, &key, sizeof(key), &value, sizeof(value), 0)) return std::nullopt;
    return static_cast<pid_t>(value.build);
}

std::vector<pid_t> BpfTracker::processes(pid_t build, std::optional<pid_t> job) const {
    std::vector<pid_t> found;
    for_each_process([&](pid_t pid, const mg_proc& proc) {
        if (static_cast<pid_t>(proc.build) == build && (!job || static_cast<pid_t>(proc.job) == *job))
            found.push_back(pid);
    });
    return found;
}

std::optional<TrackerTotals> BpfTracker::build_totals(pid_t build) const {
    __u32 key = static_cast<__u32>(build);
    mg_build value{};
    if (bpf_map__lookup_elem(skeleton_->maps.builds, &key, sizeof(key), &value, sizeof(value), 0)) return std::nullopt;
    TrackerTotals global = totals();
    return TrackerTotals{.rss_bytes = value.rss_bytes > 0 ? static_cast<std::uint64_t>(value.rss_bytes) : 0,
                         .peak_bytes = value.peak_bytes,
                         .procs_live = value.procs_live,
                         .procs_seen = value.procs_seen,
                         .execs = value.execs,
                         .events_dropped = global.events_dropped,  // the ring buffer is shared
                         .procs_map_full = global.procs_map_full,
                         .jobs_map_full = global.jobs_map_full,
                         .oom_kills = value.oom_kills,
                         .undecodable_records = global.undecodable_records};
}

void BpfTracker::resume_job(pid_t job) {
    std::vector<pid_t> members;
    for_each_process([&](pid_t pid, const mg_proc& proc) {
        if (static_cast<pid_t>(proc.job) == job) members.push_back(pid);
    });
    for (pid_t pid : members) resume(pid);
}

// The grant lives in the program's mmapped .bss: no syscall either way.
void BpfTracker::grant(std::int64_t jobs) { __atomic_store_n(&skeleton_->bss->grant.jobs, jobs, __ATOMIC_SEQ_CST); }

std::uint64_t BpfTracker::take_back_grant() {
    __atomic_exchange_n(&skeleton_->bss->grant.jobs, 0, __ATOMIC_SEQ_CST);
    return __atomic_load_n(&skeleton_->bss->grant.spent, __ATOMIC_SEQ_CST);
}

std::optional<JobUsage> BpfTracker::job_usage(pid_t job) const {
    __u32 key = static_cast<__u32>(job);
    mg_job value{};
    if (bpf_map__lookup_elem(skeleton_->maps.jobs, &key, sizeof(key), &value, sizeof(value), 0)) return std::nullopt;
    return JobUsage{value.rss_bytes > 0 ? static_cast<std::uint64_t>(value.rss_bytes) : 0, value.peak_bytes,
                    value.nprocs};
}

TrackerTotals BpfTracker::totals() const {
    auto& raw = skeleton_->bss->totals;
    std::int64_t rss = static_cast<std::int64_t>(load_relaxed(raw.rss_bytes));
    return TrackerTotals{
        .rss_bytes = rss > 0 ? static_cast<std::uint64_t>(rss) : 0,
        .peak_bytes = load_relaxed(raw.peak_bytes),
        .procs_live = load_relaxed(raw.procs_live),
        .procs_seen = load_relaxed(raw.procs_seen),
        .execs = load_relaxed(raw.execs),
        .events_dropped = load_relaxed(raw.events_dropped),
        .procs_map_full = load_relaxed(raw.procs_map_full),
        .jobs_map_full = load_relaxed(raw.jobs_map_full),
        .oom_kills = load_relaxed(raw.oom_kills),
        .undecodable_records = undecodable_,
    };
}

}  // namespace memgov
