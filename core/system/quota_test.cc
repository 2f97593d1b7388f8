#include "core/system/quota.h"

#include <gtest/gtest.h>

namespace moat::system {
namespace {

TEST(QuotaSetTest, UnsetQuotasAreNoLimitAndNeverExceeded) {
  QuotaSet q;
  QuotaUsage huge{UINT64_MAX - 1, UINT64_MAX - 1, UINT64_MAX - 1};
  for (uint32_t i = 0; i < kQuotaTypeCount; ++i) {
    EXPECT_EQ(q.limit(static_cast<QuotaType>(i)), kNoQuotaLimit);
  }
  EXPECT_FALSE(q.AnyExceeded(huge));
  EXPECT_EQ(q.AckRequestInterval(), 0u);
}

TEST(QuotaSetTest, UnknownTypeIsInvalidArgument) {
  auto r = QuotaSet::ParseType(3);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().reason().find("quota type 3"), std::string::npos);
  QuotaSet q;
  Status s = q.Set(static_cast<QuotaType>(77), 5);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(QuotaSet::ParseType(2).ok());
}

TEST(QuotaSetTest, ZeroLimitIsInvalidArgument) {
  QuotaSet q;
  for (uint32_t i = 0; i < kQuotaTypeCount; ++i) {
    Status s = q.Set(static_cast<QuotaType>(i), 0);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(q.limit(static_cast<QuotaType>(i)), kNoQuotaLimit) << "failed Set changed state";
  }
}

TEST(QuotaSetTest, EachLimitReachedIsNotExceededButOneMoreIs) {
  for (uint32_t i = 0; i < kQuotaTypeCount; ++i) {
    QuotaType type = static_cast<QuotaType>(i);
    QuotaSet q;
    ASSERT_TRUE(q.Set(type, 4).ok());
    QuotaUsage at;
    QuotaUsage over;
    switch (type) {
      case QuotaType::kReceiveQueueLength:
        at.receive_queue_length = 4;
        over.receive_queue_length = 5;
        break;
      case QuotaType::kReceiveQueueMemorySize:
        at.receive_queue_bytes = 4;
        over.receive_queue_bytes = 5;
        break;
      case QuotaType::kUnreadMessageCount:
        at.unread_message_count = 4;
        over.unread_message_count = 5;
        break;
    }
    EXPECT_FALSE(q.IsExceeded(type, at)) << QuotaTypeName(type);
    EXPECT_FALSE(q.AnyExceeded(at)) << QuotaTypeName(type);
    EXPECT_TRUE(q.IsExceeded(type, over)) << QuotaTypeName(type);
    EXPECT_TRUE(q.AnyExceeded(over)) << QuotaTypeName(type);
    // Removing the quota clears the condition.
    ASSERT_TRUE(q.Set(type, kNoQuotaLimit).ok());
    EXPECT_FALSE(q.AnyExceeded(over));
  }
}

TEST(QuotaSetTest, AckIntervalIsHalfTheUnreadLimitRoundedUp) {
  QuotaSet q;
  ASSERT_TRUE(q.Set(QuotaType::kUnreadMessageCount, 1).ok());
  EXPECT_EQ(q.AckRequestInterval(), 1u);
  ASSERT_TRUE(q.Set(QuotaType::kUnreadMessageCount, 10).ok());
  EXPECT_EQ(q.AckRequestInterval(), 5u);
  ASSERT_TRUE(q.Set(QuotaType::kUnreadMessageCount, 11).ok());
  EXPECT_EQ(q.AckRequestInterval(), 6u);
  ASSERT_TRUE(q.Set(QuotaType::kUnreadMessageCount, UINT64_MAX - 1).ok());
  EXPECT_EQ(q.AckRequestInterval(), UINT64_MAX / 2);
  // Other quotas do not request acks.
  QuotaSet other;
  ASSERT_TRUE(other.Set(QuotaType::kReceiveQueueLength, 10).ok());
  EXPECT_EQ(other.AckRequestInterval(), 0u);
}

}  // namespace
}  // namespace moat::system
