#!/bin/bash
# Builds libmoat (bazel -c opt) and installs what an embedder needs:
#
#   PREFIX/include/moat/moat.h moat.hpp     the public headers, nothing else
#   PREFIX/lib/libmoat.a                    static (PIC, hidden visibility)
#   PREFIX/lib/libmoat.so.X.Y.Z             shared, SONAME libmoat.so.X
#   PREFIX/lib/libmoat.so.X, libmoat.so     symlinks
#   PREFIX/lib/pkgconfig/moat.pc
#   PREFIX/lib/cmake/moat/moatConfig.cmake moatConfigVersion.cmake
#
# X.Y.Z is MOAT_VERSION_MAJOR/MINOR/PATCH from moat.h. Policy: docs/abi.md.
#
#   tools/install.sh /usr/local
#   DESTDIR=/tmp/stage tools/install.sh /usr     # staged (files under DESTDIR)
#   tools/install.sh --prebuilt DIR PREFIX       # DIR holds libmoat.a and
#       libmoat.so from `bazel build -c opt //packaging:libmoat`: install
#       without building (how //packaging:install_test runs it inside Bazel)
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  echo "usage: tools/install.sh [--prebuilt DIR] PREFIX"
}

prebuilt=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --prebuilt)
      [[ $# -ge 2 ]] || { echo "install.sh: --prebuilt needs a directory" >&2; usage >&2; exit 2; }
      prebuilt="$2"; shift 2 ;;
    -*) echo "install.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    *) break ;;
  esac
done
if [[ $# -ne 1 ]]; then
  echo "install.sh: expected exactly one PREFIX, got $#" >&2; usage >&2; exit 2
fi
prefix="$1"
[[ "$prefix" == /* ]] || prefix="$PWD/$prefix"
prefix="${prefix%/}"
dest="${DESTDIR:-}$prefix"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
header="$root/include/moat/moat.h"
version_part() { sed -n "s/^#define MOAT_VERSION_$1 \([0-9]*\)\$/\1/p" "$header"; }
major=$(version_part MAJOR); minor=$(version_part MINOR); patch=$(version_part PATCH)
if [[ -z "$major" || -z "$minor" || -z "$patch" ]]; then
  echo "install.sh: no MOAT_VERSION_MAJOR/MINOR/PATCH in $header" >&2; exit 1
fi
version="$major.$minor.$patch"

if [[ -z "$prebuilt" ]]; then
  (cd "$root" && bazel build -c opt //packaging:libmoat)
  prebuilt="$(cd "$root" && bazel info -c opt bazel-bin)/packaging"
fi
for f in libmoat.a libmoat.so; do
  [[ -f "$prebuilt/$f" ]] || { echo "install.sh: $prebuilt/$f not found" >&2; exit 1; }
done

fill() {  # template output
  sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" -e "s|@MAJOR@|$major|g" \
      -e "s|@MINOR@|$minor|g" -e "s|@PATCH@|$patch|g" "$1" >"$2"
  chmod 644 "$2"
}

mkdir -p "$dest/include/moat" "$dest/lib/pkgconfig" "$dest/lib/cmake/moat"
for h in "$root"/include/moat/*.h "$root"/include/moat/*.hpp; do
  install -m 644 "$h" "$dest/include/moat/$(basename "$h")"   # follows the moat.h symlink
done
install -m 644 "$prebuilt/libmoat.a" "$dest/lib/libmoat.a"
install -m 755 "$prebuilt/libmoat.so" "$dest/lib/libmoat.so.$version"
ln -sfn "libmoat.so.$version" "$dest/lib/libmoat.so.$major"
ln -sfn "libmoat.so.$major" "$dest/lib/libmoat.so"
fill "$root/packaging/moat.pc.in" "$dest/lib/pkgconfig/moat.pc"
fill "$root/packaging/moatConfig.cmake.in" "$dest/lib/cmake/moat/moatConfig.cmake"
fill "$root/packaging/moatConfigVersion.cmake.in" "$dest/lib/cmake/moat/moatConfigVersion.cmake"
echo "installed moat $version into $dest"
