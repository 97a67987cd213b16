#!/usr/bin/env python3
"""robustness: cold memgov against random builds whose jobs grow irregularly.

    sudo tools/bench/bench.py [--quick] [--check] [--out DIR] robustness

Per seed, a random make job set: many small jobs (30-150 MB) with a few giants (400-700 MB)
among them, each with a random memhog --shape (linear, steps, late-spike, slow-jump) and random
ramp and hold times. Each set runs under `memgov -- make -j16` with nothing learned (a fresh
--profiles-dir), in a fresh memory cgroup at 1.3x, 1.8x and 2.5x its largest job (so every limit
holds the largest job alone, with room). Plain `make -j16` runs the first seed at each limit, to
show the limit bites. Full: 20 seeds of 40 jobs; --quick: 3 seeds of 28 shorter jobs (CI).
A cgroup at its limit can thrash instead of OOM-killing: a run that outlives its timeout is
killed and recorded as timed out. A run's job set is job_set(seed, quick): reproducible.

Writes docs/bench/robustness.json and .md (--out elsewhere). --check fails (exit 1) on outcomes,
never timings: an OOM kill, a nonzero exit or a timeout under memgov, or plain make neither
OOM-killed nor timed out at the tightest limit (then the limits test nothing).
Needs root (BPF, memory cgroups), memgov and tests/memhog in the build tree (MEMGOV_BUILD_DIR).
"""
import json
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (next to this file, not installed)

MiB = bench.MiB
SLOTS = 16
FACTORS = (1.3, 1.8, 2.5)  # limit = factor x the largest job, rounded down to 64 MiB
SHAPES = ("linear", "steps", "late-spike", "slow-jump")


# ---------------------------------------------------------------- job sets

def job_set(seed, quick):
    """A deterministic random job set: small jobs with a few giants at random places in make's order."""
    rng = random.Random(seed)
    # More jobs than -j16 slots even in quick mode: jobs that exec after others have ended are
    # predicted from them, jobs in the first wave from nothing at all; both must be tested.
    if quick:
        count, giants = 28, rng.randint(2, 4)
        small_ramp, small_hold, giant_ramp, giant_hold = (100, 500), (50, 250), (400, 1200), (100, 400)
    else:
        count, giants = 40, rng.randint(3, 5)
        small_ramp, small_hold, giant_ramp, giant_hold = (300, 1500), (100, 700), (1000, 3000), (200, 1000)
    jobs = []
    for i in range(count):
        giant = i < giants
        job = {"mb": rng.randint(400, 700) if giant else rng.randint(30, 150),
               "ramp_ms": rng.randint(*(giant_ramp if giant else small_ramp)),
               "hold_ms": rng.randint(*(giant_hold if giant else small_hold)),
               "shape": rng.choice(SHAPES)}
        if job["shape"] == "steps":
            job["plateaus"] = rng.randint(3, 5)
        jobs.append(job)
    rng.shuffle(jobs)
    for i, job in enumerate(jobs):
        job["name"] = f"j{i:03d}"
    return jobs


def job_command(job):
    # --shape first: the integration tests find (and kill) their own memhogs system-wide by
    # "memhog --mb N"; a benchmark running beside them must not match.
    plateaus = f" --plateaus {job['plateaus']}" if "plateaus" in job else ""
    return (f"{bench.MEMHOG} --shape {job['shape']}{plateaus} --mb {job['mb']} --ramp-ms {job['ramp_ms']} "
            f"--hold-ms {job['hold_ms']} > /dev/null")


def write_makefile(directory, jobs):
    names = " ".join(j["name"] for j in jobs)
    rules = "".join(f"{j['name']}:\n\t@{job_command(j)}\n" for j in jobs)
    (directory / "Makefile").write_text(f"all: {names}\n{rules}.PHONY: all {names}\n")


def limit_for(jobs, factor):
    return int(factor * max(j["mb"] for j in jobs)) // 64 * 64 * MiB


def failed_jobs(out, jobs):
    """The jobs make reports as killed or failed ("make: *** [Makefile:7: j003] Killed")."""
    by_name = {j["name"]: j for j in jobs}
    found = []
    for name, why in re.findall(r"\[Makefile:\d+: (j\d+)\] (.+)", out):
        job = by_name.get(name, {})
        found.append({"job": name, "why": why.strip(), "mb": job.get("mb"), "shape": job.get("shape"),
                      "ramp_ms": job.get("ramp_ms"), "hold_ms": job.get("hold_ms")})
    return found


# ---------------------------------------------------------------- the benchmark

def robustness(quick):
    seeds = range(1, 4) if quick else range(1, 21)
    runs = []
    started = time.monotonic()
    for seed in seeds:
        jobs = job_set(seed, quick)
        largest = max(j["mb"] for j in jobs)
        # Every job once, one after another, plus slack: memgov cold may serialise the whole set
        # at the tightest limit, and that is slow but not wrong; only a hang or a thrash lasts longer.
        timeout = 1.5 * sum((j["ramp_ms"] + j["hold_ms"]) / 1000 for j in jobs) + 15
        work = Path(tempfile.mkdtemp(prefix="memgov-robust-"))
        work.chmod(0o755)  # under sudo memgov runs the build as the invoking user
        try:
            write_makefile(work, jobs)
            for factor in FACTORS:
                limit = limit_for(jobs, factor)
                bound = bench.lower_bound(jobs, limit, SLOTS)
                variants = [("memgov", True)]
                if seed == seeds[0]:
                    variants.insert(0, (f"make -j{SLOTS}", False))
                for label, governed in variants:
                    stats = work / f"stats-{factor}.json"
                    profiles = work / f"profiles-{factor}"  # cold: nothing learned
                    make = ["make", "-s", f"-j{SLOTS}", "-C", work]
                    argv = ([bench.MEMGOV, "-q", "--gate", "memhog", "--stats-json", stats,
                             "--profiles-dir", profiles, "--", *make] if governed else make)
                    outcome = bench.run_limited(argv, limit, timeout)
                    status, seconds, ooms = outcome["exit"], outcome["seconds"], outcome["oom_kills"]
                    peak, timed_out, out = outcome["peak_bytes"], outcome["timed_out"], outcome["output"]
                    stops = None
                    if governed and stats.exists():
                        stops = json.loads(stats.read_text()).get("emergency_stops")
                    run = {"seed": seed, "run": label, "factor": factor, "limit_bytes": limit,
                           "largest_job_bytes": largest * MiB, "jobs": len(jobs),
                           "giants": sum(j["mb"] >= 400 for j in jobs), "seconds": round(seconds, 2),
                           "bound_seconds": round(bound, 2), "ratio_to_bound": round(seconds / bound, 2),
                           "oom_kills": ooms, "emergency_stops": stops, "exit": status, "timed_out": timed_out,
                           "peak_bytes": peak}
                    if status != 0 or ooms or timed_out:
                        run["failed_jobs"] = failed_jobs(out, jobs)
                        run["output_tail"] = out.strip().splitlines()[-12:]
                    runs.append(run)
                    print(f"robustness: seed {seed:2d} {factor}x ({limit // MiB:5d} MiB) {label:9s} "
                          f"{seconds:6.2f}s  x{seconds / bound:5.2f}  OOM {ooms}  stops {stops}  exit {status}"
                          f"{'  TIMED OUT' if timed_out else ''}", flush=True)
                    for failed in run.get("failed_jobs", []):
                        print(f"robustness:   {failed['job']} {failed['why']}: {failed['mb']} MB "
                              f"{failed['shape']} ramp {failed['ramp_ms']} ms hold {failed['hold_ms']} ms", flush=True)
                    stats.unlink(missing_ok=True)
                    shutil.rmtree(profiles, ignore_errors=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    rows = []
    for factor in FACTORS:
        governed = [r for r in runs if r["factor"] == factor and r["run"] == "memgov"]
        clean = [r["ratio_to_bound"] for r in governed if r["exit"] == 0 and not r["timed_out"]]
        plain = next(r for r in runs if r["factor"] == factor and r["run"] != "memgov")
        limits = [r["limit_bytes"] // MiB for r in governed]
        rows.append({"factor": factor, "limit_mib_min": min(limits), "limit_mib_max": max(limits),
                     "runs": len(governed),
                     "runs_oom_killed": sum(r["oom_kills"] > 0 for r in governed),
                     "oom_kills": sum(r["oom_kills"] for r in governed),
                     "runs_with_emergency_stops": sum(bool(r["emergency_stops"]) for r in governed),
                     "emergency_stops": sum(r["emergency_stops"] or 0 for r in governed),
                     "runs_failed": sum(r["exit"] != 0 for r in governed),
                     "timeouts": sum(r["timed_out"] for r in governed),
                     "median_ratio": round(statistics.median(clean), 2) if clean else None,
                     "max_ratio": max(clean) if clean else None,
                     "plain_make": {k: plain[k] for k in ("seed", "seconds", "oom_kills", "exit", "timed_out")}})
    result = {"benchmark": "robustness", "quick": quick, "slots": SLOTS, "seeds": len(seeds),
              "factors": list(FACTORS), "seconds": round(time.monotonic() - started, 1), "runs": runs, "rows": rows}
    bench.write_outputs("robustness", result, robustness_table(result))
    return result


def robustness_table(result):
    slots = result["slots"]

    def plain(r):
        p = r["plain_make"]
        return f"{p['oom_kills']}, {p['exit']}{' (timed out)' if p['timed_out'] else ''}"

    return bench.markdown_table(
        ["limit (× largest job)", f"memgov -j{slots} cold runs", "runs with an OOM kill", "OOM kills",
         "runs with emergency stops", "emergency stops", "nonzero exit / timed out",
         "× lower bound, median (clean runs)", "max", f"plain make -j{slots} (first seed): OOM kills, exit"],
        [[f"{r['factor']}× ({r['limit_mib_min']}–{r['limit_mib_max']} MiB)", r["runs"], r["runs_oom_killed"],
          r["oom_kills"], r["runs_with_emergency_stops"], r["emergency_stops"],
          f"{r['runs_failed']} / {r['timeouts']}", r["median_ratio"], r["max_ratio"], plain(r)]
         for r in result["rows"]])


def robustness_failures(result):
    """What --check rejects: outcomes only, never timings."""
    found = []
    for r in result["runs"]:
        if r["run"] == "memgov" and (r["oom_kills"] or r["exit"] != 0 or r["timed_out"]):
            found.append(f"seed {r['seed']} at {r['factor']}x ({r['limit_bytes'] // MiB} MiB): "
                         f"{r['oom_kills']} OOM kills, exit {r['exit']}{', timed out' if r['timed_out'] else ''}")
    tightest = next(r for r in result["rows"] if r["factor"] == min(result["factors"]))["plain_make"]
    if not tightest["oom_kills"] and not tightest["timed_out"]:
        found.append(f"plain make -j{result['slots']} was not OOM-killed at the tightest limit: it tests nothing")
    return [f"robustness: {failure}" for failure in found]


if __name__ == "__main__":
    sys.exit("robustness: run it through bench.py: sudo tools/bench/bench.py [--quick] [--check] robustness")
