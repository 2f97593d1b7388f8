#!/bin/bash
# Every MOAT_DECODER(name) in the sources must be named by MOAT_FUZZ_COVERS("name")
# in at least one fuzz/*_fuzzer.cc. A decoder without a fuzz target fails the build's tests.
set -euo pipefail
decoders=$(grep -rhoE 'MOAT_DECODER\([a-z0-9_]+\)' core transport 2>/dev/null \
  | grep -v '^MOAT_DECODER(name)$' | sed -E 's/MOAT_DECODER\((.*)\)/\1/' | sort -u)
covered=$(grep -hoE 'MOAT_FUZZ_COVERS\([^)]*\)' fuzz/*_fuzzer.cc 2>/dev/null \
  | grep -oE '"[a-z0-9_]+"' | tr -d '"' | sort -u)
missing=$(comm -23 <(echo "$decoders") <(echo "$covered") | sed '/^$/d')
unknown=$(comm -13 <(echo "$decoders") <(echo "$covered") | sed '/^$/d')
echo "decoders: $(echo "$decoders" | sed '/^$/d' | wc -l), covered: $(echo "$covered" | sed '/^$/d' | wc -l)"
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
