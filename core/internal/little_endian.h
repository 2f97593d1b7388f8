// Unaligned little-endian loads and stores. memcpy compiles to a single move
// on x86-64 and is defined behaviour on any alignment.
#ifndef MOAT_CORE_INTERNAL_LITTLE_ENDIAN_H_
#define MOAT_CORE_INTERNAL_LITTLE_ENDIAN_H_

#include <bit>
#include <cstdint>
#include <cstring>

namespace moat::internal {

static_assert(std::endian::native == std::endian::little,
              "moat's wire format is little-endian; add byte swaps for big-endian hosts");

template <typename T>
inline T LoadLE(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}
template <typename T>
inline void StoreLE(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof(T));
}

inline uint16_t LoadLE16(const uint8_t* p) { return LoadLE<uint16_t>(p); }
inline uint32_t LoadLE32(const uint8_t* p) { return LoadLE<uint32_t>(p); }
inline uint64_t LoadLE64(const uint8_t* p) { return LoadLE<uint64_t>(p); }
inline void StoreLE16(uint8_t* p, uint16_t v) { StoreLE(p, v); }
inline void StoreLE32(uint8_t* p, uint32_t v) { StoreLE(p, v); }
inline void StoreLE64(uint8_t* p, uint64_t v) { StoreLE(p, v); }

}  // namespace moat::internal

#endif  // MOAT_CORE_INTERNAL_LITTLE_ENDIAN_H_
