#include "core/error.h"

#include <gtest/gtest.h>

#include "core/check.h"

namespace moat {
namespace {

Status RequirePositive(int v) {
  // Attack: (test) a negative count from a peer.
  MOAT_REQUIRE(v > 0, ErrorCode::kMalformed, "value ", v, " is not positive");
  return OkStatus();
}

Result<int> Doubled(int v) {
  MOAT_TRY(RequirePositive(v));
  return v * 2;
}

Result<int> Quadrupled(int v) {
  MOAT_ASSIGN_OR_RETURN(int d, Doubled(v));
  return d * 2;
}

TEST(ErrorTest, FieldPathIsBuiltOutsideIn) {
  Error e(ErrorCode::kLimitExceeded, "length 80000000 exceeds MAX_DECODED_SIZE 67108864");
  e.WithField("name").WithField("[3]").WithField("items").WithField("Envelope").AtOffset(24);
  EXPECT_EQ(e.field(), "Envelope.items[3].name");
  EXPECT_EQ(e.ToString(),
            "Envelope.items[3].name: length 80000000 exceeds MAX_DECODED_SIZE 67108864 (at byte "
            "24)");
}

TEST(ErrorTest, FirstOffsetWins) {
  Error e(ErrorCode::kMalformed, "bad");
  e.AtOffset(5).AtOffset(9);
  EXPECT_EQ(*e.offset(), 5u);
  EXPECT_EQ(e.ToString(), "bad (at byte 5)");
}

TEST(ErrorTest, RequireReturnsErrorAndTryPropagates) {
  EXPECT_TRUE(RequirePositive(1).ok());
  Status s = RequirePositive(-3);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kMalformed);
  EXPECT_EQ(s.error().reason(), "value -3 is not positive");
  EXPECT_EQ(*Quadrupled(3), 12);
  Result<int> r = Quadrupled(0);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().reason(), "value 0 is not positive");
}

TEST(ErrorDeathTest, AssertAbortsWithLocation) {
  EXPECT_DEATH(MOAT_ASSERT(1 + 1 == 3, "math is broken: ", 42),
               "programmer error at .*error_test.cc:[0-9]+: MOAT_ASSERT\\(1 \\+ 1 == 3\\) failed: "
               "math is broken: 42");
}

TEST(ErrorTest, CodeNamesAreDistinct) {
  EXPECT_EQ(ErrorCodeName(ErrorCode::kLimitExceeded), "LIMIT_EXCEEDED");
  EXPECT_EQ(ErrorCodeName(ErrorCode::kProtocolViolation), "PROTOCOL_VIOLATION");
  EXPECT_NE(ErrorCodeName(ErrorCode::kBusy), ErrorCodeName(ErrorCode::kClosed));
}

}  // namespace
}  // namespace moat
