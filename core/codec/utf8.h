// UTF-8 validation for moat strings (R5): our own validator, strict per
// RFC 3629 / Unicode 15 Table 3-7.
//
// Rejected: stray continuation bytes, truncated sequences, overlong forms
// (C0/C1 leads, E0 80..9F, F0 80..8F), UTF-16 surrogates (ED A0..BF), code
// points above U+10FFFF (F4 90.., F5..FF leads). U+0000 is valid.
//
//   if (auto bad = moat::FindInvalidUtf8(bytes)) reject("invalid UTF-8 at byte", *bad);
#ifndef MOAT_CORE_CODEC_UTF8_H_
#define MOAT_CORE_CODEC_UTF8_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace moat {

// Index of the first byte of the first invalid sequence, or nullopt if valid.
std::optional<size_t> FindInvalidUtf8(std::span<const uint8_t> bytes);

inline bool IsValidUtf8(std::span<const uint8_t> bytes) { return !FindInvalidUtf8(bytes).has_value(); }
inline bool IsValidUtf8(std::string_view s) {
  return IsValidUtf8(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
}

// Appends the UTF-8 encoding of `code_point`, which must be a Unicode scalar
// value (<= U+10FFFF, not a surrogate); anything else is a programmer error.
// Used to build valid strings in tests, fuzzers and property generators.
void AppendUtf8(std::string& out, uint32_t code_point);

}  // namespace moat

#endif  // MOAT_CORE_CODEC_UTF8_H_
