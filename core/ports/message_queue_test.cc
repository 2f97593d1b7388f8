#include "core/ports/message_queue.h"

#include <gtest/gtest.h>

#include "limits/limits.h"

namespace moat::ports {
namespace {

std::unique_ptr<UserMessageEvent> Ev(uint64_t seq, size_t bytes = 1) {
  auto m = std::make_unique<UserMessage>();
  m->payload.resize(bytes);
  return std::make_unique<UserMessageEvent>(PortName::Random(), PortName::Random(), 1, seq,
                                            std::move(m));
}

TEST(MessageQueueTest, ReleasesInSequenceOrder) {
  MessageQueue q;
  for (uint64_t s : {3, 1, 2}) {
    auto e = Ev(s, s);
    ASSERT_TRUE(q.AcceptMessage(&e).ok());
    EXPECT_EQ(e, nullptr);
  }
  EXPECT_EQ(q.queued_num_bytes(), 6u);
  for (uint64_t s = 1; s <= 3; ++s) {
    auto e = q.PopNextMessage();
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->sequence_num, s);
  }
  EXPECT_EQ(q.PopNextMessage(), nullptr);
  EXPECT_EQ(q.queued_num_bytes(), 0u);
}

TEST(MessageQueueTest, HoldsGapUntilFilled) {
  MessageQueue q;
  auto e = Ev(2);
  ASSERT_TRUE(q.AcceptMessage(&e).ok());
  EXPECT_FALSE(q.HasNextMessage());
  EXPECT_EQ(q.LastContiguousSequenceNum(), 0u);
  e = Ev(1);
  ASSERT_TRUE(q.AcceptMessage(&e).ok());
  EXPECT_EQ(q.LastContiguousSequenceNum(), 2u);
}

TEST(MessageQueueTest, RejectsDuplicatesStaleAndFarFuture) {
  MessageQueue q;
  auto e = Ev(1);
  ASSERT_TRUE(q.AcceptMessage(&e).ok());
  e = Ev(1);
  Status s = q.AcceptMessage(&e);
  EXPECT_EQ(s.error().code(), ErrorCode::kProtocolViolation);
  EXPECT_NE(e, nullptr);  // not taken on error
  q.PopNextMessage();
  e = Ev(1);
  EXPECT_EQ(q.AcceptMessage(&e).error().code(), ErrorCode::kProtocolViolation);
  e = Ev(2 + limits::MAX_PORT_OUT_OF_ORDER_MESSAGES);
  s = q.AcceptMessage(&e);
  EXPECT_EQ(s.error().code(), ErrorCode::kLimitExceeded);
  EXPECT_NE(s.error().reason().find("MAX_PORT_OUT_OF_ORDER_MESSAGES"), std::string::npos);
  e = Ev(1 + limits::MAX_PORT_OUT_OF_ORDER_MESSAGES);  // last slot in the window
  EXPECT_TRUE(q.AcceptMessage(&e).ok());
  e = Ev(UINT64_MAX);
  EXPECT_EQ(q.AcceptMessage(&e).error().code(), ErrorCode::kLimitExceeded);
}

// Issue 11 class 5: out-of-order messages are bounded by bytes as well as by
// count. Before, a port held MAX_PORT_OUT_OF_ORDER_MESSAGES messages of any
// size behind a gap (~1023 x 64 MiB).
TEST(MessageQueueTest, OutOfOrderBytesAreBounded) {
  MessageQueue q;
  const size_t half = limits::MAX_PORT_OUT_OF_ORDER_BYTES / 2;
  auto e = Ev(2, half);
  ASSERT_TRUE(q.AcceptMessage(&e).ok());
  e = Ev(3, half);
  ASSERT_TRUE(q.AcceptMessage(&e).ok());  // exactly at the cap
  e = Ev(4, 1);
  Status s = q.AcceptMessage(&e);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kLimitExceeded);
  EXPECT_NE(s.error().reason().find("MAX_PORT_OUT_OF_ORDER_BYTES"), std::string::npos);
  // Filling the gap puts them in order: they no longer count.
  e = Ev(1);
  ASSERT_TRUE(q.AcceptMessage(&e).ok());
  e = Ev(5, 1);
  EXPECT_TRUE(q.AcceptMessage(&e).ok());
  e = Ev(6, half);
  EXPECT_TRUE(q.AcceptMessage(&e).ok());
  EXPECT_EQ(q.LastContiguousSequenceNum(), 3u);
}

// Regression: the window used to start at the next message to *read*, so a
// receiver with MAX_PORT_OUT_OF_ORDER_MESSAGES unread in-order messages
// rejected the next one and its (well-behaved) sender was disconnected.
TEST(MessageQueueTest, UnreadInOrderMessagesDoNotCountAgainstTheWindow) {
  MessageQueue q;
  const uint64_t n = 3 * limits::MAX_PORT_OUT_OF_ORDER_MESSAGES;
  for (uint64_t s = 1; s <= n; ++s) {
    auto e = Ev(s);
    ASSERT_TRUE(q.AcceptMessage(&e).ok()) << "sequence_num " << s;
  }
  EXPECT_EQ(q.LastContiguousSequenceNum(), n);
  // The window is measured from the first missing message (n + 1).
  auto e = Ev(n + 1 + limits::MAX_PORT_OUT_OF_ORDER_MESSAGES);
  EXPECT_EQ(q.AcceptMessage(&e).error().code(), ErrorCode::kLimitExceeded);
  e = Ev(n + limits::MAX_PORT_OUT_OF_ORDER_MESSAGES);
  EXPECT_TRUE(q.AcceptMessage(&e).ok());
  EXPECT_EQ(q.LastContiguousSequenceNum(), n);
  for (uint64_t s = 1; s <= n; ++s) ASSERT_EQ(q.PopNextMessage()->sequence_num, s);
  EXPECT_FALSE(q.HasNextMessage());
}

}  // namespace
}  // namespace moat::ports
