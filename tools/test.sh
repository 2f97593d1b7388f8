#!/bin/bash
# moat's full test command (the README's second command; CI runs exactly this):
#   1. every test, default build           bazel test //...
#   2. every test under ASan + UBSan       bazel test --config=asan //...
#   3. every test under TSan               bazel test --config=tsan //...
#   4. every fuzz target built with libFuzzer and with AFL++, and a short
#      libFuzzer smoke run of each (corpus replay happens in steps 1-3)
# Ends with the line "N passed, N failed" (one count per test target per
# configuration, plus one per fuzz build/smoke check).
#
#   tools/test.sh            # everything
#   tools/test.sh --quick    # step 1 only
set -uo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh

passed=0
failed=0
failures=()
log_dir="$(mktemp -d)"

run_suite() {  # name, bazel args...
  local name="$1"; shift
  local log="$log_dir/$name.log"
  echo "=== $name: bazel test $* //..."
  bazel test "$@" --keep_going //... >"$log" 2>&1
  local p f
  p=$(grep -cE '^//[^ ]+ +(\(cached\) )?PASSED' "$log" || true)
  f=$(grep -cE '^//[^ ]+ +(\(cached\) )?(FAILED|TIMEOUT|NO STATUS|FAILED TO BUILD)' "$log" || true)
  if grep -q "^ERROR:" "$log" && [[ $f -eq 0 ]]; then
    f=1  # a build error that prevented tests from running
    failures+=("$name: build error")
  fi
  for t in $(grep -E '^//[^ ]+ +(\(cached\) )?(FAILED|TIMEOUT|NO STATUS|FAILED TO BUILD)' "$log" | awk '{print $1}'); do
    failures+=("$name $t")
    local tl="bazel-testlogs/$(echo "${t#//}" | tr ':' '/')/test.log"
    echo "----- $name $t -----"; tail -25 "$tl" 2>/dev/null | sed 's/^/    /'
  done
  grep "^ERROR:" "$log" | head -20 | sed 's/^/  /'
  echo "    $name: $p passed, $f failed"
  passed=$((passed + p))
  failed=$((failed + f))
}

check() {  # name, command...
  local name="$1"; shift
  if "$@" >"$log_dir/check.log" 2>&1; then
    passed=$((passed + 1)); echo "  ok   $name"
  else
    failed=$((failed + 1)); failures+=("$name"); echo "  FAIL $name"; tail -20 "$log_dir/check.log" | sed 's/^/    /'
  fi
}

fuzz_targets() {
  bazel query 'attr(tags, "fuzz_target", kind(cc_binary, //fuzz:*))' 2>/dev/null | sed 's|//fuzz:||'
}

fuzz_labels() { fuzz_targets | sed 's|^|//fuzz:|'; }

fuzz_smoke() {  # target: 5 s of libFuzzer from the checked-in corpus, into a scratch dir
  local t="$1" scratch
  [[ -x "$log_dir/fuzzers/$t" ]] || { echo "no libFuzzer binary for $t"; return 1; }
  scratch="$(mktemp -d)"
  cp -r "corpus/$t/." "$scratch/"
  local dict=()
  [[ -f "corpus/$t.dict" ]] && dict=("-dict=corpus/$t.dict")
  "$log_dir/fuzzers/$t" -max_total_time=5 -rss_limit_mb=4096 "${dict[@]}" "$scratch" 2>&1 | tail -2
  local rc=${PIPESTATUS[0]}
  rm -rf "$scratch"
  return "$rc"
}

run_suite default
if [[ "${1:-}" != "--quick" ]]; then
  run_suite asan --config=asan
  run_suite tsan --config=tsan
  echo "=== fuzz targets: libFuzzer and AFL++ builds, 5 s libFuzzer smoke each"
  mkdir -p "$log_dir/fuzzers"
  targets=$(fuzz_targets)
  # The libFuzzer config must build everything (tests included), not only fuzzers.
  check "build (libFuzzer config, //...)" bazel build --config=libfuzzer //...
  lf_bin=$(bazel info --config=libfuzzer bazel-bin 2>/dev/null)
  for t in $targets; do cp "$lf_bin/fuzz/$t" "$log_dir/fuzzers/$t" 2>/dev/null || true; done
  check "build (AFL++ config, all fuzz targets)" bazel build --config=afl $(fuzz_labels)
  for t in $targets; do
    check "fuzz smoke $t" fuzz_smoke "$t"
  done
fi

rm -rf "$log_dir"
if [[ ${#failures[@]} -gt 0 ]]; then
  echo "failures:"; printf '  %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
