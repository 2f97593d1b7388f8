// A short message claiming a huge container must fail without a large
// allocation: this binary replaces operator new to record the largest
// single request made while decoding.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "core/codec/codec.h"
#include "core/codec/testing/test_schema.h"
#include "core/codec/testing/wire_builder.h"

namespace {
std::atomic<size_t> g_largest{0};
}  // namespace

void* operator new(size_t n) {
  size_t seen = g_largest.load(std::memory_order_relaxed);
  while (n > seen && !g_largest.compare_exchange_weak(seen, n)) {
  }
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace moat {
namespace {

using codec_testing::WireBuilder;

template <typename T>
size_t LargestAllocationDecoding(const std::vector<uint8_t>& bytes) {
  g_largest = 0;
  Result<T> r = DecodeMessage<T>(bytes);
  EXPECT_FALSE(r.ok());
  return g_largest.load();
}

TEST(CodecAlloc, TwentyByteMessageClaimingHugeContainersAllocatesLittle) {
  const std::vector<uint8_t> claim =
      WireBuilder().U32(limits::MAX_DECODED_SIZE).U64(0x0101010101010101).U64(0x0101010101010101).bytes();
  ASSERT_EQ(claim.size(), 20u);
  EXPECT_LT(LargestAllocationDecoding<std::vector<uint8_t>>(claim), 4096u);
  EXPECT_LT(LargestAllocationDecoding<std::string>(claim), 4096u);
  EXPECT_LT(LargestAllocationDecoding<std::vector<uint64_t>>(claim), 4096u);
  EXPECT_LT(LargestAllocationDecoding<std::vector<std::vector<uint8_t>>>(claim), 4096u);
  EXPECT_LT((LargestAllocationDecoding<std::map<uint8_t, uint8_t>>(claim)), 4096u);
  EXPECT_LT(LargestAllocationDecoding<codec_testing::Node>(claim), 4096u);
}

TEST(CodecAlloc, ReservationIsBoundedByTheBytesPresent) {
  // 1000 one-byte optionals present, count claims 1000: the reserve is at
  // most 1000 x sizeof(optional<uint8_t>); then the element decode fails.
  WireBuilder w;
  w.U32(1000);
  for (int i = 0; i < 999; ++i) w.U8(0);
  w.U8(2);  // bad tag on the last element
  EXPECT_LE(LargestAllocationDecoding<std::vector<std::optional<uint8_t>>>(w.bytes()),
            1000 * sizeof(std::optional<uint8_t>));
}

}  // namespace
}  // namespace moat
