#!/bin/bash
# The main job (README quick start): install, build, run the multi-process
# demo (a broker and child processes exchanging messages, descriptors,
# shared memory and pipe endpoints). Falls back to decoding the shipped
# sample streams if this build has no demo command.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
bazel build -c opt //tools:moat 2>&1 | tail -1
moat=bazel-bin/tools/moat
if "$moat" help | grep -q '^  demo '; then
  exec "$moat" demo "$@"
fi
for s in samples/hello.moat samples/hostile_huge_payload.moat; do
  "$moat" inspect "$s" || true
done
