#!/bin/bash
# //docs/threat-model:evidence_selftest: the checker must FAIL on
# testdata/broken/, and name every planted mistake. Proves evidence_test can
# fail (a checker that always passes would prove nothing).
set -uo pipefail
out=$(/usr/bin/python3 docs/threat-model/check_evidence.py --no-stale-check \
  --manifest docs/threat-model/evidence_targets.tsv \
  --docs docs/threat-model/testdata/broken 2>&1)
rc=$?
echo "$out"
status=0
[[ $rc -eq 1 ]] || { echo "SELFTEST: expected exit 1, got $rc"; status=1; }
expect() {
  if grep -qF -- "$1" <<<"$out"; then echo "SELFTEST ok: $1"
  else echo "SELFTEST MISSING: $1"; status=1; fi
}
expect "FRM-1: //core:frame_test has no test FrameTest.NoSuchTestXyzzy"
expect "FRM-2: //core:no_such_target_xyzzy is not in the evidence manifest"
expect "FRM-3: core/frame.cc has no function NoSuchFunctionXyzzy"
expect "FRM-4: mitigation file core/no_such_file_xyzzy.cc does not exist"
expect "FRM-5: missing or empty field **Residual risk:**"
expect "FRM-1: ID already used"
expect "MRG-9: ID must start with FRM-"
expect "component 'merge' has no threat"
expect "component 'node-channel':"
# The valid entries must not be reported.
if grep -qE "(LIM|COD|ACK|TRP|PRT|QTA|TRN|CAPI)-1:" <<<"$out"; then
  echo "SELFTEST: a valid fixture entry was reported"; status=1
fi
exit $status
