#!/usr/bin/env python3
"""memgov benchmarks: every claim a ratio measured side by side in one run on one machine.

    sudo tools/bench/bench.py [--quick] [--check] [--out DIR] [memstorm] [robustness] [realproject] [concurrent]
                              [whatif] [accuracy] [overhead] [latency] [scale]

Writes docs/bench/<name>.json (machine-readable) and docs/bench/<name>.md (the table
docs/BENCHMARKS.md shows), and docs/bench/memstorm.svg (memory over time); --out elsewhere.
--check fails (exit 1) when a result that does not depend on timing is wrong: memgov
OOM-killed or failed, plain make not OOM-killed (then the benchmark shows nothing),
BPF peaks off, events dropped.
Needs root (BPF, memory cgroups) and a built tree (tools/build.sh).
"""
import argparse
import json
import math
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# robustness.py and realproject.py `import bench`: run as a script, this module must be that
# one (one OUT, one MEMGOV), not a second copy.
sys.modules.setdefault("bench", sys.modules[__name__])

ROOT = Path(__file__).resolve().parents[2]
# MEMGOV_BUILD_DIR: measure another build tree than build/ (e.g. one built from another commit).
BUILD = Path(os.environ.get("MEMGOV_BUILD_DIR", ROOT / "build"))
MEMGOV = BUILD / "memgov"
MEMHOG = BUILD / "tests" / "memhog"
OUT = ROOT / "docs" / "bench"
MiB = 1 << 20


# ---------------------------------------------------------------- memory cgroup

sys.path.insert(0, str(ROOT / "tools"))
from memcg import Cgroup  # noqa: E402  (tools/memcg.py: one cgroup helper for tests, benchmarks and the demo)


def run_sampled(argv, cgroup, cwd=None, env=None):
    """Runs argv in the cgroup; returns (status, seconds, oom_kills, [(t, bytes)], stdout)."""
    samples = []
    before = cgroup.oom_kills()
    start = time.monotonic()
    proc = subprocess.Popen(cgroup.wrap(argv), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    done = threading.Event()

    def sample():
        while not done.is_set():
            samples.append((time.monotonic() - start, cgroup.usage()))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    out, _ = proc.communicate()
    seconds = time.monotonic() - start
    done.set()
    sampler.join()
    return proc.returncode, seconds, cgroup.oom_kills() - before, samples, out.decode(errors="replace")


def run_limited(argv, limit_bytes, timeout, cwd=None, env=None):
    """run_sampled in a fresh memory cgroup of limit_bytes, killed whole after timeout seconds: at
    its limit a cgroup can thrash for minutes instead of OOM-killing. Returns exit, seconds,
    oom_kills, timed_out, peak_bytes (the kernel's high-water mark where it keeps one) and output."""
    cgroup = Cgroup(limit_bytes, f"memgov-bench-{os.getpid()}")
    fired = threading.Event()

    def expire():
        fired.set()
        cgroup.kill_all()

    timer = threading.Timer(timeout, expire)
    timer.start()
    try:
        status, seconds, ooms, samples, out = run_sampled(argv, cgroup, cwd=cwd, env=env)
        peak = cgroup.peak() or max((b for _, b in samples), default=0)
    finally:
        timer.cancel()
        timer.join()  # a kill under way must not outlive this run
        cgroup.close()
    return {"exit": status, "seconds": seconds, "oom_kills": ooms, "timed_out": fired.is_set(),
            "peak_bytes": peak, "output": out}


# ---------------------------------------------------------------- memstorm

def memstorm_jobs(count, seed=7):
    """Heavy-tailed peaks (log-normal, 30-600 MB), compile-like ramps and holds."""
    rng = random.Random(seed)
    jobs = []
    for i in range(count):
        peak = int(min(600, max(30, rng.lognormvariate(math.log(90), 0.9))))
        ramp = rng.randint(300, 1500)
        hold = rng.randint(100, 700)
        jobs.append({"name": f"j{i:03d}", "mb": peak, "ramp_ms": ramp, "hold_ms": hold})
    return jobs


def job_command(job):
    return f"{MEMHOG} --mb {job['mb']} --ramp-ms {job['ramp_ms']} --hold-ms {job['hold_ms']} > /dev/null"


def job_key(job):
    """The key memgov files the job under (its argv without the program's directory)."""
    return f"memhog --mb {job['mb']} --ramp-ms {job['ramp_ms']} --hold-ms {job['hold_ms']}"


def write_makefile(directory, jobs):
    names = " ".join(j["name"] for j in jobs)
    rules = "".join(f"{j['name']}:\n\t@{job_command(j)}\n" for j in jobs)
    (directory / "Makefile").write_text(f"all: {names}\n{rules}.PHONY: all {names}\n")
    (directory / "jobs.txt").write_text("".join(job_command(j) + "\n" for j in jobs))


def lower_bound(jobs, limit_bytes, slots, durations=None):
    """No schedule that reserves each job's peak for its duration can beat this. Durations:
    the job set's own (ramp + hold), or measured ones (seconds, in job order)."""
    duration = durations or [(j["ramp_ms"] + j["hold_ms"]) / 1000 for j in jobs]
    memory_time = sum(j["mb"] * MiB * d for j, d in zip(jobs, duration)) / limit_bytes
    return max(memory_time, sum(duration) / slots, max(duration))


def cold_rules_estimate(jobs, limit_bytes, slots, quantile=0.75, floor_bytes=64 * MiB):
    """lower_bound for a schedule held to memgov's cold rules (docs/DESIGN.md 7.1-7.3) as if it
    knew the job set's statistics from the start: each unknown job reserves its peers' 75th
    percentile (nearest rank), a job larger than that the largest of its peers from the instant
    its linear ramp passes the guess (a broken guess counts at its ceiling), and admission keeps
    the emergency floor and room for one guess to turn out as large as the largest. An
    estimate, not a bound: a real cold run's first guesses and ceilings differ (the fallback,
    peers seen so far). It says what those safeguards cost, however well jobs are packed."""
    peaks = sorted(j["mb"] for j in jobs)
    guess, ceiling = peaks[max(1, math.ceil(quantile * len(peaks))) - 1], peaks[-1]
    usable = limit_bytes - floor_bytes - (ceiling - guess) * MiB
    if usable <= 0:
        return math.inf

    def reserved_mb_seconds(job):
        ramp, hold = job["ramp_ms"] / 1000, job["hold_ms"] / 1000
        if job["mb"] <= guess:
            return guess * (ramp + hold)
        broken_at = ramp * guess / job["mb"]
        return guess * broken_at + ceiling * (ramp + hold - broken_at)

    duration = [(j["ramp_ms"] + j["hold_ms"]) / 1000 for j in jobs]
    memory_time = sum(reserved_mb_seconds(j) * MiB for j in jobs) / usable
    return max(memory_time, sum(duration) / slots, max(duration))


def storm_limit(jobs, slots):
    """A cgroup limit plain make -jN cannot live in: about half of what N jobs that make runs
    side by side need at their peaks, yet room for the largest job alone."""
    window = max(sum(j["mb"] for j in jobs[i:i + slots]) for i in range(len(jobs) - slots + 1))
    largest = max(j["mb"] for j in jobs)
    return int(max(1.3 * largest, 0.5 * window)) // 64 * 64 * MiB


def memstorm(quick):
    count, slots = (24, 8) if quick else (80, 16)
    jobs = memstorm_jobs(count)
    limit = storm_limit(jobs, slots)
    largest = max(j["mb"] for j in jobs) * MiB
    safe_j = max(1, int(limit * 0.9 // largest))  # LLVM_RAM_PER_COMPILE_JOB-style: RAM / biggest job
    bound = lower_bound(jobs, limit, slots)
    work = Path(tempfile.mkdtemp(prefix="memgov-bench-"))
    profiles = work / "profiles"
    write_makefile(work, jobs)
    cgroup = Cgroup(limit, f"memgov-bench-{os.getpid()}")
    rows, series = [], {}
    memgov = [MEMGOV, "-q", "--gate", "memhog", "--profiles-dir", profiles, "--"]
    runs = [
        (f"make -j{slots}", ["make", "-s", f"-j{slots}", "-C", work]),
        (f"make -j{safe_j} (largest safe static -j)", ["make", "-s", f"-j{safe_j}", "-C", work]),
        (f"parallel -j{slots} --memfree 256M", ["parallel", f"-j{slots}", "--memfree", "256M", "--halt", "now,fail=1",
                                                 "-a", work / "jobs.txt"]),
        (f"parallel -j{slots} --memsuspend 256M", ["parallel", f"-j{slots}", "--memsuspend", "256M", "--halt",
                                                    "now,fail=1", "-a", work / "jobs.txt"]),
        (f"memgov -- make -j{slots} (cold)", memgov + ["make", "-s", f"-j{slots}", "-C", work]),
        (f"memgov -- make -j{slots} (warm)",
         memgov + ["make", "-s", f"-j{slots}", "-C", work]),
        (f"memgov --no-curves -- make -j{slots} (warm, peaks only)",
         memgov[:-1] + ["--no-curves", "--", "make", "-s", f"-j{slots}", "-C", work]),
        (f"memgov --jobs {slots} -- make -j{4 * slots} (warm, deep queue)",
         memgov[:-1] + ["--jobs", str(slots), "--", "make", "-s", f"-j{4 * slots}", "-C", work]),
    ]
    try:
        for label, argv in runs:
            stats_path = work / "stats.json"
            if argv[0] == MEMGOV:
                argv = [MEMGOV, "--stats-json", stats_path, *argv[1:]]
            status, seconds, ooms, samples, _ = run_sampled(argv, cgroup)
            stops = emergency_stops(stats_path) if argv[0] == MEMGOV else None
            rows.append({"run": label, "seconds": round(seconds, 2), "ratio_to_bound": round(seconds / bound, 2),
                         "oom_kills": ooms, "emergency_stops": stops, "exit": status})
            series[label] = samples
            print(f"memstorm: {label:45s} {seconds:7.2f}s  x{seconds / bound:5.2f}  OOM {ooms}  "
                  f"stops {'-' if stops is None else stops}  exit {status}", flush=True)
            if label.endswith("(warm)"):
                warm_stats = json.loads(stats_path.read_text())
        # The job set's durations are what each job takes alone; on 2 vCPUs, 10+ jobs touching
        # memory at once take longer. The same bound with the run times memgov measured in the
        # warm run shows how much of the gap that is.
        run_times = {j["key"]: j["exit_at_seconds"] - j["run_at_seconds"]
                     for j in warm_stats["jobs"] if "exit_at_seconds" in j}
        measured_bound = lower_bound(jobs, limit, slots, [run_times[job_key(j)] for j in jobs])
    finally:
        cgroup.close()
        shutil.rmtree(work, ignore_errors=True)
    for r in rows:
        r["ratio_to_measured_bound"] = round(r["seconds"] / measured_bound, 2)
    rows.append({"run": "packing lower bound (the job set's durations)", "seconds": round(bound, 2),
                 "ratio_to_bound": 1.0, "ratio_to_measured_bound": round(bound / measured_bound, 2), "oom_kills": 0,
                 "emergency_stops": None, "exit": None})
    rows.append({"run": "packing lower bound (run times measured under memgov)", "seconds": round(measured_bound, 2),
                 "ratio_to_bound": round(measured_bound / bound, 2), "ratio_to_measured_bound": 1.0, "oom_kills": 0,
                 "emergency_stops": None, "exit": None})
    cold_estimate = cold_rules_estimate(jobs, limit, slots)
    rows.append({"run": "packing estimate under the cold rules (guess: 75th percentile; broken: the largest; room for one)",
                 "seconds": round(cold_estimate, 2), "ratio_to_bound": round(cold_estimate / bound, 2),
                 "ratio_to_measured_bound": round(cold_estimate / measured_bound, 2), "oom_kills": 0,
                 "emergency_stops": None, "exit": None})
    result = {"benchmark": "memstorm", "quick": quick, "jobs": count, "slots": slots, "limit_bytes": limit,
              "largest_job_bytes": largest, "safe_j": safe_j, "measured_bound_seconds": round(measured_bound, 2), "rows": rows,
              "series": {k: [(round(t, 3), b) for t, b in v] for k, v in series.items()}}
    warm = next(r for r in rows if r["run"].endswith("(warm)"))
    safe = rows[1]
    cold = next(r for r in rows if r["run"].endswith("(cold)"))
    result["targets"] = {
        "memgov_oom_kills": sum(r["oom_kills"] for r in rows if r["run"].startswith("memgov")),
        "warm_emergency_stops": sum(r["emergency_stops"] or 0 for r in rows if "(warm" in r["run"]),
        "cold_ratio_to_bound": cold["ratio_to_bound"],
        "cold_ratio_to_cold_rules_estimate": round(cold["seconds"] / cold_estimate, 2),
        "warm_ratio_to_bound": warm["ratio_to_bound"],
        "warm_ratio_to_measured_bound": warm["ratio_to_measured_bound"],
        "speedup_vs_safe_static_j": round(safe["seconds"] / warm["seconds"], 2),
    }
    table = ["| run | wall (s) | × lower bound | × bound with measured run times | OOM kills | emergency stops | exit |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        table.append(f"| {r['run']} | {r['seconds']} | {r['ratio_to_bound']} | {r['ratio_to_measured_bound']} | "
                     f"{r['oom_kills']} | {blank_if_none(r['emergency_stops'])} | {blank_if_none(r['exit'])} |")
    write_outputs("memstorm", result, table)
    write_svg(series, limit, [f"make -j{slots}", f"memgov --no-curves -- make -j{slots} (warm, peaks only)",
                              f"memgov -- make -j{slots} (warm)"])
    return result


def emergency_stops(stats_path):
    """How often memgov's net stopped a job in a run (from its --stats-json); None without one."""
    try:
        return json.loads(Path(stats_path).read_text())["emergency_stops"]
    except (OSError, ValueError, KeyError):
        return None


def blank_if_none(value):
    return "" if value is None else value


def write_svg(series, limit, labels):
    width, height, pad = 720, 320, 50
    chosen = {label: series[label] for label in labels if series.get(label)}  # in the legend's order
    t_max = max(t for v in chosen.values() for t, _ in v) or 1
    y_max = limit * 1.1
    colors = ["#d62728", "#999999", "#7b3fb5"]

    def xy(t, b):
        return pad + (width - 2 * pad) * t / t_max, height - pad - (height - 2 * pad) * b / y_max

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             f'font-size="12"><rect width="100%" height="100%" fill="white"/>']
    lx, ly = xy(0, limit)
    rx, _ = xy(t_max, limit)
    parts.append(f'<line x1="{lx}" y1="{ly}" x2="{rx}" y2="{ly}" stroke="#444" stroke-dasharray="6,4"/>')
    parts.append(f'<text x="{rx - 150}" y="{ly - 6}">cgroup limit {limit // MiB} MB</text>')
    for i, (label, samples) in enumerate(chosen.items()):
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(t, b) for t, b in samples))
        parts.append(f'<polyline fill="none" stroke="{colors[i]}" stroke-width="2" points="{points}"/>')
        parts.append(f'<text x="{width / 2 - 120}" y="{16 + 16 * i}" fill="{colors[i]}">{label}</text>')
    ox, oy = xy(0, 0)
    parts.append(f'<line x1="{ox}" y1="{oy}" x2="{width - pad}" y2="{oy}" stroke="black"/>')
    parts.append(f'<line x1="{ox}" y1="{oy}" x2="{ox}" y2="{pad}" stroke="black"/>')
    parts.append(f'<text x="{width / 2 - 60}" y="{height - 12}">seconds (0 – {t_max:.1f})</text>')
    parts.append(f'<text x="6" y="{pad - 8}">cgroup memory</text></svg>')
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "memstorm.svg").write_text("\n".join(parts) + "\n")


# ---------------------------------------------------------------- accuracy

ACCURACY_SCRIPT = """
for i in 1 2 3; do {hog} --mb 300 --hold-ms 400; done
for i in 1 2 3 4 5 6 7 8 9 10; do {hog} --mb 50; done
for i in 1 2 3 4 5; do {hog} --mb 1 --children 2 --child-mb 200 --hold-ms 5; done
"""


def accuracy(quick):
    backends = [("bpf", []), ("procfs, 300 ms", ["--backend=procfs", "--poll-interval", "300"]),
                ("procfs, 10 ms", ["--backend=procfs", "--poll-interval", "10"])]
    rows = []
    for label, args in backends:
        with tempfile.TemporaryDirectory() as work:
            stats_path = Path(work) / "stats.json"
            out = subprocess.run([MEMGOV, "-q", "--no-gate", *args, "--stats-json", stats_path, "--", "/bin/sh", "-c",
                                  ACCURACY_SCRIPT.format(hog=MEMHOG)], capture_output=True, text=True)
            stats = json.loads(stats_path.read_text())
        truth = {int(p): int(k) * 1024 for p, k in re.findall(r"memhog pid=(\d+) maxrss_kb=(\d+)", out.stdout)}
        seen = {p["pid"]: p["peak_rss_bytes"] for p in stats["processes"]}
        exact = missed = 0
        worst = 0.0
        for pid, kernel in truth.items():
            tracked = seen.get(pid, 0)
            if abs(tracked - kernel) <= max(kernel / 100, 2 * MiB):
                exact += 1
            if tracked < kernel / 2:
                missed += 1
            worst = max(worst, abs(tracked - kernel) / kernel)
        rows.append({"backend": label, "processes": len(truth), "within_tolerance": exact, "missed_peaks": missed,
                     "worst_error_pct": round(100 * worst, 1),
                     "controller_cpu_seconds": stats.get("controller_cpu_seconds")})
        print(f"accuracy: {label:16s} {exact}/{len(truth)} exact, {missed} peaks missed, worst {100 * worst:.1f}%",
              flush=True)
    table = ["| backend | processes | within max(1 %, 2 MiB) of ru_maxrss | peaks missed (< 50 %) | worst error |",
             "|---|---|---|---|---|"]
    for r in rows:
        table.append(f"| {r['backend']} | {r['processes']} | {r['within_tolerance']} | {r['missed_peaks']} | "
                     f"{r['worst_error_pct']} % |")
    result = {"benchmark": "accuracy", "quick": quick, "rows": rows}
    write_outputs("accuracy", result, table)
    return result


# ---------------------------------------------------------------- overhead

def copy_project(destination):
    """memgov's own sources (what git tracks; everything but build trees without git)."""
    try:
        files = subprocess.run(["git", "-C", ROOT, "ls-files"], check=True, capture_output=True,
                               text=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        files = None
    if not files:
        shutil.copytree(ROOT, destination, ignore=shutil.ignore_patterns("build*", ".git"))
        return
    for name in files:
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)


def overhead(quick):
    """Quick: the demo project once. Full: memgov itself (its BPF object, skeleton and every
    C++ file of the memgov binary) five times, the variants interleaved so drift hits all."""
    reps = 1 if quick else 5
    work = Path(tempfile.mkdtemp(prefix="memgov-overhead-"))
    variants = [("make -j2", []), ("memgov (bpf) -- make -j2", [MEMGOV, "-q", "--"]),
                ("memgov --trace (bpf)", [MEMGOV, "-q", "--trace", work / "trace.json", "--"]),
                ("memgov --backend=procfs --poll-interval 300", [MEMGOV, "-q", "--backend=procfs",
                                                                 "--poll-interval", "300", "--"]),
                ("memgov --backend=procfs --poll-interval 10", [MEMGOV, "-q", "--backend=procfs",
                                                                "--poll-interval", "10", "--"])]
    if quick:
        shutil.copytree(ROOT / "tools" / "demo" / "project", work / "project")
        build_dir, target, what = work / "project", [], "the demo project (five g++ translation units)"
    else:
        copy_project(work / "src")
        build_dir, target, what = work / "obj", ["memgov"], "memgov itself (`make memgov`: BPF object, skeleton, 22 C++ files)"
        subprocess.run(["cmake", "-S", work / "src", "-B", build_dir, "-G", "Unix Makefiles",
                        "-DCMAKE_BUILD_TYPE=RelWithDebInfo"], check=True, stdout=subprocess.DEVNULL)
    measured = {label: {"wall": [], "build_cpu": [], "controller_cpu": []} for label, _ in variants}
    try:
        for rep in range(reps):
            for label, prefix in variants:
                subprocess.run(["make", "-s", "-C", build_dir, "clean"], check=True, stdout=subprocess.DEVNULL)
                stats = work / "stats.json"
                argv = ["make", "-s", "-j2", "-C", build_dir, *target]
                if prefix:
                    argv = [*prefix[:-1], "--profiles-dir", work / "profiles", "--stats-json", stats, "--", *argv]
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                start = time.monotonic()
                subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
                wall = time.monotonic() - start
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
                mine = json.loads(stats.read_text())["controller_cpu_seconds"] if prefix else 0.0
                measured[label]["wall"].append(wall)
                measured[label]["controller_cpu"].append(mine)
                measured[label]["build_cpu"].append(cpu - mine)
                print(f"overhead: rep {rep + 1}/{reps} {label:45s} wall {wall:6.2f}s  memgov CPU {mine:.3f}s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def median(values):
        ordered = sorted(values)
        middle = len(ordered) // 2
        return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2

    rows = []
    for label, _ in variants:
        m = measured[label]
        rows.append({"run": label, "wall": round(median(m["wall"]), 2), "wall_min": round(min(m["wall"]), 2),
                     "wall_max": round(max(m["wall"]), 2), "build_cpu": round(median(m["build_cpu"]), 2),
                     "controller_cpu": round(median(m["controller_cpu"]), 3)})
    base, bpf = rows[0], rows[1]
    for r in rows:
        r["wall_ratio"] = round(r["wall"] / base["wall"], 3)
        r["controller_cpu_pct_of_build"] = round(100 * r["controller_cpu"] / base["build_cpu"], 2)
        r["controller_cpu_vs_bpf"] = round(r["controller_cpu"] / bpf["controller_cpu"], 2) if bpf["controller_cpu"] else None
    table = ["| run | wall, median (s) | min – max (s) | × plain make | memgov CPU (s) | memgov CPU, % of the build's "
             "| memgov CPU × bpf's |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        table.append(f"| {r['run']} | {r['wall']} | {r['wall_min']} – {r['wall_max']} | {r['wall_ratio']} | "
                     f"{r['controller_cpu']} | {r['controller_cpu_pct_of_build']} % | "
                     f"{'' if r is base else r['controller_cpu_vs_bpf']} |")
    result = {"benchmark": "overhead", "quick": quick, "reps": reps, "build": what, "rows": rows}
    write_outputs("overhead", result, table)
    return result


# ---------------------------------------------------------------- gate latency

def latency(quick):
    """exec -> run of gated jobs that fit at once, and the cost of the gate per exec: with the
    kernel's grant (jobs that fit are never stopped) and with --always-stop (every job waits
    for the controller's SIGCONT)."""
    count = 2000 if quick else 10000
    script = f"i=0; while [ $i -lt {count} ]; do i=$((i+1)); /bin/true; done"
    variants = (("no memgov", None), ("memgov --no-gate", ["--no-gate"]), ("memgov, gated", ["--gate", "true"]),
                ("memgov --always-stop, gated", ["--gate", "true", "--always-stop"]))
    timings, rows = {}, []
    with tempfile.TemporaryDirectory() as work:
        for label, args in variants:
            stats_path = Path(work) / "stats.json"
            argv = ["/bin/sh", "-c", script]
            if args is not None:
                argv = [MEMGOV, "-q", *args, "--profiles-dir", Path(work) / "p", "--stats-json", stats_path, "--", *argv]
            start = time.monotonic()
            subprocess.run(argv, check=True)
            timings[label] = time.monotonic() - start
            if not label.endswith("gated"):
                continue
            stats = json.loads(stats_path.read_text())
            held = [j for j in stats["jobs"] if "gate_seconds" in j and not j["waited"]]
            gates = sorted(j["gate_seconds"] * 1e6 for j in held)
            stopped = [j for j in held if j["gate_seconds"] > 0]
            delivery = sorted(j.get("gate_delivery_seconds", 0) * 1e6 for j in stopped) or [0.0]

            def pct(values, p):
                return round(values[min(len(values) - 1, int(p * len(values)))], 1)

            rows.append({"run": label, "execs": count, "measured": len(gates),
                         "started_by_kernel": len(held) - len(stopped),
                         "p50_us": pct(gates, 0.50), "p99_us": pct(gates, 0.99), "max_us": round(gates[-1], 1),
                         "delivery_p50_us": pct(delivery, 0.5), "delivery_p99_us": pct(delivery, 0.99),
                         "cost_per_gated_exec_us": round((timings[label] - timings["no memgov"]) / count * 1e6, 1),
                         "events_dropped": stats["events_dropped"]})
            r = rows[-1]
            print(f"latency: {label:28s} {len(gates)} gated execs, {r['started_by_kernel']} never stopped: "
                  f"p50 {r['p50_us']} us, p99 {r['p99_us']} us, max {r['max_us']} us (ring buffer + wake-up p50 "
                  f"{r['delivery_p50_us']} us); +{r['cost_per_gated_exec_us']} us per exec end to end", flush=True)
    result = {"benchmark": "latency", "quick": quick, "rows": rows,
              "seconds": {k: round(v, 3) for k, v in timings.items()},
              "no_gate_cost_per_exec_us": round((timings["memgov --no-gate"] - timings["no memgov"]) / count * 1e6, 1)}
    table = ["| run | gated execs | never stopped (kernel grant) | exec → run p50 | p99 | max "
             "| ring buffer + wake-up of the stopped ones (p50 / p99) | end-to-end cost per gated exec | events dropped |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        table.append(f"| {r['run']} | {r['measured']} | {r['started_by_kernel']} | {r['p50_us']} µs | {r['p99_us']} µs | "
                     f"{r['max_us']} µs | {r['delivery_p50_us']} / {r['delivery_p99_us']} µs | "
                     f"{r['cost_per_gated_exec_us']} µs | {r['events_dropped']} |")
    write_outputs("latency", result, table)
    return result


# ---------------------------------------------------------------- scale

def scale(quick):
    """Many processes at once, and a long stream of execs: nothing dropped, little CPU, small memgov."""
    concurrent, execs = (500, 20000) if quick else (2000, 100000)
    many_execs = f"i=0; while [ $i -lt {execs} ]; do i=$((i+1)); /bin/true; done"
    runs = [(f"{concurrent} concurrent processes",
             f"i=0; while [ $i -lt {concurrent} ]; do i=$((i+1)); sleep 2 & done; wait", False),
            (f"{execs} execs", many_execs, False),
            (f"{execs} execs, --trace", many_execs, True)]  # the trace of a 100,000-process build
    rows = []
    for label, script, traced in runs:
        with tempfile.TemporaryDirectory() as work:
            stats_path, trace_path = Path(work) / "stats.json", Path(work) / "trace.json"
            start = time.monotonic()
            subprocess.run([MEMGOV, "-q", "--profiles-dir", Path(work) / "p", "--stats-json", stats_path,
                            *(["--trace", trace_path] if traced else []), "--", "/bin/sh", "-c", script], check=True)
            wall = time.monotonic() - start
            stats = json.loads(stats_path.read_text())
            trace_mib = round(trace_path.stat().st_size / MiB, 1) if traced else None
        rows.append({"run": label, "wall": round(wall, 2), "procs_seen": stats["procs_seen"], "trace_mib": trace_mib,
                     "execs": stats["execs"], "events_dropped": stats["events_dropped"],
                     "untracked": stats["procs_untracked_map_full"],
                     "controller_cpu_pct_of_core": round(100 * stats["controller_cpu_seconds"] / wall, 2),
                     "controller_max_rss_mib": round(stats["controller_max_rss_bytes"] / MiB, 1)})
        r = rows[-1]
        print(f"scale: {label:28s} {r['procs_seen']} procs, {r['execs']} execs, {r['events_dropped']} dropped, "
              f"memgov {r['controller_cpu_pct_of_core']} % of a core, {r['controller_max_rss_mib']} MiB", flush=True)
    table = markdown_table(["run", "wall (s)", "processes seen", "execs", "events dropped", "not tracked",
                            "memgov CPU (% of a core)", "memgov max RSS (MiB)", "trace (MiB)"],
                           [[r["run"], r["wall"], r["procs_seen"], r["execs"], r["events_dropped"], r["untracked"],
                             r["controller_cpu_pct_of_core"], r["controller_max_rss_mib"], r["trace_mib"]]
                            for r in rows])
    result = {"benchmark": "scale", "quick": quick, "rows": rows}
    write_outputs("scale", result, table)
    return result


# ---------------------------------------------------------------- in files of their own

def robustness(quick):
    import robustness as module
    return module.robustness(quick)


def realproject(quick):
    import realproject as module
    return module.realproject(quick)


def concurrent(quick):
    import concurrent_builds as module
    return module.concurrent(quick)


def whatif(quick):
    import whatif as module
    return module.whatif(quick)


# ---------------------------------------------------------------- output

def markdown_table(columns, rows):
    """A Markdown table: `columns` as its header, then a line of cells per row (None: empty)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for cells in rows:
        lines.append("| " + " | ".join(str(blank_if_none(cell)) for cell in cells) + " |")
    return lines


def write_outputs(name, result, table):
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    (OUT / f"{name}.md").write_text("\n".join(table) + "\n")


def failures(result):
    """What --check rejects in one benchmark's result: only outcomes, never timings."""
    name, found = result["benchmark"], []
    if name == "memstorm":
        for row in result["rows"]:
            if row["run"].startswith("memgov") and (row["oom_kills"] or row["exit"] != 0):
                found.append(f"{row['run']}: {row['oom_kills']} OOM kills, exit {row['exit']}")
        if not result["rows"][0]["oom_kills"]:
            found.append(f"{result['rows'][0]['run']} was not OOM-killed: the cgroup does not test anything")
    elif name == "accuracy":
        bpf = next(r for r in result["rows"] if r["backend"] == "bpf")
        if bpf["within_tolerance"] != bpf["processes"]:
            found.append(f"BPF peaks: {bpf['within_tolerance']} of {bpf['processes']} within tolerance")
    elif name == "latency":
        for row in result["rows"]:
            if row["events_dropped"] or row["measured"] != row["execs"]:
                found.append(f"{row['run']}: {row['events_dropped']} events dropped, "
                             f"{row['measured']} of {row['execs']} measured")
    elif name == "robustness":
        import robustness as module
        return module.robustness_failures(result)
    elif name == "realproject":
        import realproject as module
        return module.realproject_failures(result)
    elif name == "concurrent":
        import concurrent_builds as module
        return module.concurrent_failures(result)
    elif name == "whatif":
        import whatif as module
        return module.whatif_failures(result)
    elif name == "scale":
        for row in result["rows"]:
            if row["events_dropped"] or row["untracked"]:
                found.append(f"{row['run']}: {row['events_dropped']} dropped, {row['untracked']} untracked")
    return [f"{name}: {failure}" for failure in found]


def main():
    global OUT
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller job sets, one repetition (CI smoke runs)")
    parser.add_argument("--check", action="store_true", help="exit 1 when an outcome (not a timing) is wrong")
    parser.add_argument("--out", type=Path, default=OUT, help=f"where results go (default {OUT})")
    names = ["memstorm", "robustness", "realproject", "concurrent", "whatif", "accuracy", "overhead", "latency",
             "scale"]
    parser.add_argument("benchmarks", nargs="*", choices=[[], *names],
                        help="default: all of them but realproject and whatif (real builds, many times)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: needs root (BPF and memory cgroups): sudo tools/bench/bench.py")
    if not MEMGOV.exists():
        sys.exit(f"bench: {MEMGOV} missing: run tools/build.sh first")
    OUT = args.out
    found = []
    for name in args.benchmarks or [name for name in names if name not in ("realproject", "whatif")]:
        found += failures(globals()[name](args.quick))
    for failure in found:  # without --check an outcome is reported, and fails nothing
        print(f"bench: {'FAILED' if args.check else 'outcome not as expected:'} {failure}", file=sys.stderr)
    if args.check and not found:
        print("bench: every outcome as expected (timings are reported, not judged)")
    sys.exit(1 if args.check and found else 0)


if __name__ == "__main__":
    main()
