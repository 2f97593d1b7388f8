#!/bin/bash -eu
# ClusterFuzzLite / OSS-Fuzz build of every moat fuzz target, with the
# compiler alone (no Bazel in the builder image):
#
#   1. every library source of the repository is compiled into libmoat.a:
#      all *.cc except tests, benchmarks, seed generators, fuzz targets, files
#      that define main() or use a test framework, and the non-library trees
#      below. Nothing to keep in sync: the linker takes from the archive only
#      what each target uses, exactly as Bazel's static linking does.
#   2. each fuzz/<name>_fuzzer.cc is linked against it and $LIB_FUZZING_ENGINE
#      into $OUT/<name>_fuzzer, with $OUT/<name>_fuzzer_seed_corpus.zip
#      (corpus/<name>_fuzzer/*) and $OUT/<name>_fuzzer.dict when present.
#
# Inputs (set by the OSS-Fuzz builder): CC CXX CFLAGS CXXFLAGS LIB_FUZZING_ENGINE OUT.
# Local check, from the repository root:
#   CC=clang-14 CXX=clang++-14 CFLAGS="-fsanitize=fuzzer-no-link,address" \
#   CXXFLAGS="-fsanitize=fuzzer-no-link,address -std=c++20" \
#   LIB_FUZZING_ENGINE=-fsanitize=fuzzer OUT=/tmp/cflout .clusterfuzzlite/build.sh [TARGET...]
# With TARGET names only those targets are linked (the library is always whole).
# The builder runs a copy at $SRC/build.sh from WORKDIR $SRC/moat (see Dockerfile).
if [[ -f fuzz/fuzz.bzl ]]; then root="$PWD"; else root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"; fi
cd "$root"
mkdir -p "$OUT"
work="${WORK:-$(mktemp -d)}/moat-cflite"
rm -rf "$work" && mkdir -p "$work/obj"

includes=(-I"$root")
# Header-only Abseil (thread-safety annotations): Debian's /usr/include has it
# locally; the Dockerfile clones it into $SRC/abseil-cpp.
[[ -n "${SRC:-}" && -d "$SRC/abseil-cpp/absl" ]] && includes+=(-I"$SRC/abseil-cpp")
cxxflags=(${CXXFLAGS} -std=c++20 "${includes[@]}")

# Trees that are not library code (tools, tests, generated or third-party files).
excluded_dirs='^\./(\.git|\.github|\.clusterfuzzlite|bazel-[^/]*|third_party|tools|property_tests|sanitizers|corpus|docs|samples)/'
library_sources() {
  find . -name '*.cc' \
    | grep -Ev "$excluded_dirs" \
    | grep -Ev '(_test|_benchmark|_seeds|_fuzzer)\.cc$|^\./fuzz/replay_main\.cc$' \
    | while read -r f; do
        # Programs and test helpers are not library code.
        grep -qE '^\s*int main\(|#include [<"](gtest|gmock|rapidcheck|benchmark)/' "$f" || echo "${f#./}"
      done | sort
}

sources=$(library_sources)
echo "libmoat.a: $(echo "$sources" | wc -l) sources"
# Object names keep the path (core/frame.cc -> core__frame.o): basenames repeat across packages.
# A source that does not compile only fails the targets that need it (as with
# Bazel); the script still exits non-zero at the end.
echo "$sources" | xargs -P "$(nproc)" -I{} sh -c \
  'cxx="$0" obj="$1/$(echo "$2" | sed "s|/|__|g; s|\.cc$|.o|")" src="$2"; shift 2
   "$cxx" "$@" -c "$src" -o "$obj" || echo "$src" >>"$(dirname "$obj")/../failed"' \
  "$CXX" "$work/obj" {} "${cxxflags[@]}"
ar rcs "$work/libmoat.a" "$work"/obj/*.o

if [[ $# -gt 0 ]]; then targets=("$@"); else
  targets=()
  for f in fuzz/*_fuzzer.cc; do targets+=("$(basename "$f" .cc)"); done
fi
failed_targets=()
for t in "${targets[@]}"; do
  echo "fuzz target: $t"
  # LIB_FUZZING_ENGINE is a list of flags or libraries: word splitting intended.
  # The standard library's templates instantiated in the target are left
  # uninstrumented, as under Bazel (why: fuzz/coverage_ignorelist.txt).
  if ! $CXX "${cxxflags[@]}" -fsanitize-coverage-ignorelist=fuzz/coverage_ignorelist.txt "fuzz/$t.cc" "$work/libmoat.a" $LIB_FUZZING_ENGINE -pthread -o "$OUT/$t"; then
    failed_targets+=("$t")
    continue
  fi
  if compgen -G "corpus/$t/*" >/dev/null; then
    rm -f "$OUT/${t}_seed_corpus.zip"
    zip -q -j "$OUT/${t}_seed_corpus.zip" corpus/"$t"/*
  fi
  [[ -f "corpus/$t.dict" ]] && cp "corpus/$t.dict" "$OUT/$t.dict"
done
echo "built $((${#targets[@]} - ${#failed_targets[@]})) of ${#targets[@]} fuzz targets into $OUT"
status=0
if [[ -s "$work/failed" ]]; then
  echo "ERROR: library sources that did not compile:"; sed 's/^/  /' "$work/failed"; status=1
fi
if [[ ${#failed_targets[@]} -gt 0 ]]; then
  echo "ERROR: fuzz targets that did not build: ${failed_targets[*]}"; status=1
fi
rm -rf "$work"
exit $status
