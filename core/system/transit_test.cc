#include "core/system/transit.h"

#include <gtest/gtest.h>

namespace moat::system {
namespace {

TEST(TransitStateTest, StartsOpenAndUsable) {
  TransitState t;
  EXPECT_EQ(t.state(), HandleState::kOpen);
  EXPECT_TRUE(t.usable());
  EXPECT_TRUE(t.CheckUsable("write").ok());
}

TEST(TransitStateTest, EveryOperationIsBusyInTransit) {
  TransitState t;
  ASSERT_TRUE(t.BeginTransit().ok());
  EXPECT_FALSE(t.usable());
  for (const char* op : {"write", "read", "arm trap", "set quota", "fuse", "query"}) {
    Status s = t.CheckUsable(op);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code(), ErrorCode::kBusy);
    EXPECT_EQ(s.error().reason(), std::string(op) + ": handle is in transit");
  }
  Status close = t.Close();
  ASSERT_FALSE(close.ok());
  EXPECT_EQ(close.error().code(), ErrorCode::kBusy);
  Status again = t.BeginTransit();
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), ErrorCode::kBusy);
  EXPECT_EQ(t.state(), HandleState::kInTransit);
}

TEST(TransitStateTest, CancelRestoresUsability) {
  TransitState t;
  ASSERT_TRUE(t.BeginTransit().ok());
  t.CancelTransit();
  EXPECT_EQ(t.state(), HandleState::kOpen);
  EXPECT_TRUE(t.CheckUsable("write").ok());
  // And it can be sent again.
  EXPECT_TRUE(t.BeginTransit().ok());
}

TEST(TransitStateTest, CompleteIsTerminalAndNotAClose) {
  TransitState t;
  ASSERT_TRUE(t.BeginTransit().ok());
  t.CompleteTransit();
  EXPECT_EQ(t.state(), HandleState::kTransferred);
  Status s = t.CheckUsable("read");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kClosed);
  EXPECT_NE(s.error().reason().find("transferred"), std::string::npos);
  EXPECT_EQ(t.Close().error().code(), ErrorCode::kClosed);
  EXPECT_EQ(t.BeginTransit().error().code(), ErrorCode::kClosed);
  EXPECT_EQ(t.state(), HandleState::kTransferred);
}

TEST(TransitStateTest, ClosedHandleCannotTransit) {
  TransitState t;
  ASSERT_TRUE(t.Close().ok());
  EXPECT_EQ(t.state(), HandleState::kClosed);
  EXPECT_EQ(t.BeginTransit().error().code(), ErrorCode::kClosed);
  EXPECT_EQ(t.Close().error().code(), ErrorCode::kClosed);
  EXPECT_EQ(t.CheckUsable("write").error().reason(), "write: handle is closed");
}

TEST(TransitStateDeathTest, CompleteWithoutBeginIsABug) {
  TransitState t;
  EXPECT_DEATH(t.CompleteTransit(), "CompleteTransit in state open");
}

TEST(TransitStateDeathTest, CancelAfterCompleteIsABug) {
  TransitState t;
  ASSERT_TRUE(t.BeginTransit().ok());
  t.CompleteTransit();
  EXPECT_DEATH(t.CancelTransit(), "CancelTransit in state transferred");
}

}  // namespace
}  // namespace moat::system
