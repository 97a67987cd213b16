#!/usr/bin/env python3
"""concurrent: several builds at once in one memory cgroup, as on a shared build server.

    sudo tools/bench/bench.py [--quick] [--check] [--out DIR] concurrent

Each build is a copy of a real C++ project built by its own build system; k copies start
together in one memory cgroup whose limit holds one build's heaviest jobs with some room, not
k builds' at once. Four ways of running them, each from clean:
- plain: the build tool alone (the limit biting: OOM kills);
- memgov alone: one memgov per build, each governing as if it were alone (--ledger off), which
  is what memgov did before the host ledger, cold and warm (warm: each build's own profiles,
  learned by its cold run);
- memgov: one memgov per build sharing the host ledger (a private one, --ledger DIR), cold and
  warm;
- memgov through the daemon: one `memgov daemon` follows every build (--socket), keeping their
  ledger entries, cold and warm: what users without privilege get.
Projects: tools/demo/project (g++, two ~480 MB translation units, two small ones, a link) with
make -j4; in the full run also Eigen's tests (Debian's eigen3 source package, MPL-2.0, see
realproject.py) with CMake + Ninja -j8, two builds in one cgroup.
Wall time is from the first start to the last end; OOM kills are the cgroup's.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.dont_write_bytecode = True  # no __pycache__ left in the source tree
import bench  # noqa: E402  (Cgroup, MEMGOV, write_outputs, markdown_table)
import realproject  # noqa: E402  (the Eigen source, its configure and its targets)

MiB = bench.MiB
DEMO = bench.ROOT / "tools" / "demo" / "project"
DEMO_LIMIT = 1100 * MiB  # one build's two heavy units and a light one, not two builds' four heavy
EIGEN_LIMIT = 2048 * MiB  # one build's two heaviest compiles side by side, not two builds'
TIMEOUT = 900


def run_together(commands, limit, timeout):
    """Starts every argv of `commands` (argv, cwd) at once in one fresh cgroup; returns the
    wall time of them all, the cgroup's OOM kills, whether the timeout fired, and each exit."""
    cgroup = bench.Cgroup(limit, f"memgov-bench-concurrent-{os.getpid()}")
    fired = threading.Event()

    def expire():
        fired.set()
        cgroup.kill_all()

    timer = threading.Timer(timeout, expire)
    before = cgroup.oom_kills()
    start = time.monotonic()
    timer.start()
    try:
        procs = [subprocess.Popen(cgroup.wrap(list(map(str, argv))), cwd=cwd, env=realproject.build_env(),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for argv, cwd in commands]
        errors = [p.communicate()[1].decode(errors="replace") for p in procs]
        seconds = time.monotonic() - start
        ooms = cgroup.oom_kills() - before
    finally:
        timer.cancel()
        timer.join()
        cgroup.close()
    return {"seconds": round(seconds, 2), "oom_kills": ooms, "timed_out": fired.is_set(),
            "exits": [p.returncode for p in procs], "stderr_tails": [e.splitlines()[-3:] for e in errors]}


class Demo:
    """tools/demo/project, copied once per build; make -j4."""
    name = "demo project (make -j4)"
    limit = DEMO_LIMIT

    def __init__(self, work, index):
        self.dir = work / f"demo-{index}"
        shutil.copytree(DEMO, self.dir)

    def clean(self):
        subprocess.run(["make", "-s", "-C", self.dir, "clean"], check=True)

    def command(self):
        return ["make", "-s", "-j4", "-C", self.dir]

    def built(self):
        return (self.dir / "demo").exists()


class Eigen:
    """Eigen's tests (realproject's quick targets), one configured tree per build; ninja -j8."""
    name = "Eigen's tests (ninja -j8)"
    limit = EIGEN_LIMIT

    def __init__(self, work, index):
        self.dir = work / f"eigen-{index}"
        realproject.configure(realproject.eigen_source(), self.dir)
        self.outputs = [f"test/{t}" for t in realproject.QUICK_TARGETS]

    def clean(self):
        realproject.clean(self.dir, realproject.QUICK_TARGETS)

    def command(self):
        return ["ninja", "-C", self.dir, f"-j{realproject.SLOTS}", *self.outputs]

    def built(self):
        return all((self.dir / o).exists() for o in self.outputs)


def scenario(project, builds, work, rows):
    """k builds of `project` at once: plain, memgov alone (cold, warm), memgov (cold, warm)."""
    work = work / f"{project.__name__.lower()}-x{builds}"
    work.mkdir()
    copies = [project(work, i) for i in range(builds)]
    ledger = work / "ledger"
    socket = work / "memgov.sock"

    def memgov(i, mode, stats):
        profiles = work / f"profiles-{mode}-{i}"
        where = ["--socket", socket] if mode == "daemon" else ["--ledger", "off" if mode == "alone" else ledger]
        return [bench.MEMGOV, "-q", "--stats-json", stats, "--profiles-dir", profiles, *where, "--"]

    # memgov daemon, started for its runs: its clients' ledger entries in a ledger of its own.
    daemon = None
    for label, mode, temperature in [("plain", None, None), ("memgov alone (--ledger off)", "alone", "cold"),
                                     ("memgov alone (--ledger off)", "alone", "warm"),
                                     ("memgov (host ledger)", "ledger", "cold"),
                                     ("memgov (host ledger)", "ledger", "warm"),
                                     ("memgov through the daemon", "daemon", "cold"),
                                     ("memgov through the daemon", "daemon", "warm")]:
        if mode == "daemon" and not daemon:
            daemon = subprocess.Popen([bench.MEMGOV, "daemon", "--socket", socket, "--ledger", work / "ledger-daemon"],
                                      stderr=subprocess.DEVNULL)
            for _ in range(500):
                if socket.exists():
                    break
                time.sleep(0.01)
        for copy in copies:
            copy.clean()
        stats = [work / f"stats-{i}.json" for i in range(builds)]
        for path in stats:
            path.unlink(missing_ok=True)
        commands = [((memgov(i, mode, stats[i]) if mode else []) + copy.command(), copy.dir)
                    for i, copy in enumerate(copies)]
        outcome = run_together(commands, project.limit, TIMEOUT)
        data = [realproject.read_stats(path) if mode else None for path in stats]
        row = {"project": project.name, "builds": builds, "run": label + (f", {temperature}" if temperature else ""),
               "limit_bytes": project.limit, **outcome,
               "built": sum(copy.built() for copy in copies),
               "emergency_stops": sum(d.get("emergency_stops", 0) for d in data if d) if mode else None,
               "jobs_waited": sum(d.get("jobs_waited", 0) for d in data if d) if mode else None}
        rows.append(row)
        print(f"concurrent: {project.name:26s} x{builds} {row['run']:38s} {row['seconds']:8.2f}s  "
              f"OOM {row['oom_kills']}  built {row['built']}/{builds}  exits {row['exits']}"
              f"{'  TIMEOUT' if row['timed_out'] else ''}", flush=True)
    if daemon:
        daemon.terminate()
        daemon.wait()


def concurrent(quick):
    work = Path(tempfile.mkdtemp(prefix="memgov-concurrent-", dir="/var/tmp"))
    rows = []
    try:
        scenario(Demo, 2, work, rows)
        if not quick:
            scenario(Demo, 4, work, rows)
            scenario(Eigen, 2, work, rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for row in rows:
        plain = next(r for r in rows if r["project"] == row["project"] and r["builds"] == row["builds"])
        row["ratio_to_plain"] = round(row["seconds"] / plain["seconds"], 2) if plain["seconds"] else None
    result = {"benchmark": "concurrent", "quick": quick, "timeout_seconds": TIMEOUT, "rows": rows}
    bench.write_outputs("concurrent", result, concurrent_table(result))
    return result


def concurrent_table(result):
    return bench.markdown_table(
        ["project", "builds at once", "run", "limit (MiB)", "wall (s)", "OOM kills", "builds finished",
         "jobs that waited", "emergency stops"],
        [[r["project"], r["builds"], r["run"], r["limit_bytes"] // MiB, "timeout" if r["timed_out"] else r["seconds"],
          r["oom_kills"], f"{r['built']}/{r['builds']}", r["jobs_waited"], r["emergency_stops"]]
         for r in result["rows"]])


def concurrent_failures(result):
    """What --check rejects: memgov with the ledger or through the daemon OOM-killed or failed,
    or plain not OOM-killed (the limit then tests nothing)."""
    found = []
    for row in result["rows"]:
        where = f"{row['project']} x{row['builds']}: {row['run']}"
        governed = row["run"].startswith(("memgov (host ledger)", "memgov through the daemon"))
        if governed and (row["oom_kills"] or row["timed_out"] or any(row["exits"]) or row["built"] != row["builds"]):
            found.append(f"{where}: {row['oom_kills']} OOM kills, exits {row['exits']}, timed out {row['timed_out']}")
        if row["run"] == "plain" and not (row["oom_kills"] or row["timed_out"]):
            found.append(f"{where} was not OOM-killed: the limit does not test anything")
    return [f"concurrent: {failure}" for failure in found]


if __name__ == "__main__":
    sys.exit("concurrent: run it through bench.py: sudo tools/bench/bench.py [--quick] [--check] concurrent")
