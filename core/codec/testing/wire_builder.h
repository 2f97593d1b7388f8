// Test helper: builds wire bytes by hand (little-endian), so tests can state
// exactly what a hostile peer sends, independently of the Encoder.
//
//   std::vector<uint8_t> b = WireBuilder().U32(80000000).Str("ab").bytes();
#ifndef MOAT_CORE_CODEC_TESTING_WIRE_BUILDER_H_
#define MOAT_CORE_CODEC_TESTING_WIRE_BUILDER_H_

#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace moat::codec_testing {

class WireBuilder {
 public:
  WireBuilder& U8(uint8_t v) { return Fixed(v); }
  WireBuilder& U16(uint16_t v) { return Fixed(v); }
  WireBuilder& U32(uint32_t v) { return Fixed(v); }
  WireBuilder& U64(uint64_t v) { return Fixed(v); }
  // u32 length + raw bytes (no validation: tests send invalid text on purpose).
  WireBuilder& Str(std::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    return Raw(s);
  }
  WireBuilder& Raw(std::string_view s) {
    bytes_.insert(bytes_.end(), s.begin(), s.end());
    return *this;
  }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  template <typename T>
  WireBuilder& Fixed(T v) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    bytes_.insert(bytes_.end(), b, b + sizeof(T));
    return *this;
  }
  std::vector<uint8_t> bytes_;
};

}  // namespace moat::codec_testing

#endif  // MOAT_CORE_CODEC_TESTING_WIRE_BUILDER_H_
