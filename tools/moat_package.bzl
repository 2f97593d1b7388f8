"""Targets every moat library package declares, in one place.

    load("//tools:moat_package.bzl", "moat_audit_srcs", "moat_seeds")
    moat_audit_srcs()
    moat_seeds(deps = [":frame"])
"""

load("@rules_cc//cc:defs.bzl", "cc_library")

def moat_audit_srcs():
    """:audit_srcs, every source of the package, read by the checks that
    scan code: //fuzz:decoder_coverage_test (MOAT_DECODER) and
    //docs/threat-model:evidence_test (named mitigations)."""
    native.filegroup(
        name = "audit_srcs",
        srcs = native.glob(["**/*.h", "**/*.cc", "**/*.c"]),
    )

def moat_seeds(deps = [], **kwargs):
    """:seeds, the package's seed-corpus generators (*_seeds.cc files with
    MOAT_REGISTER_SEEDS), linked into //corpus:generate."""
    cc_library(
        name = "seeds",
        srcs = native.glob(["*_seeds.cc"]),
        deps = deps + ["//corpus:seed_registry"],
        alwayslink = 1,
        **kwargs
    )
