"""moat_fuzz_target: one libFuzzer-API target, three ways to run it.

    moat_fuzz_target(
        name = "frame_header_fuzzer",
        srcs = ["frame_header_fuzzer.cc"],
        deps = ["//core:frame"],
    )

defines
  :frame_header_fuzzer              the fuzzer binary. Engine by config:
                                      --config=libfuzzer  libFuzzer + ASan/UBSan
                                      --config=afl        persistent-mode AFL++ (afl driver)
                                      default             plain replay main()
  :frame_header_fuzzer_replay_test  replays //corpus/frame_header_fuzzer/* as a
                                    regression test (fails on an empty corpus).
"""

load("@rules_cc//cc:defs.bzl", "cc_binary", "cc_test")

# The standard library's template code, instantiated in each target's own
# translation unit, is not instrumented (why: fuzz/coverage_ignorelist.txt).
# The path is relative to the execroot; //fuzz:harness makes the file an
# input of the compile action.
_IGNORE_STD_COVERAGE = "-fsanitize-coverage-ignorelist=fuzz/coverage_ignorelist.txt"

def moat_fuzz_target(name, srcs, deps = [], size = "small", **kwargs):
    common_deps = deps + ["//fuzz:harness"]
    cc_binary(
        name = name,
        srcs = srcs,
        copts = select({
            "//fuzz:engine_libfuzzer": [_IGNORE_STD_COVERAGE],
            "//fuzz:engine_afl": [_IGNORE_STD_COVERAGE],
            "//conditions:default": [],
        }),
        deps = common_deps + select({
            "//fuzz:engine_libfuzzer": [],
            "//fuzz:engine_afl": [],
            "//conditions:default": ["//fuzz:replay_main"],
        }),
        linkopts = select({
            "//fuzz:engine_libfuzzer": ["-fsanitize=fuzzer"],
            "//fuzz:engine_afl": ["/usr/lib/afl/libAFLDriver.a", "-lstdc++"],
            "//conditions:default": [],
        }),
        tags = ["fuzz_target"],
        **kwargs
    )
    cc_test(
        name = name + "_replay_test",
        srcs = srcs,
        deps = common_deps + ["//fuzz:replay_main"],
        args = ["corpus/" + name],
        data = ["//corpus:" + name],
        size = size,
        **kwargs
    )
