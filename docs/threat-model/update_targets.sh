#!/bin/bash
# Rewrites EVIDENCE_TARGETS in BUILD.bazel to the labels cited on the
# Evidence lines of *.md. evidence_test fails until the two agree; Bazel then
# fails to build this package if a cited label names no target.
set -euo pipefail
cd "$(dirname "$0")"
targets=$(grep -h '^- \*\*Evidence:\*\*' ./*.md | grep -oE '`//[^ `]+' | tr -d '`' | sort -u)
/usr/bin/python3 - "$targets" <<'PY'
import re, sys
labels = [l for l in sys.argv[1].split("\n") if l]
body = "".join(f'    "{l}",\n' for l in labels)
src = open("BUILD.bazel").read()
new = re.sub(r"EVIDENCE_TARGETS = \[\n.*?\n\]", "EVIDENCE_TARGETS = [\n" + body + "]", src, count=1, flags=re.S)
open("BUILD.bazel", "w").write(new)
print(f"{len(labels)} evidence targets")
PY
