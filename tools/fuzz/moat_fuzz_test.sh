#!/bin/bash
# End to end: `moat fuzz --bin-dir` on a toy target with a planted bug finds
# the crash, minimizes it to the 5-byte trigger, saves it as crash-<sha1>,
# prints the replay command, writes summary.json and exits 1. (The toy has no
# coverage to add, so the min-* merge is covered by manual runs: fuzz/README.md.)
set -uo pipefail
if [[ "${4:-}" == --skip-under-tsan ]]; then echo "moat_fuzz_test: skipped under TSan (see BUILD.bazel)"; exit 0; fi
moat="$PWD/$1" toy_libfuzzer="$PWD/$2" toy_replay="$PWD/$3"
ws="$(mktemp -d)"
trap 'rm -rf "$ws"' EXIT
mkdir -p "$ws/fuzz" "$ws/corpus/toy_fuzzer" "$ws/bin/libfuzzer" "$ws/bin/replay"
touch "$ws/fuzz/BUILD.bazel"
printf 'seed' >"$ws/corpus/toy_fuzzer/seed-a"
printf 'padding before the trigger moat! and padding after it' >"$ws/corpus/toy_fuzzer/seed-b"
cp "$toy_libfuzzer" "$ws/bin/libfuzzer/toy_fuzzer"
cp "$toy_replay" "$ws/bin/replay/toy_fuzzer"
cd "$ws"
out=$("$moat" fuzz --bin-dir bin --seconds 30 --jobs 1 --minimize-seconds 10 --out out 2>&1)
rc=$?
fail=0
check() { if ! eval "$1"; then echo "FAIL: $2"; fail=1; fi; }
check '[[ $rc -eq 1 ]]' "exit status $rc, expected 1 (crash found)"
crash=$(ls "$ws"/out/crashes/toy_fuzzer/crash-* 2>/dev/null | grep -v '\.log$' | head -1)
check '[[ -n "$crash" ]]' "no crash saved under out/crashes/toy_fuzzer/"
if [[ -n "$crash" ]]; then
  check '[[ "$(cat "$crash")" == "moat!" ]]' "crash not minimized to 'moat!': $(head -c 80 "$crash")"
  check 'grep -q "(crash, 5 bytes, minimized from 53)" <<<"$out"' "minimization not reported"
  check '[[ "$(basename "$crash")" == "crash-$(sha1sum <"$crash" | cut -c1-40)" ]]' "crash not named by its sha1"
  check 'grep -qF "reproduce: bazel run --config=asan //fuzz:toy_fuzzer -- $crash" <<<"$out"' "replay command not printed"
  check '! bin/replay/toy_fuzzer "$crash" >/dev/null 2>&1' "the saved crash does not reproduce in the replay binary"
fi
check '[[ -f corpus/toy_fuzzer/seed-a && -f corpus/toy_fuzzer/seed-b ]]' "a seed was removed"
# Without --merge-into-source the source tree is never written: new entries
# (if the run found any) go to out/new-corpus/.
check '[[ "$(ls corpus/toy_fuzzer)" == "$(printf "seed-a\nseed-b")" ]]' "corpus/toy_fuzzer was written: $(ls corpus/toy_fuzzer)"
check 'grep -q "\"target\": \"toy_fuzzer\"" out/summary.json && grep -q "\"reproduced\": true" out/summary.json' "summary.json incomplete"
check 'grep -qE "^toy_fuzzer +libfuzzer" <<<"$out"' "no summary table row"
if [[ $fail -ne 0 ]]; then echo "--- moat fuzz output:"; echo "$out"; fi
[[ $fail -eq 0 ]] && echo "moat_fuzz_test: all checks passed"
exit $fail
