#!/usr/bin/env bash
# Sets memgov up from nothing and shows what it is for: the bundled C++ project
# (tools/demo/project: two translation units of ~480 MB, two small ones, a link) is built
# with make -j4 inside a memory cgroup limited to 800 MB that this script creates.
# Plain make is OOM-killed there; memgov finishes it, then finishes it faster once it has
# learned every file's peak.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
limit=${MEMGOV_DEMO_LIMIT:-800M}
if [[ $(id -u) -ne 0 ]]; then
  echo "demo: memgov loads BPF programs and the demo makes a memory cgroup: run it with sudo" >&2
  exit 1
fi
"$root/tools/build.sh"
"$root/build/memgov" check

work=$(mktemp -d /tmp/memgov-demo.XXXXXX)
profiles="$work/profiles"
cgroup=""
cleanup() {
  if [[ -n $cgroup && -d $cgroup ]]; then
    xargs -r kill -9 < "$cgroup/cgroup.procs" 2>/dev/null || true
    sleep 0.2
    rmdir "$cgroup" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# A child of this shell's memory cgroup (v1 hierarchy, else v2), limited to $limit.
v1_path=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ {print $3}' /proc/self/cgroup)
if [[ -n $v1_path ]]; then
  cgroup="/sys/fs/cgroup/memory${v1_path%/}/memgov-demo-$$"
  mkdir "$cgroup"
  echo "$limit" > "$cgroup/memory.limit_in_bytes"
  oom_file="$cgroup/memory.oom_control"
else
  v2_path=$(awk -F: '$1 == "0" {print $3}' /proc/self/cgroup)
  base=/sys/fs/cgroup
  [[ -f $base/cgroup.controllers ]] || base=/sys/fs/cgroup/unified
  cgroup="$base${v2_path%/}/memgov-demo-$$"
  mkdir "$cgroup"
  echo "$limit" > "$cgroup/memory.max"
  oom_file="$cgroup/memory.events"
fi
oom_kills() { awk '$1 == "oom_kill" {print $2}' "$oom_file"; }
in_cgroup() { sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cgroup" "$@"; }

build() {  # label, command...
  local label=$1; shift
  rm -rf "$work/project"; cp -r "$root/tools/demo/project" "$work/project"
  local before; before=$(oom_kills)
  local start=$EPOCHREALTIME
  local status=0
  in_cgroup "$@" >"$work/out.txt" 2>&1 || status=$?
  local seconds; seconds=$(awk "BEGIN {print $EPOCHREALTIME - $start}")
  printf 'demo: %-28s exit %3d  %5.1fs  OOM kills: %d\n' "$label" "$status" "$seconds" $(( $(oom_kills) - before ))
}

echo
echo "demo: make -j4 of tools/demo/project inside a memory cgroup limited to $limit"
build "make -j4" make -s -j4 -C "$work/project"
build "memgov -- make -j4 (cold)" "$root/build/memgov" -q --profiles-dir "$profiles" -- make -s -j4 -C "$work/project"
build "memgov -- make -j4 (warm)" "$root/build/memgov" --profiles-dir "$profiles" \
  --stats-json "$work/stats.json" -- make -s -j4 -C "$work/project"
echo
sed -n '/^memgov/,$p' "$work/out.txt"
