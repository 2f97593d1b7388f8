"""moat_library: libmoat.a and libmoat.so from cc_library deps.

Bazel 4 has no static-library rule and a linkshared cc_binary links only the
objects something references, so this rule does both itself:

  * the deps are built with -fvisibility=hidden -fvisibility-inlines-hidden
    and without sanitizer flags (a transition: no command-line flag to
    forget), so only declarations marked MOAT_EXPORT are visible;
  * libmoat.a: every (position-independent) object of the deps, so it can be
    linked into an executable or into the embedder's own shared library;
  * libmoat.so: that archive linked whole with the version script (only
    Moat* symbols are global, version node MOAT_<MAJOR>), SONAME
    libmoat.so.<MAJOR>, -z defs (no undefined symbol), -z now, -z relro.

MAJOR is read from MOAT_VERSION_MAJOR in the public header.
"""

load("@bazel_tools//tools/cpp:toolchain_utils.bzl", "find_cpp_toolchain")

_HIDDEN = ["-fvisibility=hidden", "-fvisibility-inlines-hidden"]

def _hidden_visibility_impl(settings, attr):
    # What is installed is never sanitizer-instrumented (a plain `cc` links
    # it): under --config=asan/tsan/libfuzzer the deps are built without it.
    copts = [
        c
        for c in settings["//command_line_option:copt"]
        if not c.startswith("-fsanitize") and not c.startswith("-fno-sanitize")
    ]
    return {"//command_line_option:copt": copts + [c for c in _HIDDEN if c not in copts]}

hidden_visibility = transition(
    implementation = _hidden_visibility_impl,
    inputs = ["//command_line_option:copt"],
    outputs = ["//command_line_option:copt"],
)

def _moat_library_impl(ctx):
    cc_toolchain = find_cpp_toolchain(ctx)
    objects = {}  # ordered set: a library appears once per dependent
    link_flags = []
    for dep in ctx.attr.deps:
        for linker_input in dep[CcInfo].linking_context.linker_inputs.to_list():
            link_flags += [f for f in linker_input.user_link_flags if f not in link_flags]
            for lib in linker_input.libraries:
                for o in lib.pic_objects or lib.objects:
                    objects[o] = True
    objects = objects.keys()
    static = ctx.actions.declare_file("libmoat.a")
    shared = ctx.actions.declare_file("libmoat.so")

    # Object basenames repeat across packages (ar would replace one by the
    # other): each is copied under its full path with / turned into _.
    ctx.actions.run_shell(
        inputs = objects,
        outputs = [static],
        tools = cc_toolchain.all_files,
        command = """set -eu
ar="{ar}"; case "$ar" in /*) ;; *) ar="$PWD/$ar" ;; esac
tmp=$(mktemp -d)
for o in "$@"; do cp "$o" "$tmp/$(echo "$o" | sed 's|^bazel-out/[^/]*/bin/||; s|/|_|g')"; done
rm -f {out}
(cd "$tmp" && "$ar" rcsD "$OLDPWD/{out}" $(ls | sort)) || {{ rm -rf "$tmp"; exit 1; }}
rm -rf "$tmp"
""".format(ar = cc_toolchain.ar_executable, out = static.path),
        arguments = [o.path for o in objects],
        mnemonic = "MoatStaticLibrary",
        progress_message = "Archiving libmoat.a",
    )
    ctx.actions.run_shell(
        inputs = [static, ctx.file.version_script, ctx.file.header],
        outputs = [shared],
        tools = cc_toolchain.all_files,
        command = """set -eu
major=$(sed -n 's/^#define MOAT_VERSION_MAJOR \\([0-9]*\\)$/\\1/p' {header})
[ -n "$major" ] || {{ echo "no MOAT_VERSION_MAJOR in {header}" >&2; exit 1; }}
sed "s/@MAJOR@/$major/" {script} > {out}.map
{cc} -shared -o {out} -Wl,-soname,libmoat.so.$major -Wl,--version-script={out}.map \
  -Wl,-z,defs -Wl,-z,now -Wl,-z,relro \
  -Wl,--whole-archive {static} -Wl,--no-whole-archive {flags} -lstdc++ -lm -lpthread
rm -f {out}.map
""".format(
            header = ctx.file.header.path,
            script = ctx.file.version_script.path,
            out = shared.path,
            cc = cc_toolchain.compiler_executable,
            static = static.path,
            flags = " ".join(link_flags),
        ),
        mnemonic = "MoatSharedLibrary",
        progress_message = "Linking libmoat.so",
    )
    return [DefaultInfo(
        files = depset([static, shared]),
        runfiles = ctx.runfiles(files = [static, shared]),
    )]

moat_library = rule(
    implementation = _moat_library_impl,
    attrs = {
        "deps": attr.label_list(providers = [CcInfo], cfg = hidden_visibility),
        "header": attr.label(allow_single_file = [".h"], mandatory = True),
        "version_script": attr.label(allow_single_file = True, mandatory = True),
        "_cc_toolchain": attr.label(default = "@bazel_tools//tools/cpp:current_cc_toolchain"),
        "_allowlist_function_transition": attr.label(
            default = "@bazel_tools//tools/allowlists/function_transition_allowlist",
        ),
    },
    toolchains = ["@bazel_tools//tools/cpp:toolchain_type"],
    incompatible_use_toolchain_transition = True,
)
