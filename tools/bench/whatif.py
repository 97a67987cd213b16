#!/usr/bin/env python3
"""whatif: how close `memgov report TRACE --limit … --jobs …` comes to the run it predicts.

    sudo tools/bench/bench.py [--quick] [--check] [--out DIR] whatif

For a real build: its jobs are learned first (memgov, cold, memory to spare), then a warm run
is recorded with --trace at one limit and -j, and memgov report replays that trace under other
limits and -j. Then each of those runs is made for real, warm, in a fresh memory cgroup, and its
measured wall time is set against the estimate: error = estimate / measured - 1.
Projects: quick, tools/demo/project (make -j4; ~3 s builds, so the error is mostly noise);
full, also Eigen's tests (realproject.py's targets, Debian's eigen3 source, CMake + Ninja -j8).
--check fails on outcomes only (a governed run OOM-killed or failed, a what-if not answered),
never on the error, which is reported.
"""
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.dont_write_bytecode = True  # no __pycache__ left in the source tree
import bench  # noqa: E402  (run_limited, MEMGOV, write_outputs, markdown_table)
import realproject  # noqa: E402  (the Eigen source, its configure and its targets)

MiB = bench.MiB
DEMO = bench.ROOT / "tools" / "demo" / "project"
TIMEOUT = 900


def governed(profiles, *extra):
    return [bench.MEMGOV, "-q", "--ledger", "off", "--profiles-dir", profiles, *extra, "--"]


def measure(rows, project, label, argv, limit, prepare, stats):
    prepare()
    Path(stats).unlink(missing_ok=True)
    outcome = bench.run_limited(argv, limit, TIMEOUT, env=realproject.build_env())
    data = realproject.read_stats(stats) or {}
    row = {"project": project, "run": label, "limit_bytes": limit, "seconds": round(outcome["seconds"], 2),
           "exit": outcome["exit"], "oom_kills": outcome["oom_kills"], "timed_out": outcome["timed_out"],
           "emergency_stops": data.get("emergency_stops"),
           "jobs_waited": sum(1 for j in data.get("jobs", []) if j.get("run_at_seconds", 0) - j.get("exec_at_seconds", 0) > 0.01)}
    print(f"whatif: {project:6s} {label:44s} {limit // MiB:5d} MiB {row['seconds']:7.2f}s  OOM {row['oom_kills']}  "
          f"exit {'timeout' if row['timed_out'] else row['exit']}", flush=True)
    rows.append(row)
    return row


def what_if(trace, limits, jobs):
    argv = [bench.MEMGOV, "report", trace, "--json", "--limit", ",".join(f"{l // MiB}M" for l in limits),
            "--jobs", ",".join(map(str, jobs))]
    done = subprocess.run(list(map(str, argv)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        raise RuntimeError(f"memgov report failed: {done.stderr.strip()}")
    return json.loads(done.stdout)["what_if"]


def study(rows, project, build_argv, prepare, work, record_at, asked):
    """record_at: (limit, jobs) of the traced run; asked: [(limit, jobs)] to predict and run."""
    profiles = work / f"profiles-{project}"
    learn_limit = max(limit for limit, _ in [record_at, *asked])
    measure(rows, project, "learning run (cold)", [*governed(profiles), *build_argv(record_at[1])], learn_limit,
            prepare, work / "learn.json")
    trace = work / f"{project}.trace.json"
    recorded = measure(rows, project, f"recorded (warm, -j{record_at[1]}, --trace)",
                       [*governed(profiles, "--stats-json", work / "rec.json", "--trace", trace),
                        *build_argv(record_at[1])], record_at[0], prepare, work / "rec.json")
    recorded["recorded"] = True
    answers = what_if(trace, sorted({limit for limit, _ in asked}), sorted({jobs for _, jobs in asked}))
    replayed = answers["recorded"]["replayed_seconds"]
    recorded["replayed_seconds"] = round(replayed, 2)
    for limit, jobs in asked:
        answer = next(a for a in answers["answers"] if a["limit_bytes"] == limit and a["jobs"] == jobs)
        stats = work / "asked.json"
        row = measure(rows, project, f"asked (warm, -j{jobs})",
                      [*governed(profiles, "--stats-json", stats), *build_argv(jobs)], limit, prepare, stats)
        row.update({"recorded_limit_bytes": record_at[0], "recorded_jobs": record_at[1],
                    "estimated_seconds": round(answer["memgov"]["estimated_seconds"], 2),
                    "replayed_seconds": round(answer["memgov"]["replayed_seconds"], 2),
                    "estimated_jobs_waited": answer["memgov"]["jobs_waited"],
                    "estimated_plain": "OOM" if answer["plain"]["out_of_memory"] else
                    round(answer["plain"]["estimated_seconds"], 2)})
        row["error"] = round(row["estimated_seconds"] / row["seconds"] - 1, 3) if row["seconds"] else None
        row["raw_error"] = round(row["replayed_seconds"] / row["seconds"] - 1, 3) if row["seconds"] else None


def whatif(quick):
    rows = []
    work = Path(tempfile.mkdtemp(prefix="memgov-whatif-", dir="/var/tmp"))
    try:
        demo = work / "demo"

        def prepare_demo():
            shutil.rmtree(demo, ignore_errors=True)
            shutil.copytree(DEMO, demo)

        study(rows, "demo", lambda j: ["make", "-s", f"-j{j}", "-C", demo], prepare_demo, work,
              (1200 * MiB, 4), [(800 * MiB, 4), (1200 * MiB, 2)])
        if not quick:
            targets = realproject.QUICK_TARGETS
            build = work / "eigen"
            realproject.configure(realproject.eigen_source(), build)
            outputs = [f"test/{t}" for t in targets]
            study(rows, "eigen", lambda j: ["ninja", "-C", build, f"-j{j}", *outputs],
                  lambda: realproject.clean(build, targets), work, (2048 * MiB, 8),
                  [(1300 * MiB, 8), (2048 * MiB, 4), (3072 * MiB, 8)])
            study(rows, "eigen", lambda j: ["ninja", "-C", build, f"-j{j}", *outputs],
                  lambda: realproject.clean(build, targets), work, (1300 * MiB, 8), [(2048 * MiB, 8)])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"benchmark": "whatif", "quick": quick, "rows": rows}
    bench.write_outputs("whatif", result, whatif_table(result))
    return result


def whatif_table(result):
    asked = [r for r in result["rows"] if "estimated_seconds" in r]
    return bench.markdown_table(
        ["project", "recorded at", "asked", "estimate (s)", "measured (s)", "error", "replay alone (s)",
         "waits est. / measured", "plain, est.", "OOM kills"],
        [[r["project"], f"{r['recorded_limit_bytes'] // MiB} MiB -j{r['recorded_jobs']}",
          f"{r['limit_bytes'] // MiB} MiB {r['run'].split(', ')[1].rstrip(')')}", r["estimated_seconds"], r["seconds"],
          f"{r['error'] * 100:+.1f} %", r["replayed_seconds"], f"{r['estimated_jobs_waited']} / {r['jobs_waited']}",
          r["estimated_plain"], r["oom_kills"]] for r in asked])


def whatif_failures(result):
    found = []
    for row in result["rows"]:
        if row["oom_kills"] or row["exit"] != 0 or row["timed_out"]:
            found.append(f"{row['project']} {row['run']} at {row['limit_bytes'] // MiB} MiB: {row['oom_kills']} OOM "
                         f"kills, exit {'timeout' if row['timed_out'] else row['exit']}")
    if not any("estimated_seconds" in row for row in result["rows"]):
        found.append("no what-if was answered")
    return [f"whatif: {failure}" for failure in found]


if __name__ == "__main__":
    sys.exit("whatif: run it through bench.py: sudo tools/bench/bench.py [--quick] [--check] whatif")
