#!/bin/bash
# Every MOAT_DECODER(name) in the sources must be named by MOAT_FUZZ_COVERS("name")
# in at least one fuzz/*_fuzzer.cc. A decoder without a fuzz target fails the build's tests.
set -euo pipefail
# Runfiles are symlinks: -R follows them. decoder_registry.h only documents the macro.
dirs=$(ls -d core transport 2>/dev/null || true)
decoders=$( (grep -RhoE --include='*.h' --include='*.cc' --exclude=decoder_registry.h \
  'MOAT_DECODER\([a-z0-9_]+\)' $dirs 2>/dev/null || true) \
  | sed -E 's/MOAT_DECODER\((.*)\)/\1/' | sort -u)
covered=$( (grep -hoE 'MOAT_FUZZ_COVERS\([^)]*\)' fuzz/*_fuzzer.cc 2>/dev/null || true) \
  | (grep -oE '"[a-z0-9_]+"' || true) | tr -d '"' | sort -u)
missing=$(comm -23 <(echo "$decoders") <(echo "$covered") | sed '/^$/d')
unknown=$(comm -13 <(echo "$decoders") <(echo "$covered") | sed '/^$/d')
echo "decoders: $(echo "$decoders" | sed '/^$/d' | wc -l), covered: $(echo "$covered" | sed '/^$/d' | wc -l)"
[[ -n "$decoders" ]] || { echo "no MOAT_DECODER found: the test cannot see the sources"; exit 1; }
status=0
if [[ -n "$missing" ]]; then
  echo "decoders with no fuzz target (add MOAT_FUZZ_COVERS in fuzz/*_fuzzer.cc):"
  echo "$missing" | sed 's/^/  /'
  status=1
fi
if [[ -n "$unknown" ]]; then
  echo "fuzz targets claim to cover decoders that do not exist:"
  echo "$unknown" | sed 's/^/  /'
  status=1
fi
exit $status
