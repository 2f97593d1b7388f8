#!/bin/bash
# libmoat as an embedder gets it: tools/install.sh into a scratch PREFIX, then
# out-of-tree C and C++ programs built with the system's plain cc/c++ and
# pkg-config (and CMake's find_package when cmake is installed), against the
# installed files only, and run. Also checks what the library exports.
#   args: libmoat.a libmoat.so
set -euo pipefail
static_lib="$1"
prebuilt="$(cd "$(dirname "$static_lib")" && pwd)"
root="$PWD"   # the runfiles tree: tools/install.sh, include/, packaging/
work="${TEST_TMPDIR:-$(mktemp -d)}/install_test"
rm -rf "$work" && mkdir -p "$work"
prefix="$work/prefix"
fail() { echo "FAIL: $*" >&2; exit 1; }

echo "--- install"
tools/install.sh --prebuilt "$prebuilt" "$prefix"
lib="$prefix/lib"
header="$prefix/include/moat/moat.h"
major=$(sed -n 's/^#define MOAT_VERSION_MAJOR \([0-9]*\)$/\1/p' "$header")
version="$major.$(sed -n 's/^#define MOAT_VERSION_MINOR \([0-9]*\)$/\1/p' "$header").$(sed -n 's/^#define MOAT_VERSION_PATCH \([0-9]*\)$/\1/p' "$header")"
[[ -f "$lib/libmoat.so.$version" && ! -L "$lib/libmoat.so.$version" ]] || fail "no libmoat.so.$version"
[[ "$(readlink "$lib/libmoat.so.$major")" == "libmoat.so.$version" ]] || fail "libmoat.so.$major symlink"
[[ "$(readlink "$lib/libmoat.so")" == "libmoat.so.$major" ]] || fail "libmoat.so symlink"
[[ "$(ls "$prefix/include/moat")" == "$(printf 'moat.h\nmoat.hpp')" ]] \
  || fail "include/moat holds more than the public headers: $(ls "$prefix/include/moat")"
# The public headers stand alone: they include nothing of the repository.
if grep -hE '#include "' "$prefix"/include/moat/* | grep -v '"moat.h"'; then
  fail "an installed header includes a repository header"
fi

echo "--- SONAME and exports"
soname=$(readelf -d "$lib/libmoat.so.$version" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[[ "$soname" == "libmoat.so.$major" ]] || fail "SONAME is '$soname', want libmoat.so.$major"
# Every function moat.h declares is MOAT_EXPORT (hidden otherwise).
unmarked=$(grep -E '^[A-Za-z].*[^A-Za-z_]Moat[A-Za-z]+\(' "$header" | grep -v '^MOAT_EXPORT ' | grep -v '^typedef' || true)
[[ -z "$unmarked" ]] || fail "declared without MOAT_EXPORT: $unmarked"
declared=$(grep -oE '^MOAT_EXPORT [^(]*[^A-Za-z_](Moat[A-Za-z]+)\(' "$header" | sed -E 's/.*(Moat[A-Za-z]+)\($/\1/' | sort)
exported=$(nm -D --defined-only "$lib/libmoat.so.$version" | awk '$2 == "T" {print $3}' | sed 's/@.*//' | sort)
[[ "$declared" == "$exported" ]] || fail "exports differ from moat.h:
$(diff <(echo "$declared") <(echo "$exported") || true)"
total=$(nm -D --defined-only "$lib/libmoat.so.$version" | wc -l)
# The API functions plus the version node MOAT_<major>, nothing else.
want=$(($(echo "$declared" | wc -l) + 1))
[[ "$total" -eq "$want" ]] || fail "libmoat.so exports $total symbols, want $want:
$(nm -D --defined-only "$lib/libmoat.so.$version")"
# grep reads everything (no -q): with pipefail, an early exit would SIGPIPE
# the producer and fail the pipeline at random.
nm -D --defined-only "$lib/libmoat.so.$version" | grep " A MOAT_$major$" >/dev/null || fail "no version node MOAT_$major"
echo "libmoat.so exports $total symbols ($((want - 1)) functions + MOAT_$major)"
# libmoat.a: the only default-visibility definitions are the API functions.
visible=$(readelf -sW "$lib/libmoat.a" | awk '$5 == "GLOBAL" && $6 == "DEFAULT" && $7 != "UND" {print $8}' | sort -u)
[[ "$visible" == "$declared" ]] || fail "libmoat.a visible definitions differ from moat.h:
$(diff <(echo "$declared") <(echo "$visible") || true)"

export PKG_CONFIG_PATH="$lib/pkgconfig"
[[ "$(pkg-config --modversion moat)" == "$version" ]] || fail "pkg-config --modversion"
cd "$work"
src="$root/packaging/testdata"

echo "--- C, shared, cc + pkg-config"
cc -std=c99 -Wall -Wextra -Werror -pedantic "$src/embed.c" -o embed_c \
  $(pkg-config --cflags --libs moat) -Wl,-rpath,"$lib"
ldd ./embed_c | grep "libmoat.so.$major => $lib/libmoat.so.$major" >/dev/null || fail "embed_c not linked to libmoat.so.$major"
./embed_c

echo "--- C, shared, two processes: launch a child, pass a pipe and a descriptor, report a bad message"
cc -std=c99 -Wall -Wextra -Werror "$src/embed_process.c" -o embed_process \
  $(pkg-config --cflags --libs moat) -Wl,-rpath,"$lib"
timeout 60 ./embed_process

echo "--- C, shared, event loop: 64 children served from one epoll loop through a pollable trap"
cc -std=c99 -Wall -Wextra -Werror -pthread "$src/embed_epoll.c" -o embed_epoll \
  $(pkg-config --cflags --libs moat) -Wl,-rpath,"$lib"
timeout 120 ./embed_epoll

echo "--- C, static, cc + pkg-config --static"
cc -std=c99 -Wall -Werror "$src/embed.c" -o embed_c_static $(pkg-config --cflags moat) \
  "$(pkg-config --variable=libdir moat)/libmoat.a" $(pkg-config --libs-only-l --static moat | sed 's/-lmoat//')
! ldd ./embed_c_static | grep libmoat >/dev/null || fail "embed_c_static is linked to libmoat.so"
./embed_c_static

echo "--- C++, shared, c++ + pkg-config"
c++ -std=c++17 -Wall -Wextra -Werror "$src/embed.cc" -o embed_cc \
  $(pkg-config --cflags --libs moat) -Wl,-rpath,"$lib"
./embed_cc

if command -v cmake >/dev/null; then
  echo "--- CMake find_package(moat 0.1): moat::moat, moat::moat_static"
  cmake -S "$src" -B cmake-build -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >cmake.log 2>&1 \
    || { cat cmake.log; fail "cmake configure"; }
  cmake --build cmake-build >>cmake.log 2>&1 || { cat cmake.log; fail "cmake build"; }
  cmake-build/embed_c_cmake
  cmake-build/embed_cc_cmake_static
  # The version file refuses another MAJOR.
  mkdir -p cmake-v && cat >cmake-v/CMakeLists.txt <<'CM'
cmake_minimum_required(VERSION 3.13)
project(v NONE)
find_package(moat 99.0 CONFIG)
if(moat_FOUND)
  message(FATAL_ERROR "moat 99.0 found")
endif()
CM
  cmake -S cmake-v -B cmake-v/build -DCMAKE_PREFIX_PATH="$prefix" >>cmake.log 2>&1 \
    || { cat cmake.log; fail "find_package(moat 99.0) was accepted"; }
else
  echo "--- cmake not installed: CMake package config not exercised"
fi
echo "PASS"
