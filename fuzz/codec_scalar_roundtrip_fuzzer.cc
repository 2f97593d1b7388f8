// Property: every scalar and leaf value of the codec (each integer width,
// bool, double with any bit pattern, both enums, UTF-8 string, byte vector)
// encodes, decodes back bit-for-bit equal and re-encodes to the same bytes;
// the strict prefix the fuzzer picks is rejected as kIncomplete.
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
  kU8, kU16, kU32, kU64, kI8, kI16, kI32, kI64, kBool, kDouble, kColor, kWide, kString, kBytes,
  kKindCount
};

}  // namespace

MOAT_FUZZ_COVERS("codec_value")
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using moat::fuzz::CheckRoundTrip;
  return moat::fuzz::RunRoundTrip(data, size, kKindCount, [](Kind kind, uint16_t cut, moat::fuzz::ValueBuilder& b) {
    switch (kind) {
      case kU8: CheckRoundTrip(b.Integer<uint8_t>(), cut); break;
      case kU16: CheckRoundTrip(b.Integer<uint16_t>(), cut); break;
      case kU32: CheckRoundTrip(b.Integer<uint32_t>(), cut); break;
      case kU64: CheckRoundTrip(b.Integer<uint64_t>(), cut); break;
      case kI8: CheckRoundTrip(b.Integer<int8_t>(), cut); break;
      case kI16: CheckRoundTrip(b.Integer<int16_t>(), cut); break;
      case kI32: CheckRoundTrip(b.Integer<int32_t>(), cut); break;
      case kI64: CheckRoundTrip(b.Integer<int64_t>(), cut); break;
      case kBool: CheckRoundTrip(b.Bool(), cut); break;
      case kDouble: CheckRoundTrip(b.Double(), cut); break;
      case kColor: CheckRoundTrip(b.MakeColor(), cut); break;
      case kWide: CheckRoundTrip(b.MakeWide(), cut); break;
      case kString: CheckRoundTrip(b.Text(), cut); break;
      case kBytes: CheckRoundTrip(b.Blob(), cut); break;
      case kKindCount: break;
    }
  });
}
