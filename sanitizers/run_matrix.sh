#!/bin/bash
# moat's sanitizer matrix (R30): the whole suite under each configuration,
# plus valgrind memcheck on the transport and cross-process test binaries,
# then one table: config | passed | failed | time.
#
#   sanitizers/run_matrix.sh                  # default, asan, tsan, valgrind
#   sanitizers/run_matrix.sh asan tsan        # a subset
#   MATRIX_LOG_DIR=/tmp/m sanitizers/run_matrix.sh   # keep the logs
#
# Exit status is non-zero if any configuration has a failure.
set -uo pipefail
cd "$(dirname "$0")/.."

configs=("$@")
[[ ${#configs[@]} -eq 0 ]] && configs=(default asan tsan valgrind)
log_dir="${MATRIX_LOG_DIR:-$(mktemp -d)}"
mkdir -p "$log_dir"
rows=()
any_failed=0

# Test binaries that talk over real sockets or fork/exec a child: the code
# MSan would otherwise cover (see README.md).
VALGRIND_QUERY='kind(cc_test, tests(//transport/... + //core/node/... + //core/system:core_test))'

run_bazel() {  # config-name, bazel args...
  local name="$1"; shift
  local log="$log_dir/$name.log" start end p f
  start=$(date +%s)
  bazel test "$@" --keep_going //... >"$log" 2>&1
  end=$(date +%s)
  p=$(grep -cE '^//[^ ]+ +(\(cached\) )?PASSED' "$log" || true)
  f=$(grep -cE '^//[^ ]+ +(\(cached\) )?(FAILED|TIMEOUT|NO STATUS|FAILED TO BUILD|INCOMPLETE)' "$log" || true)
  if [[ $f -eq 0 ]] && grep -q '^ERROR:' "$log"; then f=1; fi  # build error before any test ran
  if [[ $f -gt 0 ]]; then
    any_failed=1
    echo "--- $name failures (log: $log)"
    grep -E '^//[^ ]+ +(\(cached\) )?(FAILED|TIMEOUT|NO STATUS|FAILED TO BUILD|INCOMPLETE)' "$log" | sed 's/^/    /'
    grep '^ERROR:' "$log" | head -5 | sed 's/^/    /'
  fi
  local cached
  cached=$(grep -cE '^//[^ ]+ +\(cached\) PASSED' "$log" || true)
  rows+=("$(printf '| %-9s | %6s | %6s | %6ss | %s |' "$name" "$p" "$f" "$((end - start))" "bazel test $* //... ($cached cached)")")
}

run_valgrind() {
  local log="$log_dir/valgrind.log" start end p=0 f=0 t
  start=$(date +%s)
  : >"$log"
  local targets
  targets=$(bazel query "$VALGRIND_QUERY" 2>>"$log")
  if ! bazel build $targets >>"$log" 2>&1; then
    f=1; any_failed=1; echo "--- valgrind: build failed (log: $log)"
  fi
  local bin_dir
  bin_dir=$(bazel info bazel-bin 2>>"$log")  # the default config's, whatever the symlink says
  for t in $targets; do
    local pkg="${t#//}"; pkg="${pkg%%:*}"; local name="${t##*:}"
    local runfiles="$bin_dir/$pkg/$name.runfiles"
    local bin="$bin_dir/$pkg/$name"
    [[ -x "$bin" ]] || { f=$((f + 1)); echo "    missing $bin"; continue; }
    # Death tests abort on purpose (gtest forks for them); memcheck of the
    # fork-and-abort child adds nothing, so they are skipped here and run in
    # the other three configurations.
    if (cd "$runfiles/moat" && TEST_SRCDIR="$PWD/.." TEST_WORKSPACE=moat MOAT_TEST=1 \
        timeout 900 valgrind --tool=memcheck --error-exitcode=99 --leak-check=full \
          --errors-for-leak-kinds=definite --show-leak-kinds=definite \
          --trace-children=yes --track-origins=yes --quiet \
          "$bin" --gtest_filter='-*DeathTest*' >>"$log" 2>&1); then
      p=$((p + 1)); echo "    valgrind PASS $t" >>"$log"
    else
      f=$((f + 1)); any_failed=1; echo "--- valgrind FAIL $t (log: $log)"
    fi
  done
  end=$(date +%s)
  rows+=("$(printf '| %-9s | %6s | %6s | %6ss | %s |' valgrind "$p" "$f" "$((end - start))" "memcheck, --trace-children, definite leaks: $(echo $targets | wc -w) binaries")")
}

for c in "${configs[@]}"; do
  echo "=== $c"
  case "$c" in
    default) run_bazel default ;;
    asan) run_bazel asan --config=asan ;;
    tsan) run_bazel tsan --config=tsan ;;
    valgrind) run_valgrind ;;
    *) echo "unknown config $c (default|asan|tsan|valgrind)"; exit 2 ;;
  esac
done

echo
echo "| config    | passed | failed |    time | what |"
echo "|-----------|-------:|-------:|--------:|------|"
printf '%s\n' "${rows[@]}"
echo "logs: $log_dir"
exit $any_failed
