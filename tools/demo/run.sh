#!/usr/bin/env bash
# Sets memgov up from nothing and runs it on the bundled demo build (tools/demo/project):
# a C++ project whose translation units need from 50 MB to 700 MB each.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
if [[ $(id -u) -ne 0 ]]; then
  echo "demo: memgov loads BPF programs: run it with sudo" >&2
  exit 1
fi
"$root/tools/build.sh"
"$root/build/memgov" check

work=$(mktemp -d /tmp/memgov-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -r "$root/tools/demo/project/." "$work/"
[[ -n "${SUDO_UID:-}" ]] && chown -R "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" "$work"

echo
echo "demo: sudo memgov -- make -j4   (in $work)"
"$root/build/memgov" --stats-json "$work/stats.json" -- make -C "$work" -j4
echo "demo: every process and job, with its peak memory, is in stats.json (--stats-json)"
