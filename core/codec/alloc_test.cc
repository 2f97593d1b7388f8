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
std::atomic<size_t> g_total{0};
}  // namespace

void* operator new(size_t n) {
  g_total.fetch_add(n, std::memory_order_relaxed);
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

// COD-10: elements that are 4 bytes on the wire but 32 in memory. The
// decoded value's heap memory is charged against max_decoded_memory, so the
// amplification is bounded by that limit (2x the payload limit), not by 8x.
std::vector<uint8_t> EmptyStrings(uint32_t count) {
  WireBuilder w;
  w.U32(count);
  for (uint32_t i = 0; i < count; ++i) w.U32(0);
  return w.bytes();
}

TEST(CodecAlloc, VectorOfEmptyStringsIsChargedByItsMemoryNotItsWireSize) {
  const limits::ConnectionLimits tight =
      limits::ConnectionLimits::Defaults().Tightened({.max_decoded_memory = 1 << 20});
  const uint32_t fits = (1 << 20) / sizeof(std::string);  // 32768: exactly the limit in memory
  Result<std::vector<std::string>> ok = DecodeMessage<std::vector<std::string>>(EmptyStrings(fits), {}, {}, tight);
  ASSERT_TRUE(ok.ok()) << ok.error().ToString();
  EXPECT_EQ(ok->size(), fits);

  // One more element: 131 KiB on the wire, over 1 MiB in memory.
  const std::vector<uint8_t> wire = EmptyStrings(fits + 1);
  ASSERT_LT(wire.size(), size_t{1} << 20);
  g_largest = 0;
  g_total = 0;
  Result<std::vector<std::string>> r = DecodeMessage<std::vector<std::string>>(wire, {}, {}, tight);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kLimitExceeded);
  EXPECT_NE(r.error().ToString().find("vector of 32769 elements of 32 bytes in memory brings the decoded message "
                                      "past MAX_DECODED_MEMORY 1048576"),
            std::string::npos)
      << r.error().ToString();
  EXPECT_LT(g_total.load(), 4096u) << "rejected before the reserve";
}

TEST(CodecAlloc, SixtyFourMiBOfEmptyStringsIsRejectedBeforeAnyReserve) {
  // The worst case at the default limits: 16M empty strings fill the payload
  // and would have decoded into 512 MiB of std::string objects (the budget
  // is MAX_DECODED_MEMORY = 128 MiB).
  const uint32_t count = (limits::MAX_DECODED_SIZE - 4) / 4;
  const std::vector<uint8_t> wire = EmptyStrings(count);
  g_largest = 0;
  g_total = 0;
  Result<std::vector<std::string>> r = DecodeMessage<std::vector<std::string>>(wire);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kLimitExceeded);
  EXPECT_LT(g_total.load(), 4096u);
}

TEST(CodecAlloc, NestedContainersAndStringBuffersShareOneBudget) {
  // 4 strings of 300 KiB: each is far below the 1 MiB budget, the sum is not.
  const limits::ConnectionLimits tight =
      limits::ConnectionLimits::Defaults().Tightened({.max_decoded_memory = 1 << 20});
  const std::string chunk(300 << 10, 'x');
  WireBuilder w;
  w.U32(4);
  for (int i = 0; i < 4; ++i) w.Str(chunk);
  g_total = 0;
  Result<std::vector<std::string>> r = DecodeMessage<std::vector<std::string>>(w.bytes(), {}, {}, tight);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kLimitExceeded);
  EXPECT_NE(r.error().ToString().find("[3]"), std::string::npos) << "names the element that crossed the limit: "
                                                                 << r.error().ToString();
  EXPECT_LT(g_total.load(), size_t{1} << 20);
}

}  // namespace
}  // namespace moat
