#!/usr/bin/env bash
# The whole test suite, from nothing: dependencies, build, unit and integration tests.
# Integration tests load BPF programs: run as root (they report themselves skipped otherwise).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tools/build.sh"
ctest --test-dir "$root/build" --output-on-failure "$@"
