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

def moat_fuzz_target(name, srcs, deps = [], size = "small", **kwargs):
    common_deps = deps + ["//fuzz:harness"]
    cc_binary(
        name = name,
        srcs = srcs,
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
