#!/bin/bash
# Every fuzz target has an inspector, so the triage command `moat fuzz` prints
# for a crash (`moat inspect FILE --as KIND`, KIND = the target's name without
# _fuzzer) works for each; and each inspector reads every seed of its target
# without a usage error (exit 0: decoded, or 1: the decoder's error, printed).
# The targets are the corpus/<target>/ directories (each fuzz target has one:
# its replay test fails on an empty corpus).
set -uo pipefail
moat="$1"
fail=0
list=$("$moat" inspect --list)
targets=0
for dir in corpus/*_fuzzer; do
  [[ -d "$dir" ]] || continue
  targets=$((targets + 1))
  target=$(basename "$dir")
  kind=${target%_fuzzer}
  if ! grep -qE "^$kind " <<<"$list"; then
    echo "FAIL: fuzz target $target has no inspector '$kind' (add one to tools/inspect/fuzz_inputs.cc)"
    fail=1
    continue
  fi
  for input in "$dir"/*; do
    out=$("$moat" inspect "$input" --as "$kind" 2>&1); rc=$?
    if [[ $rc -ne 0 && $rc -ne 1 ]] || [[ $(wc -l <<<"$out") -lt 2 ]]; then
      echo "FAIL: moat inspect $input --as $kind: exit $rc:"; echo "$out" | head -5; fail=1
    fi
  done
done
[[ $targets -ge 12 ]] || { echo "FAIL: only $targets corpus/*_fuzzer directories found"; fail=1; }
[[ $fail -eq 0 ]] && echo "inspectors_test: $targets fuzz targets, each with an inspector that reads its seeds"
exit $fail
