#!/usr/bin/env bash
# Installs memgov's build and test dependencies from Debian 12's archive.
# Idempotent: packages already present are skipped, so a second run is fast and offline.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  clang llvm            # clang -target bpf compiles bpf/*.bpf.c; llvm-strip trims the object
  clang-format          # the source's one format (.clang-format), checked by tools/test.sh
  libbpf-dev bpftool    # skeleton loader and skeleton/vmlinux.h generator
  libelf-dev zlib1g-dev # libbpf's own link dependencies
  libcli11-dev          # command line parsing
  libfmt-dev            # formatting for log lines and reports
  doctest-dev           # unit tests
  libclang-rt-14-dev    # libFuzzer and the sanitizers for clang (tools/fuzz.sh)
  nlohmann-json3-dev    # JSON for --stats-json and the profile store (escapes argv bytes safely)
  make ninja-build      # build tools the integration tests govern
  tmux                  # drives memgov in a real terminal in the bar test
  util-linux procps     # setpriv (unprivileged test), ps
  parallel              # GNU parallel --memfree/--memsuspend: an alternative the benchmarks measure
  python3               # the benchmark driver (tools/bench/bench.py)
  libcap2-bin           # setcap: the file-capabilities test runs memgov without root
  distcc                # a distributed-compile worker (distccd) the integration tests govern
  icecc iproute2        # icecream's scheduler and daemons; a network namespace for its worker (tests)
  chromium              # renders memgov report --html in a test (headless screenshot)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: need root to install: ${missing[*]} (run with sudo)" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
