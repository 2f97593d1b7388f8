#!/bin/bash
# Runs `moat bench --tiny --counters=fast --json` and checks the document's
# shape and the counter ceilings (bench_json_check.py). No time is asserted.
set -euo pipefail
moat="$1"
preload="$2"
check="$3"
out="${TEST_TMPDIR:-/tmp}/bench.json"
MOAT_BENCH_PRELOAD="$preload" "$moat" bench --tiny --counters=fast --json > "$out"
python3 "$check" "$out"
