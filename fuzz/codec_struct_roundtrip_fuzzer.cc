// Property: the schema's composite structs (a recursive tree up to depth 4, a
// descriptor-free struct mixing every scalar kind with a string, a nested
// optional and the variant, and the full Rich message with every field type)
// encode, decode back equal (doubles bit-for-bit) and re-encode to the same
// bytes; the strict prefix the fuzzer picks is rejected as kIncomplete.
//
// One of three round-trip targets split by type group for speed (R25); the
// builder and the property live in fuzz/internal/codec_value_builder.h.
#include <cstdint>

#include "fuzz/fuzz_harness.h"
#include "fuzz/internal/codec_value_builder.h"

namespace {

// Which type a run round-trips (the input's first choice, modulo kKindCount).
// core/codec/codec_seeds.cc writes one seed per kind; keep it in step.
enum Kind : uint8_t { kTree, kSubset, kRich, kKindCount };

}  // namespace

MOAT_FUZZ_COVERS("codec_value")
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using moat::fuzz::CheckRoundTrip;
  return moat::fuzz::RunRoundTrip(data, size, kKindCount, [](Kind kind, uint16_t cut, moat::fuzz::ValueBuilder& b) {
    switch (kind) {
      case kTree: CheckRoundTrip(b.MakeNode(4), cut); break;
      case kSubset: CheckRoundTrip(b.MakeSubset(), cut); break;
      case kRich: CheckRoundTrip(b.MakeRich(), cut); break;
      case kKindCount: break;
    }
  });
}
