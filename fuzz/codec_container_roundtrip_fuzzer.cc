// Property: every container value of the codec (vectors of numbers, items and
// variants; maps with string and integer keys; nested and single optionals;
// the variant with each alternative; small structs holding vectors) encodes,
// decodes back equal and re-encodes to the same bytes; the strict prefix the
// fuzzer picks is rejected as kIncomplete.
//
// One of three round-trip targets split by type group for speed (R25); the
// builder and the property live in fuzz/internal/codec_value_builder.h.
#include <cstdint>

#include "fuzz/fuzz_harness.h"
#include "fuzz/internal/codec_value_builder.h"

namespace {

// Which type a run round-trips (the input's first choice, modulo kKindCount).
// core/codec/codec_seeds.cc writes one seed per kind; keep it in step.
enum Kind : uint8_t {
  kNumbers, kItems, kAttributes, kEnvelopes, kMaybeItem, kMaybeMaybe, kChoice, kChoices, kItem, kEnvelope,
  kKindCount
};

}  // namespace

MOAT_FUZZ_COVERS("codec_value")
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using moat::fuzz::CheckRoundTrip;
  return moat::fuzz::RunRoundTrip(data, size, kKindCount, [](Kind kind, uint16_t cut, moat::fuzz::ValueBuilder& b) {
    switch (kind) {
      case kNumbers: CheckRoundTrip(b.Numbers(), cut); break;
      case kItems: CheckRoundTrip(b.Items(), cut); break;
      case kAttributes: CheckRoundTrip(b.Attributes(), cut); break;
      case kEnvelopes: CheckRoundTrip(b.Envelopes(), cut); break;
      case kMaybeItem: CheckRoundTrip(b.MaybeItem(), cut); break;
      case kMaybeMaybe: CheckRoundTrip(b.MaybeMaybe(), cut); break;
      case kChoice: CheckRoundTrip(b.MakeChoice(), cut); break;
      case kChoices: CheckRoundTrip(b.Choices(), cut); break;
      case kItem: CheckRoundTrip(b.MakeItem(), cut); break;
      case kEnvelope: CheckRoundTrip(b.MakeEnvelope(), cut); break;
      case kKindCount: break;
    }
  });
}
