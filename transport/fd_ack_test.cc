#include "transport/fd_ack.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <vector>

#include "core/testing/fd_count.h"

namespace moat::transport {
namespace {

std::vector<UniqueFd> DevNull(size_t n) {
  std::vector<UniqueFd> out;
  for (size_t i = 0; i < n; ++i) out.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  return out;
}

TEST(FdAckStateTest, RetainsUntilAckedThenCloses) {
  const size_t before = testing::OpenFdCount();
  FdAckState acks(16);
  acks.OnSent(DevNull(3));
  acks.OnSent(DevNull(2));
  EXPECT_EQ(acks.retained(), 5u);
  EXPECT_EQ(testing::OpenFdCount(), before + 5);
  ASSERT_TRUE(acks.OnAckReceived(4).ok());
  EXPECT_EQ(acks.retained(), 1u);
  EXPECT_EQ(testing::OpenFdCount(), before + 1);
  ASSERT_TRUE(acks.OnAckReceived(1).ok());
  EXPECT_EQ(acks.retained(), 0u);
  EXPECT_EQ(testing::OpenFdCount(), before);
  EXPECT_EQ(acks.total_sent(), 5u);
  EXPECT_EQ(acks.total_acked(), 5u);
}

TEST(FdAckStateTest, AckForMoreThanOutstandingIsViolationAndReleasesNothing) {
  FdAckState acks(16);
  acks.OnSent(DevNull(2));
  Status s = acks.OnAckReceived(3);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kProtocolViolation);
  EXPECT_EQ(s.error().ToString(), "ack_count: ack_count 3 exceeds the 2 descriptors outstanding");
  EXPECT_EQ(acks.retained(), 2u);
}

TEST(FdAckStateTest, AckOnEmptyQueueIsViolation) {
  FdAckState acks(16);
  Status s = acks.OnAckReceived(1);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kProtocolViolation);
  Status huge = acks.OnAckReceived(std::numeric_limits<uint32_t>::max());
  ASSERT_FALSE(huge.ok());
  EXPECT_TRUE(acks.OnAckReceived(0).ok());
}

TEST(FdAckStateTest, WindowBoundsDescriptorsInFlight) {
  FdAckState acks(4);
  EXPECT_TRUE(acks.CanSend(4));
  EXPECT_FALSE(acks.CanSend(5));
  acks.OnSent(DevNull(3));
  EXPECT_TRUE(acks.CanSend(1));   // exactly at the window
  EXPECT_FALSE(acks.CanSend(2));  // one past
  acks.OnSent(DevNull(1));
  EXPECT_FALSE(acks.CanSend(1));
  EXPECT_TRUE(acks.CanSend(0));
  ASSERT_TRUE(acks.OnAckReceived(2).ok());
  EXPECT_TRUE(acks.CanSend(2));
  EXPECT_FALSE(acks.CanSend(3));
}

TEST(FdAckStateDeathTest, SendingPastTheWindowIsAProgrammerError) {
  FdAckState acks(2);
  acks.OnSent(DevNull(2));
  EXPECT_DEATH(acks.OnSent(DevNull(1)), "fd-ack window");
}

TEST(FdAckStateTest, ReceiverCountsAndHandsOutAcks) {
  FdAckState acks(16);
  EXPECT_EQ(acks.pending_acks(), 0u);
  ASSERT_TRUE(acks.OnFdsReceived(3).ok());
  ASSERT_TRUE(acks.OnFdsReceived(0).ok());
  ASSERT_TRUE(acks.OnFdsReceived(5).ok());
  EXPECT_EQ(acks.pending_acks(), 8u);
  EXPECT_EQ(acks.TakePendingAcks(), 8u);
  EXPECT_EQ(acks.TakePendingAcks(), 0u);
}

TEST(FdAckStateTest, ReceivedCountOverflowIsViolationAndKeepsCount) {
  FdAckState acks(16);
  const uint32_t max = std::numeric_limits<uint32_t>::max();
  ASSERT_TRUE(acks.OnFdsReceived(max - 1).ok());
  ASSERT_TRUE(acks.OnFdsReceived(1).ok());  // exactly u32 max
  Status s = acks.OnFdsReceived(1);         // one past
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kProtocolViolation);
  EXPECT_NE(s.error().reason().find("overflows u32"), std::string::npos);
  EXPECT_EQ(acks.pending_acks(), max);
}

TEST(FdAckStateTest, PlaceholdersCountAgainstTheWindow) {
  FdAckState acks(4);
  acks.OnSentWithoutRetaining(3);
  EXPECT_EQ(acks.retained(), 3u);
  EXPECT_FALSE(acks.CanSend(2));
  ASSERT_TRUE(acks.OnAckReceived(3).ok());
  EXPECT_TRUE(acks.CanSend(4));
}

}  // namespace
}  // namespace moat::transport
