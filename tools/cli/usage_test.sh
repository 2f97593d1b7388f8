#!/bin/bash
# Exit statuses of every command-line entry point: --help (and -h) exits 0
# and prints a usage line; a usage error exits 2.
#   args: path/to/moat path/to/install.sh path/to/test.sh
set -uo pipefail
moat="$1" install="$2" test_sh="$3"
fail=0
expect_rc() {  # want description command...
  local want="$1" what="$2"; shift 2
  local out rc
  out=$("$@" 2>&1 </dev/null); rc=$?
  if [[ $rc -ne $want ]]; then
    echo "FAIL: $what: exit $rc, want $want"; echo "$out" | head -5 | sed 's/^/    /'; fail=1
  elif [[ $want -eq 0 ]] && ! grep -qi "usage\|commands:" <<<"$out"; then
    echo "FAIL: $what: no usage printed"; fail=1
  fi
}
expect_rc 0 "moat --help" "$moat" --help
expect_rc 0 "moat help" "$moat" help
expect_rc 2 "moat (no command)" "$moat"
expect_rc 2 "moat no-such-command" "$moat" no-such-command
commands=$("$moat" help | sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p')
[[ $(wc -w <<<"$commands") -ge 4 ]] || { echo "FAIL: commands not listed: $commands"; fail=1; }
for c in $commands; do
  expect_rc 0 "moat $c --help" "$moat" "$c" --help
  expect_rc 0 "moat $c -h" "$moat" "$c" -h
  expect_rc 2 "moat $c --no-such-flag" "$moat" "$c" --no-such-flag
done
expect_rc 0 "install.sh --help" "$install" --help
expect_rc 2 "install.sh (no PREFIX)" "$install"
expect_rc 2 "install.sh --no-such-flag" "$install" --no-such-flag /tmp/x
expect_rc 0 "test.sh --help" "$test_sh" --help
expect_rc 2 "test.sh --no-such-flag" "$test_sh" --no-such-flag
[[ $fail -eq 0 ]] && echo "usage_test: $(wc -w <<<"$commands") commands, install.sh, test.sh: all exit statuses right"
exit $fail
