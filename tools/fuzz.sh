#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan+UBSan) and runs each for SECONDS (default 20)
# on the checked-in corpus (tests/fuzz/corpus/*). New inputs go to a scratch copy, so the
# checked-in corpus only changes by hand. Exit non-zero on any crash.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-20}
build="$root/build-fuzz"
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DMEMGOV_FUZZ=ON -DBUILD_TESTING=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target fuzz_profiles fuzz_job_key fuzz_events fuzz_daemon_message
for target in profiles job_key events daemon_message; do
  scratch=$(mktemp -d)
  cp -r "$root/tests/fuzz/corpus/$target/." "$scratch/"
  echo "fuzz: $target for ${seconds}s"
  "$build/tests/fuzz/fuzz_$target" -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix="$build/crash-$target-" "$scratch" 2>&1 | grep -E '^(stat::number_of_executed_units|stat::new_units_added|==[0-9]+==ERROR|SUMMARY)' || true
  rm -rf "$scratch"
  if ls "$build"/crash-"$target"-* >/dev/null 2>&1; then
    echo "fuzz: $target crashed: $(ls "$build"/crash-"$target"-*)" >&2
    exit 1
  fi
done
