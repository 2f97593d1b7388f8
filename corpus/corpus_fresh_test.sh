#!/bin/bash
# Fails if corpus/*/seed-* differs from what //corpus:generate produces now:
# a seed is missing, stale, or no longer generated.
set -euo pipefail
generate="$1"
fresh="$(mktemp -d)"
trap 'rm -rf "$fresh"' EXIT
"$generate" "$fresh" 2>/dev/null
status=0
count=0
while IFS= read -r -d '' f; do
  rel="${f#"$fresh"/}"
  count=$((count + 1))
  if ! cmp -s "$f" "corpus/$rel"; then
    echo "STALE or MISSING: corpus/$rel (run: bazel run //corpus:generate -- \$PWD/corpus)"
    status=1
  fi
done < <(find "$fresh" -type f -print0)
while IFS= read -r -d '' f; do
  rel="${f#corpus/}"
  if [[ ! -e "$fresh/$rel" ]]; then
    echo "ORPHAN: $f is no longer generated (delete it or rename it crash-*)"
    status=1
  fi
done < <(find corpus -name 'seed-*' -print0)
echo "checked $count generated seeds"
[[ $count -gt 0 ]] || { echo "no seeds generated"; exit 1; }
exit $status
