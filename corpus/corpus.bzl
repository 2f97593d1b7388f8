"""One filegroup per corpus directory: //corpus:<target> holds corpus/<target>/**."""

def corpus_filegroups():
    dirs = {}
    for f in native.glob(["*/**"], exclude = ["*.bzl", "BUILD.bazel"]):
        dirs[f.split("/")[0]] = True
    for d in dirs.keys():
        native.filegroup(
            name = d,
            srcs = native.glob([d + "/**"]),
            visibility = ["//visibility:public"],
        )
    native.filegroup(
        name = "all",
        srcs = native.glob(["*/**"]),
        visibility = ["//visibility:public"],
    )
