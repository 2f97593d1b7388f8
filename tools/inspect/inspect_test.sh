#!/bin/bash
# moat inspect prints every field of a valid stream and the exact error (field,
# limit, byte offset) of a hostile or truncated one.
set -euo pipefail
moat="$1"
fail=0
expect() {  # description, output, pattern
  if ! grep -qF -- "$3" <<<"$2"; then echo "FAIL: $1: missing '$3' in:"; echo "$2"; fail=1; fi
}
out=$("$moat" inspect samples/hello.moat)
expect "valid stream" "$out" "3 frames, 86 bytes, stream ends cleanly"
expect "valid stream" "$out" "payload          68 65 6c 6c 6f 2c 20 6d 6f 61 74"
expect "valid stream" "$out" "type             FD_ACK"
set +e
out=$("$moat" inspect samples/hostile_huge_payload.moat); rc=$?
set -e
[[ $rc -eq 1 ]] || { echo "FAIL: hostile stream exit code $rc"; fail=1; }
expect "hostile" "$out" "frame 1 at byte 26:"
expect "hostile" "$out" "error: frame header: [LIMIT_EXCEEDED] frame.payload_size: payload_size 2147483648 exceeds MAX_MESSAGE_PAYLOAD_SIZE 67108864 (at byte 34)"
set +e
out=$("$moat" inspect samples/truncated.moat); rc=$?
set -e
[[ $rc -eq 1 ]] || { echo "FAIL: truncated exit code $rc"; fail=1; }
expect "truncated" "$out" "[INCOMPLETE] stream ended inside a frame: 30 unprocessed bytes of a 33-byte frame"
# Under `bazel run` the working directory is the runfiles tree: a relative
# FILE is taken relative to BUILD_WORKING_DIRECTORY, where the user typed it.
samples="$PWD/samples"
moat_abs="$(cd "$(dirname "$moat")" && pwd)/$(basename "$moat")"
out=$(cd / && BUILD_WORKING_DIRECTORY="$samples" "$moat_abs" inspect hello.moat)
expect "relative path under bazel run" "$out" "3 frames, 86 bytes, stream ends cleanly"
out=$("$moat" inspect --list)
expect "list" "$out" "frame_header"
[[ $fail -eq 0 ]] && echo "inspect_test: all checks passed"
exit $fail
