#!/usr/bin/env python3
"""memcg: a small machine for a test, a benchmark or the demo: a child memory cgroup of the
caller's own (cgroup v1 `memory` hierarchy where there is one, else v2), with a limit.

    memcg.py make LIMIT NAME     create it (LIMIT in bytes, or with K/M/G); prints its directory
    memcg.py run DIR CMD...      run CMD inside it (this process moves in, then execs CMD)
    memcg.py limit DIR LIMIT     change its limit
    memcg.py oom-kills DIR       how many OOM kills it has seen
    memcg.py remove DIR          kill everything in it and remove it (waits up to 30 s)

The benchmarks import it (Cgroup); the demo and the integration tests run it. A cgroup at its
limit with no swap can thrash for minutes instead of OOM-killing: give every run in it a timeout.
"""
import os
import signal
import sys
import time
from pathlib import Path

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(text):
    """'800M' -> 838860800; a plain number is bytes."""
    unit = text[-1:].upper() if text[-1:].isalpha() else ""
    if unit not in _UNITS:
        raise ValueError(f"bad size {text!r}: expected bytes or a number with K, M or G")
    return int(text[: len(text) - len(unit)]) * _UNITS[unit]


class Cgroup:
    """A child memory cgroup of ours with a limit; removed (processes killed) on close."""

    def __init__(self, limit_bytes, name=None):
        lines = Path("/proc/self/cgroup").read_text().splitlines()
        v1 = [l.split(":", 2)[2] for l in lines if "memory" in l.split(":")[1].split(",")]
        if v1:
            self.v2 = False
            base = Path("/sys/fs/cgroup/memory" + v1[0].rstrip("/"))
        else:
            self.v2 = True
            v2 = [l.split(":", 2)[2] for l in lines if l.startswith("0::")][0]
            root = Path("/sys/fs/cgroup")
            if not (root / "cgroup.controllers").exists():
                root = root / "unified"
            base = Path(str(root) + v2.rstrip("/"))
        self.dir = base / (name or f"memgov-{os.getpid()}")
        self.dir.mkdir()
        self.set_limit(limit_bytes)

    @classmethod
    def existing(cls, directory):
        """The cgroup at `directory`, made earlier (by `memcg.py make`)."""
        cgroup = cls.__new__(cls)
        cgroup.dir = Path(directory)
        cgroup.v2 = (cgroup.dir / "memory.max").exists()
        cgroup.limit = None
        return cgroup

    def set_limit(self, limit_bytes):
        self.limit = limit_bytes
        (self.dir / ("memory.max" if self.v2 else "memory.limit_in_bytes")).write_text(str(limit_bytes))

    def usage(self):
        try:
            return int((self.dir / ("memory.current" if self.v2 else "memory.usage_in_bytes")).read_text())
        except (OSError, ValueError):
            return 0

    def peak(self):
        """The kernel's high-water mark, where it keeps one (v1; v2 from Linux 5.19); else None."""
        try:
            return int((self.dir / ("memory.peak" if self.v2 else "memory.max_usage_in_bytes")).read_text())
        except (OSError, ValueError):
            return None

    def oom_kills(self):
        text = (self.dir / ("memory.events" if self.v2 else "memory.oom_control")).read_text()
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def wrap(self, argv):
        """argv that runs `argv` inside the cgroup (a shell moves itself in, then execs it)."""
        return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(self.dir / "cgroup.procs"), *map(str, argv)]

    def kill_all(self):
        """SIGKILLs everything in the cgroup until it is empty (new forks included); cgroup v1
        has no cgroup.kill."""
        for _ in range(100):
            try:
                pids = (self.dir / "cgroup.procs").read_text().split()
            except OSError:  # removed already
                return
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)

    def close(self):
        """Kills what is left and removes the cgroup, waiting up to 30 s: a process stuck in the
        kernel after a thrash can take a while to die, and the next cgroup may reuse the name."""
        for _ in range(300):
            self.kill_all()
            try:
                self.dir.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)


def main(argv):
    usage = "usage: memcg.py make LIMIT NAME | run DIR CMD... | limit DIR LIMIT | oom-kills DIR | remove DIR"
    if len(argv) < 2:
        sys.exit(usage)
    command, args = argv[1], argv[2:]
    if command == "make" and len(args) == 2:
        print(Cgroup(parse_size(args[0]), args[1]).dir)
    elif command == "run" and len(args) >= 2:
        (Path(args[0]) / "cgroup.procs").write_text(str(os.getpid()))
        os.execvp(args[1], args[1:])
    elif command == "limit" and len(args) == 2:
        Cgroup.existing(args[0]).set_limit(parse_size(args[1]))
    elif command == "oom-kills" and len(args) == 1:
        print(Cgroup.existing(args[0]).oom_kills())
    elif command == "remove" and len(args) == 1:
        Cgroup.existing(args[0]).close()
    else:
        sys.exit(usage)


if __name__ == "__main__":
    main(sys.argv)
