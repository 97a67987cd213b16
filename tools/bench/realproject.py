#!/usr/bin/env python3
"""realproject: memgov on a real C++ build, Eigen's own unit tests, built by their own CMake + Ninja.

    sudo tools/bench/bench.py [--quick] [--check] [--out DIR] realproject

Eigen (https://eigen.tuxfamily.org) is MPL-2.0. Its source is not part of this repository: it is
fetched at benchmark time from Debian's archive (source package eigen3, bookworm) with apt-get
source, under a private apt configuration (the system's sources are not touched), and cached
unpacked under /var/cache/memgov-bench/ so that reruns do not download it again.

Eigen is configured once (Release: g++ -O3, tests on), outside any memory cgroup. A fixed set of
its test executables (a few translation units that peak at ~750-900 MB, more at ~300-450 MB, and
their links) is then built again and again, from clean, each build in a fresh memory cgroup with
a limit and a timeout: a measuring run with no limit in effect (memgov --no-gate: every job's
peak, and the build's time with memory to spare), then at each limit plain ninja -j8, the largest
safe static -j (90 % of the limit / the largest peak the measuring run saw), memgov cold (no
profiles) with the targets in three orders, and memgov warm (the profiles of the first cold run).
Ninja 1.11 starts ready edges in manifest order, whatever order the command line names targets
in, so each order is a copy of build.ninja with the chosen targets' build statements permuted
(ninja -f), which changes nothing else.
Needs root (BPF, memory cgroups), apt access to deb.debian.org the first time, cmake, ninja, g++.
"""
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.dont_write_bytecode = True  # no __pycache__ left in the source tree
import bench  # noqa: E402  (run_limited, write_outputs, MEMGOV)

MiB = bench.MiB
CACHE = Path("/var/cache/memgov-bench")
SOURCE = CACHE / "eigen3"  # the unpacked Debian source tree (upstream + debian/ patches applied)
SLOTS = 8

# One test part per source file: memgov keys a compile by its source path, and Eigen builds
# several parts (-DEIGEN_TEST_PART_N) of one test.cpp; two parts of one file would share a key.
# The figures only explain the choice (g++ 12.2 -O3, 2 vCPUs; the benchmark measures the peaks
# again every run): peak, compile time alone. Each link: ~25 MB, < 1 s. The listed order
# interleaves heavy and medium ones, as a test directory's alphabetical order would.
FULL_TARGETS = ["geo_hyperplane_2",       # heavy  891 MiB, 13 s
                "inverse_2",              # medium 455 MiB,  6 s
                "sparse_block_1",         # medium 454 MiB,  7 s
                "cholesky_2",             # heavy  768 MiB, 15 s
                "triangular_2",           # medium 450 MiB,  4 s
                "mapstride_2",            # medium 415 MiB,  4 s
                "array_cwise_1",          # heavy  824 MiB,  9 s
                "vectorwiseop_2",         # medium 386 MiB,  3 s
                "adjoint_2",              # medium 362 MiB,  3 s
                "eigensolver_generic_1",  # heavy  763 MiB, 11 s
                "jacobisvd_2",            # medium 345 MiB,  3 s
                "qr_colpivoting_1",       # heavy  753 MiB, 14 s
                "redux_2",                # medium 322 MiB,  2 s
                "determinant_2"]          # medium 313 MiB,  3 s
QUICK_TARGETS = ["geo_hyperplane_2", "sparse_block_1", "cholesky_2", "triangular_2", "array_cwise_1",
                 "mapstride_2", "vectorwiseop_2"]
# Each limit holds the largest job alone with room (~400 MB at the smaller one); plain -j8 needs
# several GB. The larger one lets the static rule run two at a time.
FULL_LIMITS = [1300 * MiB, 2048 * MiB]
QUICK_LIMITS = [1300 * MiB]
MEASURE_LIMIT = 12 << 30  # the measuring run: room for all eight jobs at once
SHUFFLE_SEED = 7


# ---------------------------------------------------------------- the source, from Debian

def run_quiet(argv, **kwargs):
    """Runs argv; on failure, shows its output (which is otherwise kept quiet) and raises."""
    done = subprocess.run(list(map(str, argv)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwargs)
    if done.returncode:
        sys.stderr.write(done.stdout.decode(errors="replace")[-4000:])
        raise subprocess.CalledProcessError(done.returncode, argv)
    return done.stdout.decode(errors="replace")


def eigen_source():
    """The unpacked eigen3 source package: from the cache, else from deb.debian.org."""
    if (SOURCE / "CMakeLists.txt").exists():
        return SOURCE
    if not shutil.which("dpkg-source"):  # apt-get source unpacks (and checks the .dsc) with it
        run_quiet(["apt-get", "install", "-y", "--no-install-recommends", "dpkg-dev"],
                  env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    CACHE.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="eigen3-fetch-", dir=CACHE))
    try:
        # A private sources.list, lists and cache: deb-src for bookworm without touching the
        # system's apt configuration or its package lists.
        apt = staging / "apt"
        (apt / "lists" / "partial").mkdir(parents=True)
        (apt / "cache" / "archives" / "partial").mkdir(parents=True)
        (apt / "sources.list").write_text("deb-src http://deb.debian.org/debian bookworm main\n")
        options = ["-o", f"Dir::Etc::SourceList={apt / 'sources.list'}", "-o", "Dir::Etc::SourceParts=/dev/null",
                   "-o", f"Dir::State::Lists={apt / 'lists'}", "-o", f"Dir::Cache={apt / 'cache'}",
                   "-o", "APT::Sandbox::User=root"]  # _apt could not write into this root-owned staging dir
        print("realproject: fetching eigen3 source from deb.debian.org (once; cached in "
              f"{CACHE})", flush=True)
        run_quiet(["apt-get", *options, "update"])
        unpack = staging / "src"
        unpack.mkdir()
        run_quiet(["apt-get", *options, "source", "eigen3"], cwd=unpack)
        trees = [p for p in unpack.iterdir() if p.is_dir() and (p / "CMakeLists.txt").exists()]
        if len(trees) != 1:
            raise RuntimeError(f"apt-get source eigen3 unpacked {trees}, expected one source tree")
        trees[0].rename(SOURCE)  # atomic: a half-fetched tree is never taken for the cache
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return SOURCE


def source_version(source):
    """The Debian version, from debian/changelog's first line: 'eigen3 (3.4.0-4) unstable; ...'."""
    try:
        match = re.match(r"(\S+) \(([^)]+)\)", (source / "debian" / "changelog").read_text())
        return f"{match.group(1)} {match.group(2)}" if match else "unknown"
    except OSError:
        return "unknown"


# ---------------------------------------------------------------- the build

def configure(source, build):
    """Eigen's own CMake, Ninja generator, g++ -O3 (Release), tests on, no docs."""
    run_quiet(["cmake", "-G", "Ninja", "-S", source, "-B", build, "-DCMAKE_BUILD_TYPE=Release",
               "-DCMAKE_C_COMPILER=gcc", "-DCMAKE_CXX_COMPILER=g++", "-DBUILD_TESTING=ON",
               "-DEIGEN_BUILD_DOC=OFF", "-DEIGEN_TEST_NOQT=ON", "-DEIGEN_SPLIT_LARGE_TESTS=ON"])


def statement_blocks(lines):
    """[(first line, end)] of every build statement: its 'build' line and the indented lines
    (its variables) or $-continued lines after it."""
    blocks, i = [], 0
    while i < len(lines):
        if not lines[i].startswith("build "):
            i += 1
            continue
        start = i
        i += 1
        while i < len(lines) and (lines[i].startswith((" ", "\t")) or
                                  (len(lines[i - 1]) - len(lines[i - 1].rstrip("$"))) % 2 == 1):
            i += 1
        blocks.append((start, i))
    return blocks


def write_ordered_manifest(build, targets, name):
    """A copy of build.ninja in which the chosen targets' compile and link statements appear
    in the order given (each kind permuted among its own places, everything else untouched):
    ninja 1.11 starts ready edges in manifest order. Returns the file name, for ninja -f."""
    lines = (build / "build.ninja").read_text().split("\n")
    blocks = statement_blocks(lines)
    # Outputs: test/CMakeFiles/<t>.dir/<source>.o (compile), test/<t> (link).
    patterns = {"compile": {t: re.compile(rf"build test/CMakeFiles/{re.escape(t)}\.dir/[^ :]*\.o:") for t in targets},
                "link": {t: re.compile(rf"build test/{re.escape(t)}:") for t in targets}}
    order = {}
    for kind, by_target in patterns.items():
        found = {}
        for start, end in blocks:
            for target, pattern in by_target.items():
                if pattern.match(lines[start]):
                    if target in found:
                        raise RuntimeError(f"two {kind} statements for {target} in build.ninja")
                    found[target] = (start, end)
        missing = [t for t in targets if t not in found]
        if missing:
            raise RuntimeError(f"build.ninja has no {kind} statement for {missing}")
        places = sorted(found.values())
        for place, target in zip(places, targets):
            order[place] = found[target]
    out, i = [], 0
    for start, end in sorted(order):
        out += lines[i:start]
        source_start, source_end = order[(start, end)]
        out += lines[source_start:source_end]
        i = end
    out += lines[i:]
    (build / name).write_text("\n".join(out))
    return name


def dry_run_order(build, manifest, targets):
    """The targets in the order ninja -j1 would compile them (checks the permutation took)."""
    text = run_quiet(["ninja", "-C", build, "-f", manifest, "-n", "-j1", "-v", *[f"test/{t}" for t in targets]])
    seen = []
    for line in text.splitlines():
        match = re.search(r"-o test/CMakeFiles/([^ /]+)\.dir/\S+\.o", line)
        if match and match.group(1) not in seen:
            seen.append(match.group(1))
    return seen


def clean(build, targets):
    """Every run compiles the same work: the targets and everything built to produce them go."""
    run_quiet(["ninja", "-C", build, "-t", "clean", *[f"test/{t}" for t in targets]])


def ninja_log_seconds(build, targets):
    """Each target's compile time from .ninja_log (the last entry per output)."""
    times = {}
    try:
        for line in (build / ".ninja_log").read_text().splitlines()[1:]:
            start, end, _, output, *_ = line.split("\t")
            match = re.fullmatch(r"test/CMakeFiles/([^/]+)\.dir/.*\.o", output)
            if match and match.group(1) in targets:
                times[match.group(1)] = (int(end) - int(start)) / 1000
    except (OSError, ValueError):
        pass
    return times


# ---------------------------------------------------------------- one run

def build_env():
    """The builds run as root like the benchmark: under sudo, memgov would otherwise run them as
    the invoking user, who cannot write this root-owned build tree; plain ninja runs as root too."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SUDO_")}


def failure_lines(out):
    """The build's own account of what failed (Eigen's tests print pages of warnings)."""
    keep = re.compile(r"^(FAILED:|ninja: build stopped|memgov)|error|Killed|killed")
    return [line for line in out.splitlines() if keep.search(line)][-15:]


def read_stats(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None  # memgov killed (timeout) before it wrote them


# ---------------------------------------------------------------- the benchmark

def realproject(quick):
    targets = QUICK_TARGETS if quick else FULL_TARGETS
    limits = QUICK_LIMITS if quick else FULL_LIMITS
    source = eigen_source()
    version = source_version(source)
    work = Path(tempfile.mkdtemp(prefix="memgov-realproject-", dir="/var/tmp"))
    build = work / "build"
    rows, notes = [], []
    try:
        configure(source, build)
        shuffled = list(targets)
        random.Random(SHUFFLE_SEED).shuffle(shuffled)
        orders = {"listed order": targets, "reversed order": targets[::-1],
                  f"shuffled order, seed {SHUFFLE_SEED}": shuffled}
        if quick:
            orders = {"listed order": targets}
        manifests = {}
        for i, (label, order) in enumerate(orders.items()):
            manifests[label] = write_ordered_manifest(build, order, f"order-{i}.ninja")
            got = dry_run_order(build, manifests[label], targets)
            if got != order:
                raise RuntimeError(f"ninja -f {manifests[label]} compiles in order {got}, wanted {order}")
        listed = manifests["listed order"]
        outputs = [f"test/{t}" for t in targets]

        def ninja(jobs, manifest=listed):
            return ["ninja", "-C", build, "-f", manifest, f"-j{jobs}", *outputs]

        def memgov(profiles, stats, *extra):
            return [bench.MEMGOV, "-q", *extra, "--stats-json", stats, "--profiles-dir", profiles, "--"]

        def record(label, limit, argv, timeout, stats=None):
            clean(build, targets)
            if stats:
                Path(stats).unlink(missing_ok=True)
            outcome = bench.run_limited(argv, limit, timeout, env=build_env())
            r = {"exit": outcome["exit"], "seconds": round(outcome["seconds"], 2), "oom_kills": outcome["oom_kills"],
                 "timed_out": outcome["timed_out"], "cgroup_peak_bytes": outcome["peak_bytes"],
                 "output_tail": failure_lines(outcome["output"])}
            data = read_stats(stats) if stats else None
            r.update({"run": label, "limit_bytes": limit,
                      "emergency_stops": data.get("emergency_stops") if data else None,
                      "jobs_oom_killed": sum(bool(j.get("oom_killed")) for j in data["jobs"]) if data else None,
                      "built": sum((build / o).exists() for o in outputs), "targets": len(outputs)})
            rows.append(r)
            stops = "" if r["emergency_stops"] is None else r["emergency_stops"]
            print(f"realproject: {label:58s} {limit // MiB:6d} MiB {r['seconds']:8.2f}s  OOM {r['oom_kills']}  "
                  f"stops {stops}  exit {'timeout' if r['timed_out'] else r['exit']}  "
                  f"peak {r['cgroup_peak_bytes'] // MiB} MiB  built {r['built']}/{r['targets']}", flush=True)
            return r, data

        # Every job's peak, with memory to spare (measured, not predicted: --no-gate).
        measure_stats = work / "measure.json"
        measured, data = record(f"memgov --no-gate -- ninja -j{SLOTS} (no limit in effect: measures peaks)",
                                MEASURE_LIMIT, [*memgov(work / "p-measure", measure_stats, "--no-gate"),
                                                *ninja(SLOTS)], 1800, measure_stats)
        if not data or measured["exit"] != 0:
            raise RuntimeError(f"the measuring build failed (exit {measured['exit']}): "
                               + "\n".join(measured["output_tail"]))
        jobs = [j for j in data["jobs"] if j.get("kind") in ("compile", "link")]
        largest = max(j["peak_bytes"] for j in jobs)
        per_target = {}
        for t in targets:
            compile_job = next((j for j in jobs if j["kind"] == "compile" and f"/{t}.dir/" in " ".join(j["argv"])), None)
            link_job = next((j for j in jobs if j["kind"] == "link" and f"test/{t}" in j["argv"]), None)
            per_target[t] = {"compile_peak_bytes": compile_job and compile_job["peak_bytes"],
                             "compile_seconds_at_j8": compile_job and round(compile_job["duration_seconds"], 2),
                             "link_peak_bytes": link_job and link_job["peak_bytes"],
                             "link_seconds_at_j8": link_job and round(link_job["duration_seconds"], 2)}
        # A cgroup at its limit may thrash for minutes; no run here should need more than a
        # serial build (about twice the measuring run on 2 cores) and then some.
        timeout = max(300, 5 * measured["seconds"])
        safe_j = {}
        for limit in limits:
            if largest > 0.8 * limit:
                notes.append(f"the largest job ({largest // MiB} MiB) leaves little room in {limit // MiB} MiB")
            safe_j[limit] = max(1, int(limit * 0.9 // largest))  # LLVM_RAM_PER_COMPILE_JOB-style
            record(f"ninja -j{SLOTS}", limit, ninja(SLOTS), timeout)
            static, _ = record(f"ninja -j{safe_j[limit]} (largest safe static -j)", limit, ninja(safe_j[limit]),
                               timeout)
            static["static_j"] = True
            if limit == limits[0]:
                for t, seconds in ninja_log_seconds(build, targets).items():
                    per_target[t][f"compile_seconds_at_j{safe_j[limit]}"] = seconds
            first_profiles = None
            for i, (order, manifest) in enumerate(manifests.items()):
                profiles = work / f"p-{limit // MiB}-{i}"
                stats = work / f"cold-{limit // MiB}-{i}.json"
                record(f"memgov -- ninja -j{SLOTS} (cold, {order})", limit,
                       [*memgov(profiles, stats), *ninja(SLOTS, manifest)], timeout, stats)
                first_profiles = first_profiles or profiles
            warm_profiles = work / f"p-{limit // MiB}-warm"
            if first_profiles.exists():  # the store as the listed-order cold run left it
                shutil.copytree(first_profiles, warm_profiles)
            else:
                notes.append(f"the cold run at {limit // MiB} MiB left no profiles: the warm run starts cold")
            stats = work / f"warm-{limit // MiB}.json"
            record(f"memgov -- ninja -j{SLOTS} (warm, listed order)", limit,
                   [*memgov(warm_profiles, stats), *ninja(SLOTS)], timeout, stats)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    for r in rows:
        static = next((s for s in rows if s.get("static_j") and s["limit_bytes"] == r["limit_bytes"]), None)
        r["ratio_to_static"] = round(r["seconds"] / static["seconds"], 2) if static else None
    result = {"benchmark": "realproject", "quick": quick,
              "project": f"Eigen's test suite (Debian source package {version}, MPL-2.0), CMake + Ninja, g++ -O3",
              "targets": per_target, "limits_bytes": limits, "largest_job_bytes": largest,
              "safe_j": {str(k // MiB): v for k, v in safe_j.items()}, "timeout_seconds": round(timeout),
              "slots": SLOTS, "notes": notes, "rows": rows}
    bench.write_outputs("realproject", result, realproject_table(result))
    return result


def realproject_table(result):
    # A failed build stops early (ninja stops at the first failed job): targets built says how early.
    return bench.markdown_table(
        ["run", "limit (MiB)", "wall (s)", "× static -j's wall", "OOM kills", "emergency stops", "exit",
         "targets built", "cgroup peak (MiB)"],
        [[r["run"], r["limit_bytes"] // MiB, r["seconds"], r["ratio_to_static"], r["oom_kills"], r["emergency_stops"],
          "timeout" if r["timed_out"] else r["exit"], f"{r['built']}/{r['targets']}", r["cgroup_peak_bytes"] // MiB]
         for r in result["rows"]])


def realproject_failures(result):
    """What --check rejects: only outcomes, never timings."""
    found = []
    for row in result["rows"]:
        if row["run"].startswith("memgov") and (row["oom_kills"] or row["exit"] != 0 or row["timed_out"]):
            found.append(f"{row['run']} at {row['limit_bytes'] // MiB} MiB: {row['oom_kills']} OOM kills, "
                         f"exit {'timeout' if row['timed_out'] else row['exit']}")
        # A plain run that thrashed until the timeout shows the limit biting as well as an OOM kill.
        if row["run"] == f"ninja -j{result['slots']}" and not (row["oom_kills"] or row["timed_out"]):
            found.append(f"{row['run']} at {row['limit_bytes'] // MiB} MiB was not OOM-killed: "
                         "the limit does not test anything")
    return [f"realproject: {failure}" for failure in found]


if __name__ == "__main__":
    sys.exit("realproject: run it through bench.py: sudo tools/bench/bench.py [--quick] [--check] realproject")
