#!/usr/bin/env bash
# The whole test suite, from nothing: dependencies, build, then
#   1. unit and integration tests (ctest),
#   2. the same under AddressSanitizer + UndefinedBehaviorSanitizer,
#   3. a short run of every fuzzer on its corpus,
#   4. every benchmark but realproject in quick mode, checked for outcomes (no OOM kill under
#      memgov, cold runs of random irregular jobs included; plain make OOM-killed; BPF peaks
#      exact; no event dropped); timings are reported, not judged.
# Integration tests and benchmarks load BPF programs: run as root (tests report themselves
# skipped otherwise; the benchmarks are skipped). MEMGOV_QUICK=1 skips 2 to 4.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tools/build.sh"
echo "== format (.clang-format; apply with: clang-format -i FILE…)"
find "$root/userspace" "$root/tests" "$root/bpf" "$root/include" -name '*.cpp' -o -name '*.h' -o -name '*.c' |
  grep -v '/corpus/' | xargs clang-format --dry-run --Werror
echo "== unit and integration tests"
# ctest runs each test case alone, by name; CMake cuts a name at ';', and the cut name
# would select no test case and pass.
# (A name may be split over lines into adjacent string literals: perl reads each file whole.)
if perl -0ne 'while (/TEST_CASE\(\s*((?:"[^"]*"\s*)+)\)/g) { my $n = $1; print "$ARGV: $n\n" if $n =~ /;/ }' \
    "$root"/tests/*/*.cpp | grep .; then
  echo "test.sh: a test case name above has ';', which ctest cannot select it by: use ','" >&2
  exit 1
fi
ctest --test-dir "$root/build" --output-on-failure "$@"
[[ ${MEMGOV_QUICK:-0} == 1 ]] && exit 0

echo "== the same tests under ASan + UBSan"
cmake -S "$root" -B "$root/build-asan" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DMEMGOV_SANITIZE=ON >/dev/null
cmake --build "$root/build-asan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir "$root/build-asan" --output-on-failure "$@"

echo "== fuzzers, 20 s each"
"$root/tools/fuzz.sh" 20

echo "== benchmarks, quick mode (results in a temporary directory; docs/bench is left alone)"
if [[ $(id -u) != 0 ]]; then
  echo "skipped: the benchmarks need root (BPF, memory cgroups)"
  exit 0
fi
bench_out=$(mktemp -d)
trap 'rm -rf "$bench_out"' EXIT
"$root/tools/bench/bench.py" --quick --check --out "$bench_out" memstorm whatif concurrent accuracy overhead latency scale robustness
