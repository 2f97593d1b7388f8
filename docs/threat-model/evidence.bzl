"""evidence_manifest: the Bazel targets the threat model cites as evidence.

    evidence_manifest(
        name = "evidence_targets",
        targets = ["//core:frame_test", "//fuzz:frame_header_fuzzer"],
    )

writes `<name>.tsv`, one line per target:

    //core:frame_test <TAB> core/frame_test <TAB> core/frame_test.cc,...

(label, runfiles path of its executable, its srcs) and puts each target's
executable and runfiles into the runfiles of whoever depends on it, so a test
can run `<exe> --gtest_list_tests`.

Why a rule and not a list of strings: a label here that names no target fails
analysis of //docs/threat-model, so a renamed or deleted test cannot be cited
silently. check_evidence.py then requires this list and the labels cited in
the docs to be the same set, so the docs cannot cite a target this rule does
not resolve either.
"""

EvidenceSrcsInfo = provider(fields = ["srcs"])

def _srcs_aspect_impl(target, ctx):
    files = []
    if hasattr(ctx.rule.attr, "srcs"):
        for s in ctx.rule.attr.srcs:
            files.extend(s.files.to_list())
    return [EvidenceSrcsInfo(srcs = files)]

_srcs_aspect = aspect(implementation = _srcs_aspect_impl)

def _label_str(label):
    s = str(label)
    if s.startswith("@//"):
        s = s[1:]
    if s.startswith("@moat//"):
        s = s[5:]
    return s

def _impl(ctx):
    lines = []
    runfiles = ctx.runfiles()
    for t in ctx.attr.targets:
        exe = t[DefaultInfo].files_to_run.executable
        srcs = t[EvidenceSrcsInfo].srcs if EvidenceSrcsInfo in t else []
        lines.append("\t".join([
            _label_str(t.label),
            exe.short_path if exe else "-",
            ",".join([s.short_path for s in srcs]) or "-",
        ]))
        runfiles = runfiles.merge(t[DefaultInfo].default_runfiles)
        runfiles = runfiles.merge(ctx.runfiles(files = srcs))
    out = ctx.actions.declare_file(ctx.label.name + ".tsv")
    ctx.actions.write(out, "\n".join(lines) + "\n")
    return [DefaultInfo(files = depset([out]), runfiles = runfiles.merge(ctx.runfiles(files = [out])))]

evidence_manifest = rule(
    implementation = _impl,
    attrs = {
        "targets": attr.label_list(aspects = [_srcs_aspect], cfg = "target"),
    },
)
