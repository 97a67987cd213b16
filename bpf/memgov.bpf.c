// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * memgov's kernel half: follows every descendant of the build, keeps each
 * process's and each job's current and peak RSS in maps, reports exec/exit/OOM
 * through a ring buffer, stops gated execs until the controller admits them,
 * and resumes every stopped pid if the controller dies.
 * Kernel facts this relies on are in docs/DESIGN.md §4.1.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "memgov/abi.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define SIGCONT 18
#define SIGSTOP 19
#define PEAK_CAS_TRIES 8
#define PROC_PID_INIT_INO 0xEFFFFFFCU /* include/linux/proc_ns.h */

/* Settings, fixed at load time by the controller. */
const volatile __u32 controller_tgid = 0;
const volatile __u32 pause_job_roots = 0;
/* Set when memgov may signal only its own user's processes (no CAP_KILL): its uid. */
const volatile __u32 controller_uid_only = 0;
const volatile __u32 controller_uid = 0;
const volatile __u64 page_size = 4096;
/* memgov's pid namespace, by inode: every pid in the maps and records is the one memgov sees
 * there, so that it follows and signals the right processes from inside a container. */
const volatile __u32 pidns_inum = PROC_PID_INIT_INO;
/* That namespace's level among nested ones, found on first use (level + 1; 0: not yet). */
__u32 pidns_level_found = 0;

/* Set when the controller has exited: nobody would continue a stop of its build any more. */
__u32 controller_gone = 0;

struct mg_totals totals = {};
struct mg_grant grant = {};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768); /* resized by the controller before load */
	__type(key, __u32);
	__type(value, struct mg_proc);
} procs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, struct mg_job);
} jobs SEC(".maps");

struct gate_name {
	char name[MG_GATE_NAME_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct gate_name);
	__type(value, __u8);
} gate_names SEC(".maps");

/* The pids memgov stopped, each with its host tgid and owner: the crash guard SIGCONTs them. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__type(key, __u32);
	__type(value, struct mg_held);
} held SEC(".maps");

/* The builds a daemon follows for its clients, and each client's build (abi.h). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MG_MAX_BUILDS);
	__type(key, __u32);
	__type(value, struct mg_build);
} builds SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MG_MAX_BUILDS);
	__type(key, __u32);
	__type(value, __u32);
} owners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

struct exec_record {
	struct mg_exec_event event;
	char argv[MG_ARGV_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct exec_record);
} exec_scratch SEC(".maps");

struct gate_scratch_value {
	struct gate_name key;
	char filename[MG_FILENAME_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gate_scratch_value);
} gate_scratch SEC(".maps");

extern struct task_struct *bpf_task_from_pid(s32 pid) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;
extern int bpf_send_signal_task(struct task_struct *task, int sig, enum pid_type type,
				__u64 value) __ksym;

/* A pid's number and namespace at `level` (not above the pid's own); false when unreadable. */
static __always_inline bool upid_at(struct pid *pid, __u32 level, struct upid *upid)
{
	return bpf_probe_read_kernel(upid, sizeof(*upid),
				     &pid->numbers[level & (MG_MAX_PID_NS_LEVEL - 1)]) == 0;
}

/* A pid's number in memgov's namespace if `level` is that namespace's level, else 0. */
static __always_inline __u32 nr_at(struct pid *pid, __u32 level)
{
	struct upid upid = {};
	if (!upid_at(pid, level, &upid))
		return 0;
	return BPF_CORE_READ(upid.ns, ns.inum) == pidns_inum ? upid.nr : 0;
}

/* A process's tgid as memgov's pid namespace sees it; 0 when it is not in that namespace or
 * below it (then it cannot be in the build). */
static __always_inline __u32 tgid_seen(struct task_struct *task)
{
	if (pidns_inum == PROC_PID_INIT_INO)
		return task->tgid; /* the kernel's own numbers: no lookups (a constant at load) */
	struct pid *pid = BPF_CORE_READ(task, group_leader, thread_pid);
	if (!pid)
		return 0;
	__u32 level = BPF_CORE_READ(pid, level);
	__u32 found = pidns_level_found;
	if (found)
		return found - 1 <= level ? nr_at(pid, found - 1) : 0;
	for (__u32 i = 0; i < MG_MAX_PID_NS_LEVEL && i <= level; i++) {
		__u32 nr = nr_at(pid, i);
		if (nr) {
			pidns_level_found = i + 1;
			return nr;
		}
	}
	return 0;
}

/* A process's tgid in its build's client's pid namespace (mg_build.pidns_level); 0 when the
 * build's client shares the daemon's namespace. */
static __always_inline __u32 tgid_in_build_ns(struct task_struct *task, struct mg_build *build)
{
	if (!build || !build->pidns_level || build->pidns_level >= MG_MAX_PID_NS_LEVEL)
		return 0;
	struct pid *pid = BPF_CORE_READ(task, group_leader, thread_pid);
	__u32 level = build->pidns_level;
	if (!pid || BPF_CORE_READ(pid, level) < level)
		return 0;
	struct upid upid = {};
	return upid_at(pid, level, &upid) ? upid.nr : 0;
}

static __always_inline void raise_peak(__u64 *peak, __u64 value)
{
	for (int i = 0; i < PEAK_CAS_TRIES; i++) {
		__u64 seen = *peak;
		if (value <= seen)
			return;
		if (__sync_val_compare_and_swap(peak, seen, value) == seen)
			return;
	}
}

static __always_inline __u64 mm_rss_bytes(struct mm_struct *mm)
{
	if (!mm)
		return 0;
	/* File + anon + shmem, the sum behind the kernel's own hiwater_rss and ru_maxrss. */
	__s64 pages = mm->rss_stat[MM_FILEPAGES].count + mm->rss_stat[MM_ANONPAGES].count +
		      mm->rss_stat[MM_SHMEMPAGES].count;
	return pages > 0 ? (__u64)pages * page_size : 0;
}

static __always_inline struct mg_build *build_of(__u32 build_id)
{
	return build_id ? bpf_map_lookup_elem(&builds, &build_id) : NULL;
}

/* Whether whoever continues the stops of `build_id` has exited: the controller for memgov's
 * own build, the daemon's client for one of its builds (whose entry the guard deletes). */
static __always_inline bool owner_gone(__u32 build_id)
{
	if (!build_id)
		return __sync_fetch_and_add(&controller_gone, 0) != 0;
	return !bpf_map_lookup_elem(&builds, &build_id);
}

/* Whether a client of uid `uid` may signal `task`, by the kernel's rule for a sender without
 * CAP_KILL (kill_ok_by_cred in kernel/signal.c): the task's real or saved uid is the
 * sender's. (SIGCONT within the sender's session is allowed too, but a build step may leave
 * it with setsid; and no SIGSTOP at an emergency would reach such a task.) */
static __always_inline bool client_may_signal(__u32 uid, struct task_struct *task)
{
	const struct cred *cred = BPF_CORE_READ(task, real_cred);
	return uid == 0 || BPF_CORE_READ(cred, uid.val) == uid ||
	       BPF_CORE_READ(cred, suid.val) == uid;
}

/* Sets a process's RSS and carries the change into its job's sum and the build's sum. */
static __always_inline void account_rss(struct mg_proc *proc, __u64 rss)
{
	__u64 old = __sync_lock_test_and_set(&proc->rss_bytes, rss);
	__s64 delta = (__s64)rss - (__s64)old;

	raise_peak(&proc->peak_rss_bytes, rss);
	if (delta == 0)
		return;
	__u32 job_id = proc->job;
	if (job_id) {
		struct mg_job *job = bpf_map_lookup_elem(&jobs, &job_id);
		if (job) {
			__s64 sum = __sync_add_and_fetch(&job->rss_bytes, delta);
			if (sum > 0)
				raise_peak(&job->peak_bytes, sum);
		}
	}
	__s64 total = __sync_add_and_fetch(&totals.rss_bytes, delta);
	if (total > 0)
		raise_peak(&totals.peak_bytes, total);
	struct mg_build *build = build_of(proc->build);
	if (build) {
		__s64 sum = __sync_add_and_fetch(&build->rss_bytes, delta);
		if (sum > 0)
			raise_peak(&build->peak_bytes, sum);
	}
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
	if (child->pid != child->tgid)
		return 0; /* a new thread: its memory is its process's */
	__u32 parent_tgid = tgid_seen(parent);
	struct mg_proc *parent_proc = bpf_map_lookup_elem(&procs, &parent_tgid);
	if (!parent_proc)
		return 0;
	__u32 tgid = tgid_seen(child);
	if (!tgid)
		return 0;

	struct mg_proc fresh = { .ppid = parent_tgid,
				 .job = parent_proc->job,
				 .host_tgid = child->tgid,
				 .build = parent_proc->build,
				 .ns_pid = tgid_in_build_ns(child, build_of(parent_proc->build)),
				 .ns_ppid = parent_proc->ns_pid,
				 .ns_job = parent_proc->ns_job };
	if (bpf_map_update_elem(&procs, &tgid, &fresh, BPF_NOEXIST)) {
		__sync_fetch_and_add(&totals.procs_map_full, 1);
		return 0;
	}
	struct mg_proc *proc = bpf_map_lookup_elem(&procs, &tgid);
	if (!proc)
		return 0;
	if (fresh.job) {
		struct mg_job *job = bpf_map_lookup_elem(&jobs, &fresh.job);
		if (job)
			__sync_fetch_and_add(&job->nprocs, 1);
	}
	__sync_fetch_and_add(&totals.procs_live, 1);
	__sync_fetch_and_add(&totals.procs_seen, 1);
	struct mg_build *build = build_of(fresh.build);
	if (build) {
		__sync_fetch_and_add(&build->procs_live, 1);
		__sync_fetch_and_add(&build->procs_seen, 1);
	}
	/* A CLONE_VM child (vfork, posix_spawn) shares its parent's pages: count them once. */
	struct mm_struct *mm = child->mm;
	if (mm && mm != parent->mm)
		account_rss(proc, mm_rss_bytes(mm));
	return 0;
}

SEC("tp_btf/rss_stat")
int BPF_PROG(on_rss_stat, struct mm_struct *mm, int member)
{
	struct task_struct *owner = mm->owner;
	if (!owner)
		return 0; /* teardown of an mm nobody owns any more */
	__u32 tgid = tgid_seen(owner);
	struct mg_proc *proc = bpf_map_lookup_elem(&procs, &tgid);
	if (!proc)
		return 0;
	/* An image being built by exec or torn down after it is not the process's memory. */
	if (owner->mm != mm)
		return 0;
	account_rss(proc, mm_rss_bytes(mm));
	return 0;
}

struct basename_search {
	const char *path;
	__u32 start;
};

static long note_slash(__u32 i, void *data)
{
	struct basename_search *search = data;
	char c = search->path[i & (MG_FILENAME_LEN - 1)];
	if (c == '\0')
		return 1;
	if (c == '/')
		search->start = i + 1;
	return 0;
}

/* True when the basename of the exec'd file is in the gate list. */
static __always_inline bool is_gated(const char *filename)
{
	__u32 zero = 0;
	struct gate_scratch_value *scratch = bpf_map_lookup_elem(&gate_scratch, &zero);
	if (!scratch)
		return false;
	long len =
		bpf_probe_read_kernel_str(scratch->filename, sizeof(scratch->filename), filename);
	if (len <= 0)
		return false;

	/* bpf_loop keeps the verifier from exploring every position of the last '/'. */
	struct basename_search search = { .path = scratch->filename, .start = 0 };
	bpf_loop(MG_FILENAME_LEN, note_slash, &search, 0);
	__builtin_memset(&scratch->key, 0, sizeof(scratch->key));
	for (__u32 i = 0; i < MG_GATE_NAME_LEN; i++) {
		__u32 at = search.start + i;
		if (at >= MG_FILENAME_LEN)
			break;
		char c = scratch->filename[at & (MG_FILENAME_LEN - 1)];
		if (c == '\0')
			break;
		scratch->key.name[i] = c;
	}
	return bpf_map_lookup_elem(&gate_names, &scratch->key) != NULL;
}

/* Spends one of the controller's grant (struct mg_grant) if any is left: a compare-and-swap,
 * never a decrement to undo, since the controller may take the grant back at any instant.
 * `spent` rises before the attempt (and falls back after a failed one), so a controller
 * that reads it after taking the grant back can over-count what it has not heard of, never
 * under-count. */
static __always_inline bool take_grant(void)
{
	__sync_fetch_and_add(&grant.spent, 1);
	for (int attempt = 0; attempt < 8; attempt++) {
		__s64 left = *(volatile __s64 *)&grant.jobs;
		if (left <= 0)
			break;
		if (__sync_val_compare_and_swap(&grant.jobs, left, left - 1) == left)
			return true;
	}
	__sync_fetch_and_add(&grant.spent, -1);
	return false; /* none left, or contended: the controller decides */
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 tgid = tgid_seen(task);
	struct mg_proc *proc = bpf_map_lookup_elem(&procs, &tgid);
	if (!proc)
		return 0;
	__sync_fetch_and_add(&totals.execs, 1);
	proc->host_tgid = task->tgid; /* the build's root was registered by memgov, without it */
	struct mg_build *build = build_of(proc->build);
	if (build)
		__sync_fetch_and_add(&build->execs, 1);
	/* memgov's own build follows its settings; a daemon's client's build, its own. A process
	 * its client has no number for could never be continued by it: not stopped. */
	bool gate = build ? build->gate && (!build->pidns_level || proc->ns_pid) : pause_job_roots;
	__u32 owner = build ? build->owner : controller_tgid;
	bool other_user = build ? !client_may_signal(build->owner_uid, task)
				: controller_uid_only && !client_may_signal(controller_uid, task);

	struct mm_struct *mm = task->mm;
	account_rss(proc, mm_rss_bytes(mm)); /* the new image replaces the old one */
	if (proc->build && !build)
		return 0; /* its client is gone: nobody would continue a stop, nor read a record */

	__u32 flags = 0;
	if (!proc->job && is_gated(bprm->filename)) {
		/* Seeded before proc->job is published: from then on rss_stat adds deltas, so
		 * an event racing with this can only be missed, never counted twice. */
		__u64 rss = proc->rss_bytes;
		struct mg_job fresh = { .rss_bytes = (__s64)rss,
					.peak_bytes = rss,
					.nprocs = 1,
					.build = proc->build };
		if (bpf_map_update_elem(&jobs, &tgid, &fresh, BPF_NOEXIST) == 0) {
			proc->job = tgid;
			proc->ns_job = proc->ns_pid;
			flags |= MG_EXEC_JOB_ROOT;
		} else {
			__sync_fetch_and_add(&totals.jobs_map_full, 1);
		}
	}

	/* The grant is memgov's own build's: a daemon's clients are not granted starts. */
	if ((flags & MG_EXEC_JOB_ROOT) && other_user)
		flags |= MG_EXEC_OTHER_USER; /* whatever the gate: the net must not count on
						stopping it */
	if ((flags & MG_EXEC_JOB_ROOT) && gate && !build && take_grant())
		flags |= MG_EXEC_GRANTED;
	else if ((flags & MG_EXEC_JOB_ROOT) && gate && !other_user) {
		/* Recorded before the stop, so the crash guard can always undo it. Queued before
		 * the event is visible, so the controller's SIGCONT can never overtake it. */
		struct mg_held entry = { .host_tgid = task->tgid, .owner = owner };
		if (!owner_gone(proc->build) &&
		    bpf_map_update_elem(&held, &tgid, &entry, BPF_ANY) == 0) {
			bpf_send_signal(SIGSTOP);
			flags |= MG_EXEC_WAITING;
			/* Its owner may have exited since: then its guard may have run before the
			 * entry was there. Whichever comes second continues it (SIGCONT discards
			 * the stop). */
			if (owner_gone(proc->build)) {
				bpf_map_delete_elem(&held, &tgid);
				bpf_send_signal(SIGCONT);
				flags &= ~MG_EXEC_WAITING;
			}
		}
	}

	__u32 zero = 0;
	struct exec_record *record = bpf_map_lookup_elem(&exec_scratch, &zero);
	if (!record)
		return 0;
	struct mg_exec_event *event = &record->event;
	event->header.kind = MG_EVENT_EXEC;
	event->header.pid = tgid;
	event->header.timestamp_ns = bpf_ktime_get_ns();
	event->header.build = proc->build;
	event->header.ns_pid = proc->ns_pid;
	event->ppid = proc->ppid;
	event->job = proc->job;
	event->ns_ppid = proc->ns_ppid;
	event->ns_job = proc->ns_job;
	bpf_get_current_comm(event->comm, sizeof(event->comm));
	bpf_probe_read_kernel_str(event->filename, sizeof(event->filename), bprm->filename);

	__u64 argv_len = 0;
	if (mm) {
		argv_len = mm->arg_end - mm->arg_start;
		if (argv_len > MG_ARGV_MAX) {
			argv_len = MG_ARGV_MAX;
			flags |= MG_EXEC_ARGV_TRUNCATED;
		}
		barrier_var(argv_len); /* keeps the clamp visible to the verifier (clang 14) */
		if (bpf_probe_read_user(record->argv, argv_len, (void *)mm->arg_start)) {
			argv_len = 0;
			flags |= MG_EXEC_ARGV_UNREADABLE;
		}
	}
	event->flags = flags;
	event->argv_len = argv_len;
	__u64 size = sizeof(*event) + argv_len;
	barrier_var(size);
	if (size > sizeof(*record))
		size = sizeof(*record);
	/* A stopped job waits for this record: wake the controller now, whatever its backlog. */
	__u64 wakeup = (flags & MG_EXEC_WAITING) ? BPF_RB_FORCE_WAKEUP : 0;
	if (bpf_ringbuf_output(&events, record, size, wakeup)) {
		__sync_fetch_and_add(&totals.events_dropped, 1);
		/* The controller will never hear of a granted job either: not counted as spent,
		 * it is not waited for forever; it runs ungoverned, as a dropped held one does. */
		if (flags & MG_EXEC_GRANTED)
			__sync_fetch_and_add(&grant.spent, -1);
		if (flags & MG_EXEC_WAITING) {
			/* The controller will never hear of this job: let it run ungoverned rather
			 * than stay stopped. SIGCONT discards the still-pending SIGSTOP. */
			bpf_map_delete_elem(&held, &tgid);
			bpf_send_signal(SIGCONT);
		}
	}
	return 0;
}

/* ctx: the owner whose pids to continue (0: every one). */
static long resume_held_pid(struct bpf_map *map, __u32 *pid, struct mg_held *entry, __u32 *owner)
{
	if (*owner && entry->owner != *owner)
		return 0;
	struct task_struct *task =
		bpf_task_from_pid(entry->host_tgid); /* the initial namespace's */
	if (task) {
		bpf_send_signal_task(task, SIGCONT, PIDTYPE_TGID, 0);
		bpf_task_release(task);
	}
	return 0;
}

/* An exiting thread's share of its process's costs: what the kernel kept for it. */
static __always_inline void add_costs(struct mg_task_costs *costs, struct task_struct *task)
{
	__sync_fetch_and_add(&costs->cpu_ns, task->se.sum_exec_runtime);
	__sync_fetch_and_add(&costs->run_delay_ns, task->sched_info.run_delay);
	__sync_fetch_and_add(&costs->major_faults, task->maj_flt);
	struct task_delay_info *delays = task->delays; /* NULL unless delay accounting is on */
	if (delays) {
		__sync_fetch_and_add(&costs->io_delay_ns, BPF_CORE_READ(delays, blkio_delay));
		__sync_fetch_and_add(&costs->reclaim_delay_ns,
				     BPF_CORE_READ(delays, freepages_delay));
	}
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *task, bool group_dead)
{
	__u32 tgid = tgid_seen(task);
	if (group_dead && tgid == controller_tgid) {
		/* The controller is gone (maybe SIGKILLed): nobody else would resume these, nor
		 * what its build starts from now on (marked first, see on_exec). */
		__sync_fetch_and_add(&controller_gone, 1);
		__u32 everyone = 0;
		bpf_for_each_map_elem(&held, resume_held_pid, &everyone, 0);
		return 0;
	}
	__u32 *client_build = group_dead ? bpf_map_lookup_elem(&owners, &tgid) : NULL;
	if (client_build) {
		/* A daemon's client is gone: what it held, nobody else would resume. Its build is
		 * forgotten first, so that what it starts from now on is not stopped (on_exec). */
		__u32 build_id = *client_build;
		bpf_map_delete_elem(&builds, &build_id);
		bpf_for_each_map_elem(&held, resume_held_pid, &tgid, 0);
		return 0;
	}
	struct mg_proc *proc = bpf_map_lookup_elem(&procs, &tgid);
	if (!proc)
		return 0;
	add_costs(&proc->costs, task);
	if (!group_dead)
		return 0; /* a thread; its process lives on */

	account_rss(proc, 0);
	__u32 job_id = proc->job;
	__u64 job_peak = 0;
	if (job_id) {
		struct mg_job *job = bpf_map_lookup_elem(&jobs, &job_id);
		if (job) {
			job_peak = job->peak_bytes;
			if (__sync_sub_and_fetch(&job->nprocs, 1) == 0)
				bpf_map_delete_elem(&jobs, &job_id);
		}
	}
	__sync_fetch_and_sub(&totals.procs_live, 1);
	struct mg_build *build = build_of(proc->build);
	if (build)
		__sync_fetch_and_sub(&build->procs_live, 1);

	/* A build whose client is gone: nobody reads its records. */
	struct mg_exit_event *event =
		proc->build && !build ? NULL : bpf_ringbuf_reserve(&events, sizeof(*event), 0);
	if (event) {
		event->header.kind = MG_EVENT_EXIT;
		event->header.pid = tgid;
		event->header.timestamp_ns = bpf_ktime_get_ns();
		event->header.build = proc->build;
		event->header.ns_pid = proc->ns_pid;
		event->ppid = proc->ppid;
		event->job = job_id;
		event->exit_code = task->exit_code;
		event->pad = 0;
		event->ns_ppid = proc->ns_ppid;
		event->ns_job = proc->ns_job;
		event->peak_rss_bytes = proc->peak_rss_bytes;
		event->job_peak_bytes = job_peak;
		bpf_probe_read_kernel_str(event->comm, sizeof(event->comm), task->comm);
		event->costs = proc->costs;
		bpf_ringbuf_submit(event, 0);
	} else if (!proc->build || build) {
		__sync_fetch_and_add(&totals.events_dropped, 1);
	}
	bpf_map_delete_elem(&held, &tgid);
	bpf_map_delete_elem(&procs, &tgid);
	return 0;
}

SEC("tp_btf/mark_victim")
int BPF_PROG(on_oom_victim, struct task_struct *task, uid_t uid)
{
	__u32 tgid = tgid_seen(task);
	struct mg_proc *proc = bpf_map_lookup_elem(&procs, &tgid);
	if (!proc)
		return 0;
	__sync_fetch_and_add(&totals.oom_kills, 1);
	struct mg_build *build = build_of(proc->build);
	if (build)
		__sync_fetch_and_add(&build->oom_kills, 1);
	if (proc->build && !build)
		return 0; /* its client is gone */
	struct mg_oom_event *event = bpf_ringbuf_reserve(&events, sizeof(*event), 0);
	if (!event) {
		__sync_fetch_and_add(&totals.events_dropped, 1);
		return 0;
	}
	event->header.kind = MG_EVENT_OOM_KILL;
	event->header.pid = tgid;
	event->header.timestamp_ns = bpf_ktime_get_ns();
	event->header.build = proc->build;
	event->header.ns_pid = proc->ns_pid;
	event->job = proc->job;
	event->ns_job = proc->ns_job;
	event->rss_bytes = proc->rss_bytes;
	event->peak_rss_bytes = proc->peak_rss_bytes;
	bpf_probe_read_kernel_str(event->comm, sizeof(event->comm), task->comm);
	bpf_ringbuf_submit(event, 0);
	return 0;
}
