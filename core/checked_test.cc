#include "core/checked.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

namespace moat {
namespace {

template <typename T>
class CheckedTypedTest : public ::testing::Test {};

using AllWidths = ::testing::Types<uint8_t, uint16_t, uint32_t, uint64_t, int8_t, int16_t,
                                   int32_t, int64_t, size_t>;
TYPED_TEST_SUITE(CheckedTypedTest, AllWidths);

TYPED_TEST(CheckedTypedTest, AddAtBoundary) {
  using T = TypeParam;
  constexpr T kMax = std::numeric_limits<T>::max();
  Checked<T> at_max = Checked<T>(T(kMax - 1)) + T(1);
  ASSERT_FALSE(at_max.has_overflow());
  EXPECT_EQ(at_max.value(), kMax);
  Checked<T> past = at_max + T(1);
  EXPECT_TRUE(past.has_overflow());
  EXPECT_FALSE(past.get().has_value());
}

TYPED_TEST(CheckedTypedTest, SubAtBoundary) {
  using T = TypeParam;
  constexpr T kMin = std::numeric_limits<T>::min();
  Checked<T> at_min = Checked<T>(T(kMin + 1)) - T(1);
  ASSERT_FALSE(at_min.has_overflow());
  EXPECT_EQ(at_min.value(), kMin);
  EXPECT_TRUE((at_min - T(1)).has_overflow());
}

TYPED_TEST(CheckedTypedTest, MulAtBoundary) {
  using T = TypeParam;
  constexpr T kMax = std::numeric_limits<T>::max();
  T half = T(kMax / 2);
  Checked<T> ok = Checked<T>(half) * T(2);
  ASSERT_FALSE(ok.has_overflow());
  EXPECT_EQ(ok.value(), T(half * 2));
  EXPECT_TRUE((Checked<T>(T(half + 1)) * T(2)).has_overflow());
  EXPECT_FALSE((Checked<T>(kMax) * T(1)).has_overflow());
  EXPECT_FALSE((Checked<T>(kMax) * T(0)).has_overflow());
}

TYPED_TEST(CheckedTypedTest, OverflowIsSticky) {
  using T = TypeParam;
  Checked<T> x = Checked<T>(std::numeric_limits<T>::max()) + T(1);
  ASSERT_TRUE(x.has_overflow());
  x -= T(1);  // would be back in range if the overflow were forgotten
  EXPECT_TRUE(x.has_overflow());
  x *= T(0);
  EXPECT_TRUE(x.has_overflow());
  Checked<T> y = Checked<T>(T(0)) + x;  // overflow propagates through operands
  EXPECT_TRUE(y.has_overflow());
}

TYPED_TEST(CheckedTypedTest, OverflowedComparesAboveEveryValue) {
  using T = TypeParam;
  Checked<T> of = Checked<T>::Overflowed();
  Checked<T> max = std::numeric_limits<T>::max();
  EXPECT_FALSE(of <= max);
  EXPECT_TRUE(of > max);
  EXPECT_TRUE(max < of);
  EXPECT_FALSE(of == max);
  EXPECT_TRUE(of == Checked<T>::Overflowed());
}

TEST(CheckedTest, ExhaustiveU8AddSubMulMatchWideArithmetic) {
  for (int a = 0; a <= 255; ++a) {
    for (int b = 0; b <= 255; ++b) {
      Checked<uint8_t> ca(static_cast<uint8_t>(a));
      Checked<uint8_t> cb(static_cast<uint8_t>(b));
      int sum = a + b, diff = a - b, prod = a * b;
      ASSERT_EQ((ca + cb).has_overflow(), sum > 255) << a << "+" << b;
      ASSERT_EQ((ca - cb).has_overflow(), diff < 0) << a << "-" << b;
      ASSERT_EQ((ca * cb).has_overflow(), prod > 255) << a << "*" << b;
      if (sum <= 255) ASSERT_EQ((ca + cb).value(), sum);
      if (diff >= 0) ASSERT_EQ((ca - cb).value(), diff);
      if (prod <= 255) ASSERT_EQ((ca * cb).value(), prod);
    }
  }
}

TEST(CheckedTest, ExhaustiveI8AddSubMulMatchWideArithmetic) {
  for (int a = -128; a <= 127; ++a) {
    for (int b = -128; b <= 127; ++b) {
      Checked<int8_t> ca(static_cast<int8_t>(a));
      Checked<int8_t> cb(static_cast<int8_t>(b));
      auto fits = [](int v) { return v >= -128 && v <= 127; };
      ASSERT_EQ((ca + cb).has_overflow(), !fits(a + b));
      ASSERT_EQ((ca - cb).has_overflow(), !fits(a - b));
      ASSERT_EQ((ca * cb).has_overflow(), !fits(a * b));
      if (fits(a * b)) ASSERT_EQ((ca * cb).value(), a * b);
    }
  }
}

TEST(CheckedTest, FromRangeChecksConversions) {
  EXPECT_EQ(Checked<uint32_t>::From(uint64_t{0xFFFFFFFF}).value(), 0xFFFFFFFFu);
  EXPECT_TRUE(Checked<uint32_t>::From(uint64_t{0x100000000}).has_overflow());
  EXPECT_TRUE(Checked<uint32_t>::From(-1).has_overflow());
  EXPECT_EQ(Checked<int8_t>::From(-128).value(), -128);
  EXPECT_TRUE(Checked<int8_t>::From(128).has_overflow());
  EXPECT_TRUE(Checked<uint64_t>::From(int64_t{-1}).has_overflow());
  EXPECT_EQ(Checked<int64_t>::From(uint64_t{0x7FFFFFFFFFFFFFFF}).value(), INT64_MAX);
  EXPECT_TRUE(Checked<int64_t>::From(uint64_t{0x8000000000000000}).has_overflow());
  EXPECT_TRUE(Checked<uint16_t>::From(Checked<uint32_t>::Overflowed()).has_overflow());
}

TEST(CheckedTest, FrameSizeArithmeticOnHostileValues) {
  // header + payload where payload is peer-controlled u32 max, in a u32.
  Checked<uint32_t> frame = Checked<uint32_t>(24) + 0xFFFFFFFFu;
  EXPECT_TRUE(frame.has_overflow());
  // The same in size_t does not overflow on 64-bit.
  EXPECT_FALSE((Checked<size_t>(24) + size_t{0xFFFFFFFF}).has_overflow());
  EXPECT_EQ(CheckedAdd<uint32_t>(1, 2), 3u);
  EXPECT_EQ(CheckedMul<uint32_t>(0x10000, 0x10000), std::nullopt);
}

TEST(CheckedDeathTest, ReadingOverflowedValueIsAProgrammerError) {
  Checked<uint16_t> x = Checked<uint16_t>(0xFFFF) + uint16_t{1};
  EXPECT_DEATH((void)x.value(), "on an overflowed value");
}

}  // namespace
}  // namespace moat
