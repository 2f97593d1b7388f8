#!/bin/bash
# `moat demo` must exit 0 and show every step checked out.
set -uo pipefail
moat="$1"
out=$("$moat" demo 2>&1)
rc=$?
echo "$out"
[[ $rc -eq 0 ]] || { echo "FAIL: moat demo exited $rc"; exit 1; }
for line in \
  "child A: pid" "child B: pid" \
  "[1] messages both ways" "(echoed by pid" \
  "[2] descriptor passed and used" "read from the read end: \"written through the passed pipe by pid" \
  "[3] shared memory" "B wrote back into the same pages" \
  "[4] pipe endpoint A -> broker -> B" "B got A->B #1, A->B #2, A->B #3 in order" "A got \"hello A, this is B" \
  "[5] fuse two pipes" "B read on Q: \"through two fused pipes\"" \
  "[6] quota exceeded and drained" "QUOTA_EXCEEDED" "drained 6 messages in order" \
  "[7] child killed, others told" "broker: lost node A:" "B: PEER_CLOSED on the pipe to A" \
  "demo: all 7 steps checked out"; do
  grep -qF -- "$line" <<<"$out" || { echo "FAIL: missing line: $line"; exit 1; }
done
[[ $(grep -c "^    ok$" <<<"$out") -eq 7 ]] || { echo "FAIL: not every step said ok"; exit 1; }
echo PASS
