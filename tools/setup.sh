#!/bin/bash
# Installs exactly what moat needs on Debian bookworm. Idempotent: a package
# already installed is left alone, so this is fast on a prepared machine.
set -euo pipefail
PACKAGES=(
  bazel-bootstrap bazel-rules-java bazel-platforms   # Bazel 4.2.3 + offline rule repos
  clang-14 libclang-rt-14-dev libfuzzer-14-dev       # compiler, sanitizers, libFuzzer
  afl++                                              # second fuzzing engine
  libabsl-dev                                        # thread-safety annotations (headers)
  libgtest-dev libgmock-dev librapidcheck-dev        # tests and property tests
  libbenchmark-dev                                   # benchmarks
  gcc g++ pkg-config cmake                           # out-of-tree libmoat test (//packaging:install_test)
)
missing=()
for p in "${PACKAGES[@]}"; do
  [[ "$p" == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi
SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
echo "setup: installing ${missing[*]}"
$SUDO apt-get install -y -q "${missing[@]}" >/dev/null || {
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q "${missing[@]}" >/dev/null
}
echo "setup: done"
