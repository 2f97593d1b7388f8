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
# usage: tools/test.sh [--quick]
#   tools/test.sh            # everything
#   tools/test.sh --quick    # step 1 only
#
# Progress: each step is announced ([n/N]), bazel's progress is shown every
# 30 s and every test result as it arrives. Logs go to a directory printed at
# the start (MOAT_TEST_LOG_DIR to choose it); it is deleted only if everything
# passed, so the logs of failures stay for reading.
set -uo pipefail
quick=0
for arg in "$@"; do
  case "$arg" in
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    --quick) quick=1 ;;
    *) echo "tools/test.sh: unknown argument '$arg' (usage: tools/test.sh [--quick])" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
tools/setup.sh

passed=0
failed=0
failures=()
log_dir="${MOAT_TEST_LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/moat-test.XXXXXX")}"
mkdir -p "$log_dir"
echo "logs: $log_dir"
step=0
steps=$([[ $quick -eq 1 ]] && echo 1 || echo 4)
start=$SECONDS

# Bazel's output, shortened for a person watching: test results and errors as
# they come, the [done / total] progress line at most every 30 s.
progress() {
  local last=$((SECONDS - 30)) line
  while IFS= read -r line; do
    if [[ "$line" =~ ^//[^\ ]+\ +(\(cached\)\ )?(PASSED|FAILED|TIMEOUT|NO\ STATUS|FAILED\ TO\ BUILD) || "$line" == ERROR:* ]]; then
      echo "    $line"
    elif [[ "$line" =~ ^\[[0-9,]+\ /\ [0-9,]+\] ]] && (( SECONDS - last >= 30 )); then
      last=$SECONDS
      echo "    [$((SECONDS - start))s] ${line:0:100}"
    fi
  done
}

run_suite() {  # name, bazel args...
  local name="$1"; shift
  local log="$log_dir/$name.log"
  step=$((step + 1))
  echo "=== [$step/$steps] $name: bazel test $* //...   (log: $log)"
  bazel test "$@" --keep_going //... 2>&1 | tee "$log" | progress
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
    # bazel-testlogs is overwritten by the next configuration: keep a copy.
    local kept="$log_dir/$name-$(echo "${t#//}" | tr '/:' '__').test.log"
    cp "$tl" "$kept" 2>/dev/null || true
    echo "----- $name $t (log: $kept) -----"; tail -25 "$tl" 2>/dev/null | sed 's/^/    /'
  done
  grep "^ERROR:" "$log" | head -20 | sed 's/^/  /'
  echo "    $name: $p passed, $f failed"
  passed=$((passed + p))
  failed=$((failed + f))
}

check() {  # name, command...   (one log per check, kept when it fails)
  local name="$1"; shift
  local log="$log_dir/check-$(echo "$name" | tr -c 'A-Za-z0-9_.-' '_').log"
  if "$@" >"$log" 2>&1; then
    passed=$((passed + 1)); echo "  ok   $name"; rm -f "$log"
  else
    failed=$((failed + 1)); failures+=("$name (log: $log)"); echo "  FAIL $name (log: $log)"
    tail -20 "$log" | sed 's/^/    /'
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
if [[ $quick -eq 0 ]]; then
  run_suite asan --config=asan
  run_suite tsan --config=tsan
  step=$((step + 1))
  echo "=== [$step/$steps] fuzz targets: libFuzzer and AFL++ builds, 5 s libFuzzer smoke each"
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

rm -rf "$log_dir/fuzzers"
if [[ ${#failures[@]} -gt 0 ]]; then
  echo "failures:"; printf '  %s\n' "${failures[@]}"
  echo "logs kept in $log_dir"
elif [[ -z "${MOAT_TEST_LOG_DIR:-}" ]]; then
  rm -rf "$log_dir"
fi
echo "took $((SECONDS - start)) s"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
