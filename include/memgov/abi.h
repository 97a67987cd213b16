/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * The one contract between bpf/memgov.bpf.c and the C++ controller: map
 * values, ring-buffer records and limits. Plain C with __u32/__u64 only, so
 * both clang -target bpf (with vmlinux.h) and g++ (with <linux/types.h>)
 * read it identically.
 */
#ifndef MEMGOV_ABI_H
#define MEMGOV_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define MG_COMM_LEN 16
/* Long enough for cross-compiler driver names such as x86_64-linux-gnu-g++-12. */
#define MG_GATE_NAME_LEN 64
#define MG_FILENAME_LEN 256
/* argv beyond this is cut and flagged MG_EXEC_ARGV_TRUNCATED. */
#define MG_ARGV_MAX 30720 /* header + argv must fit a per-CPU map value (32 KiB) */
/* Builds one daemon follows at once. */
#define MG_MAX_BUILDS 1024
/* The deepest pid namespace level the kernel nests (MAX_PID_NS_LEVEL, linux/pid_namespace.h). */
#define MG_MAX_PID_NS_LEVEL 32

/* Record kinds in the ring buffer; every record starts with struct mg_event_header. */
enum mg_event_kind {
	MG_EVENT_EXEC = 1,
	MG_EVENT_EXIT = 2,
	MG_EVENT_OOM_KILL = 3,
};

enum mg_exec_flags {
	MG_EXEC_JOB_ROOT = 1u << 0,	   /* program is in the gate list, no job ancestor */
	MG_EXEC_WAITING = 1u << 1,	   /* SIGSTOPped; waits for the controller */
	MG_EXEC_ARGV_TRUNCATED = 1u << 2,  /* argv longer than MG_ARGV_MAX */
	MG_EXEC_ARGV_UNREADABLE = 1u << 3, /* bpf_probe_read_user failed */
	MG_EXEC_GRANTED = 1u << 4,	   /* started under the controller's grant: never stopped */
	MG_EXEC_OTHER_USER = 1u << 5,	   /* a daemon client may not signal it: never stopped */
};

struct mg_event_header {
	__u32 kind;
	__u32 pid;	    /* tgid, in memgov's pid namespace (as every pid here) */
	__u64 timestamp_ns; /* bpf_ktime_get_ns(), CLOCK_MONOTONIC */
	__u32 build;	    /* the daemon's build it belongs to (see mg_build); 0: memgov's own */
	__u32 ns_pid;	    /* pid in the build's client's pid namespace (mg_build); 0: the same */
};

/* What the kernel kept for a process's threads (each thread's figures added as it exits): read
 * once per thread, no per-event hook. The delays stay 0 unless delay accounting is on
 * (sysctl kernel.task_delayacct=1). */
struct mg_task_costs {
	__u64 cpu_ns;		/* se.sum_exec_runtime */
	__u64 run_delay_ns;	/* sched_info.run_delay: runnable, waiting for a CPU */
	__u64 io_delay_ns;	/* delays->blkio_delay: waiting for block I/O */
	__u64 reclaim_delay_ns; /* delays->freepages_delay: in direct reclaim */
	__u64 major_faults;	/* maj_flt */
};

struct mg_exec_event {
	struct mg_event_header header;
	__u32 ppid;
	__u32 job; /* job id = pid of the job's root; 0 = glue, not in a job */
	__u32 flags;
	__u32 argv_len; /* bytes of argv[] that follow, NUL-separated */
	__u32 ns_ppid;	/* ppid and job in the build's client's namespace, as header.ns_pid */
	__u32 ns_job;
	char comm[MG_COMM_LEN];
	/* bprm->filename as exec'd; argv_len bytes of argv, NUL-separated, follow the struct */
	char filename[MG_FILENAME_LEN];
};

struct mg_exit_event {
	struct mg_event_header header;
	__u32 ppid;
	__u32 job;
	__u32 exit_code; /* wait(2) status word: exit status << 8 | terminating signal */
	__u32 pad;
	__u32 ns_ppid; /* as in mg_exec_event */
	__u32 ns_job;
	__u64 peak_rss_bytes; /* this process, all its images (fork → exec → exit) */
	__u64 job_peak_bytes; /* peak of the job's summed RSS so far; 0 if job == 0 */
	char comm[MG_COMM_LEN];
	struct mg_task_costs costs; /* the process's, all its threads */
};

struct mg_oom_event {
	struct mg_event_header header;
	__u32 job;
	__u32 ns_job;
	__u64 rss_bytes;
	__u64 peak_rss_bytes;
	char comm[MG_COMM_LEN];
};

/* procs map: tgid -> mg_proc. */
struct mg_proc {
	__u32 ppid;
	__u32 job;
	__u64 rss_bytes;
	__u64 peak_rss_bytes;
	__u32 host_tgid; /* its tgid in the initial pid namespace (0 until it forks or execs) */
	__u32 build;	 /* the daemon's build it belongs to (inherited at fork); 0: memgov's own */
	/* Its pid, ppid and job in its build's client's pid namespace (0: the daemon's own). */
	__u32 ns_pid;
	__u32 ns_ppid;
	__u32 ns_job;
	__u32 pad;
	struct mg_task_costs costs; /* of its threads that have exited */
};

/* jobs map: job id -> mg_job. Sums over the job's live processes. */
struct mg_job {
	__s64 rss_bytes;
	__u64 peak_bytes;
	__u32 nprocs;
	__u32 build; /* as mg_proc's */
};

/* held map: tgid (memgov's namespace) -> mg_held. A pid is entered before it is stopped, and
 * the crash guard continues it when its owner exits: memgov itself (controller_tgid), or the
 * daemon's client that governs its build. */
struct mg_held {
	__u32 host_tgid; /* what the guard signals */
	__u32 owner;	 /* tgid of the process that continues it */
};

/* builds map: build id (its root's tgid) -> mg_build. A build a memgov daemon follows for a
 * client (`memgov daemon`): the client decides and signals its own processes, the daemon only
 * watches. owners map: client tgid -> build id, for the guard. */
struct mg_build {
	__u32 owner; /* the client's tgid */
	__u32 gate;  /* 1: its job roots are stopped at exec */
	/* The level of the client's pid namespace when it is not the daemon's (a container; the
	 * daemon's is the initial one, level 0), so that the records give the client its own pids.
	 * Every process of the build descends from the root, in that namespace or below it: the
	 * namespace at that level is the client's for each of them. */
	__u32 pidns_level;
	/* The client's uid: a job root it may not signal (a setuid step that became another
	 * user: `sudo make install`) is not stopped, as the client could not continue it. */
	__u32 owner_uid;
	__s64 rss_bytes;
	__u64 peak_bytes;
	__u64 procs_live;
	__u64 procs_seen;
	__u64 execs;
	__u64 oom_kills;
};

/* Build-wide counters, kept in the program's .bss and read by mmap. */
struct mg_totals {
	__s64 rss_bytes;  /* sum over all tracked processes now */
	__u64 peak_bytes; /* peak of that sum */
	__u64 procs_live;
	__u64 procs_seen;
	__u64 execs;
	__u64 events_dropped; /* ring buffer full: a record was lost */
	__u64 procs_map_full; /* a descendant could not be tracked */
	__u64 jobs_map_full;  /* a gated exec could not become a job */
	__u64 oom_kills;
};

/* Gated execs the kernel may let start without stopping them, in the program's .bss. The
 * controller grants N when memory holds N more of the largest job it knows; each granted exec
 * spends one. To regrant, the controller first exchanges `jobs` with 0 (nothing can be
 * spent meanwhile), then reads `spent` to know which granted execs it has not heard of yet. */
struct mg_grant {
	__s64 jobs;
	__u64 spent;
};

#endif /* MEMGOV_ABI_H */
