#!/bin/bash
# //docs/threat-model:evidence_test: every threat's mitigation and evidence
# exist (see check_evidence.py for the rules). Runs from the runfiles root.
set -euo pipefail
exec /usr/bin/python3 docs/threat-model/check_evidence.py \
  --manifest docs/threat-model/evidence_targets.tsv --docs docs/threat-model
