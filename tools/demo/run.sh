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
memcg="$root/tools/memcg.py"
cgroup=""
cleanup() {
  [[ -n $cgroup ]] && python3 "$memcg" remove "$cgroup"
  rm -rf "$work"
}
trap cleanup EXIT

# A child of this shell's memory cgroup, limited to $limit.
cgroup=$(python3 "$memcg" make "$limit" "memgov-demo-$$")
oom_kills() { python3 "$memcg" oom-kills "$cgroup"; }
in_cgroup() { python3 "$memcg" run "$cgroup" "$@"; }

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
