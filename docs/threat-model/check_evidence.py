#!/usr/bin/env python3
"""Checks that every claim in docs/threat-model/*.md points at real evidence.

Run by //docs/threat-model:evidence_test (see BUILD.bazel). A threat is a block

    ### FRM-3: one-line title
    - **Threat:** what the attacker does.
    - **Mitigation:** `core/frame.cc: DecodeFrameHeader` rejects ...
    - **Evidence:** `//core:frame_test FrameTest.PayloadSizeAtLimitAcceptedOnePastRejected`, `//fuzz:frame_header_fuzzer`
    - **Residual risk:** what is still open.

Rules enforced (each failure names file, threat and item):
  * every required component file exists and holds >= 1 threat; IDs are
    unique and carry the component's prefix;
  * every threat has all four fields, non-empty;
  * Mitigation: each `path: Symbol` names a file in the runfiles (the
    //:audit_sources filegroup) that contains Symbol: `Symbol(` for a
    function (qualified `Class::Method(` matches a definition), `SYMBOL =`
    for an ALL_CAPS constant. `none` is allowed only with a Residual risk.
  * Evidence: each backticked `//pkg:target` must be in the evidence
    manifest (a label list in BUILD.bazel that Bazel resolves, so it names a
    real target); a `Suite.Name` after it must be listed by that binary's
    `--gtest_list_tests` (so the test exists, is compiled in and is not
    DISABLED_). `none` is allowed and counted as unproven.
  * The manifest and the docs cite the same set of targets (no stale entries).
"""
import argparse
import os
import re
import subprocess
import sys

COMPONENTS = {  # file stem -> ID prefix
    "limits": "LIM",
    "framing": "FRM",
    "codec": "COD",
    "fd-ack": "ACK",
    "transport": "TRP",
    "ports": "PRT",
    "merge": "MRG",
    "quotas": "QTA",
    "transit": "TRN",
    "node-channel": "NOD",
    "c-api": "CAPI",
    "ring": "RNG",
}
FIELDS = ("Threat", "Mitigation", "Evidence", "Residual risk")
HEADER = re.compile(r"^### ([A-Z]+-\d+): (\S.*)$")
FIELD = re.compile(r"^- \*\*(Threat|Mitigation|Evidence|Residual risk):\*\*\s*(.*)$")
MITIGATION = re.compile(r"`([\w./-]+\.(?:h|cc|c|bzl|sh)): ([\w:~]+)`")
EVIDENCE = re.compile(r"`(//[\w/.-]*:[\w.+-]+)(?: ([\w/]+\.[\w/]+))?`")

errors = []


def err(msg):
    errors.append(msg)


def parse(path):
    """Returns [(id, title, {field: text})] in file order."""
    threats = []
    cur = None
    last_field = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            m = HEADER.match(line)
            if m:
                cur = (m.group(1), m.group(2), {})
                threats.append(cur)
                last_field = None
                continue
            if line.startswith("#"):
                cur = None  # any other heading ends the threat block
                continue
            if cur is None:
                continue
            m = FIELD.match(line)
            if m:
                last_field = m.group(1)
                if last_field in cur[2]:
                    err(f"{path}: {cur[0]}: field '{last_field}' given twice")
                cur[2][last_field] = m.group(2).strip()
            elif line.startswith("  ") and last_field:
                cur[2][last_field] += " " + line.strip()  # continuation line
            elif line.strip() == "":
                last_field = None
    return threats


def load_manifest(path):
    manifest = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            label, exe, srcs = line.rstrip("\n").split("\t")
            manifest[label] = (None if exe == "-" else exe,
                               [] if srcs == "-" else srcs.split(","))
    return manifest


_gtest_cache = {}


def gtest_names(exe):
    """Set of test names the binary reports, as Suite.Name (params stripped)."""
    if exe in _gtest_cache:
        return _gtest_cache[exe]
    names = None
    try:
        out = subprocess.run([exe, "--gtest_list_tests"], capture_output=True,
                             text=True, timeout=120, stdin=subprocess.DEVNULL)
        if out.returncode == 0:
            names = set()
            suite = None
            for line in out.stdout.splitlines():
                if not line.strip():
                    continue
                if not line.startswith(" "):
                    s = line.split("#")[0].strip()
                    if not s.endswith("."):
                        continue
                    suite = s[:-1]
                elif suite is not None:
                    name = line.split("#")[0].strip()
                    names.add(f"{suite}.{name}")
                    # INSTANTIATE_TEST_SUITE_P(Prefix, Suite, ...) / TYPED_TEST
                    # list Prefix/Suite.Name/0; cite them as Suite.Name.
                    base_suite = suite.split("/")[1] if "/" in suite else suite
                    names.add(f"{base_suite}.{name.split('/')[0]}")
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"note: cannot run {exe}: {e}", file=sys.stderr)
    _gtest_cache[exe] = names
    return names


def check_mitigation(where, text, residual):
    items = MITIGATION.findall(text)
    if not items:
        if text.lower().startswith("none") and residual:
            return 0
        err(f"{where}: Mitigation names no `file: Function` (or 'none' with a Residual risk)")
        return 0
    for path, sym in items:
        if not os.path.isfile(path):
            err(f"{where}: mitigation file {path} does not exist (or is not in //:audit_sources)")
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            src = f.read()
        if re.fullmatch(r"[A-Z][A-Z0-9_]*", sym):
            pat = r"(?<![\w:])" + re.escape(sym) + r"\s*="
            kind = "constant definition"
        else:
            pat = r"(?<![\w])" + re.escape(sym) + r"\s*\("
            kind = "function"
        if not re.search(pat, src):
            err(f"{where}: {path} has no {kind} {sym}")
    return len(items)


def check_evidence(where, text, manifest, cited):
    items = EVIDENCE.findall(text)
    if not items:
        if text.lower().startswith("none"):
            return 0
        err(f"{where}: Evidence names no `//target [Suite.Test]` (or 'none')")
        return 0
    for label, test in items:
        cited.add(label)
        if label not in manifest:
            err(f"{where}: {label} is not in the evidence manifest "
                "(add it to EVIDENCE_TARGETS in docs/threat-model/BUILD.bazel; "
                "Bazel then checks the target exists)")
            continue
        if not test:
            continue
        exe = manifest[label][0]
        if not exe or not os.access(exe, os.X_OK):
            err(f"{where}: {label} has no executable to list tests from")
            continue
        names = gtest_names(exe)
        if names is None:
            err(f"{where}: {label} is not a gtest binary (--gtest_list_tests failed); "
                f"cannot cite test {test}")
        elif test not in names:
            err(f"{where}: {label} has no test {test} "
                f"(not in --gtest_list_tests; renamed, deleted or DISABLED_?)")
    return len(items)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--docs", required=True)
    ap.add_argument("--no-stale-check", action="store_true",
                    help="do not require every manifest target to be cited")
    args = ap.parse_args()

    manifest = load_manifest(args.manifest)
    cited = set()
    seen_ids = {}
    totals = {"threats": 0, "mitigations": 0, "evidence": 0, "unproven": []}
    for stem, prefix in COMPONENTS.items():
        path = os.path.join(args.docs, stem + ".md")
        if not os.path.isfile(path):
            err(f"component '{stem}': {path} is missing")
            continue
        threats = parse(path)
        if not threats:
            err(f"{path}: component '{stem}' has no threat (### {prefix}-N: ...)")
        for tid, title, fields in threats:
            where = f"{path}: {tid}"
            totals["threats"] += 1
            if tid in seen_ids:
                err(f"{where}: ID already used in {seen_ids[tid]}")
            seen_ids[tid] = path
            if tid.split("-")[0] != prefix:
                err(f"{where}: ID must start with {prefix}-")
            for fld in FIELDS:
                if not fields.get(fld):
                    err(f"{where}: missing or empty field **{fld}:**")
            residual = fields.get("Residual risk", "")
            totals["mitigations"] += check_mitigation(where, fields.get("Mitigation", ""), residual)
            n = check_evidence(where, fields.get("Evidence", ""), manifest, cited)
            totals["evidence"] += n
            if n == 0:
                totals["unproven"].append(tid)
    if not args.no_stale_check:
        for label in sorted(set(manifest) - cited):
            err(f"{label} is in the evidence manifest but no threat cites it (stale)")

    print(f"threats: {totals['threats']}, mitigations checked: {totals['mitigations']}, "
          f"evidence items checked: {totals['evidence']}, "
          f"gtest binaries listed: {len(_gtest_cache)}")
    if totals["unproven"]:
        print("threats with no evidence (residual risks): " + ", ".join(totals["unproven"]))
    for e in errors:
        print("ERROR: " + e)
    print("FAIL" if errors else "OK")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
