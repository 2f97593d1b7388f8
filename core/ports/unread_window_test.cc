// The unread-bytes window and receive cap of a pipe whose ends are on two
// nodes (issue 15 item 3; threat PRT-24), and the link-confirmation deadline
// (PRT-11). Deterministic: events cross links only when the test pumps them.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "core/ports/node.h"
#include "core/ports/test_network.h"
#include "limits/limits.h"

namespace moat::ports {
namespace {

using testing::Msg;
using testing::TestNetwork;

std::unique_ptr<UserMessage> Bytes(size_t n) {
  auto m = std::make_unique<UserMessage>();
  m->payload.assign(n, 0x5A);
  return m;
}

PortStatus StatusOf(Node& node, const PortRef& ref) {
  PortStatus st;
  EXPECT_TRUE(node.GetStatus(ref, &st).ok());
  return st;
}

constexpr size_t kChunk = 64 * 1024;

TEST(UnreadWindowTest, WriterStopsBeingWritableAtTheWindowAndRecoversWhenTheReaderReads) {
  TestNetwork net;
  net.AddNode();
  net.AddNode();
  auto [w, r] = net.CreatePipe(0, 1);
  const size_t per_window = limits::PIPE_UNREAD_BYTES_WINDOW / kChunk;
  size_t written = 0;
  while (!StatusOf(net.node(0), w).send_would_wait) {
    ASSERT_TRUE(net.node(0).SendUserMessage(w, Bytes(kChunk)).ok());
    ASSERT_TRUE(net.Pump());
    ++written;
    ASSERT_LE(written, 2 * per_window) << "the window never closed";
  }
  // Exactly a window: the reader has read nothing, so nothing was credited.
  EXPECT_EQ(written, per_window);
  EXPECT_EQ(StatusOf(net.node(0), w).unacknowledged_bytes, limits::PIPE_UNREAD_BYTES_WINDOW);

  // Reading past the half-window checkpoint credits it: writable again, and
  // the writer was told (PortStatusChanged).
  const size_t changes = net.status_changes(0);
  std::unique_ptr<UserMessage> got;
  for (size_t i = 0; i < per_window / 2; ++i) {
    ASSERT_TRUE(net.node(1).GetMessage(r, &got).ok());
    ASSERT_NE(got, nullptr);
  }
  ASSERT_TRUE(net.Pump());
  EXPECT_FALSE(StatusOf(net.node(0), w).send_would_wait);
  EXPECT_LE(StatusOf(net.node(0), w).unacknowledged_bytes, limits::PIPE_UNREAD_BYTES_WINDOW / 2);
  EXPECT_GT(net.status_changes(0), changes);

  // Reading everything credits everything.
  while (net.node(1).GetMessage(r, &got).ok() && got != nullptr) {
  }
  ASSERT_TRUE(net.node(0).SendUserMessage(w, Bytes(kChunk)).ok());
  ASSERT_TRUE(net.Pump());
  while (net.node(1).GetMessage(r, &got).ok() && got != nullptr) {
  }
  ASSERT_TRUE(net.Pump());
  EXPECT_LT(StatusOf(net.node(0), w).unacknowledged_bytes, limits::PIPE_UNREAD_BYTES_WINDOW / 2);
  EXPECT_TRUE(net.violations().empty());
}

TEST(UnreadWindowTest, ALocalPeerNeverMakesAWriteWait) {
  TestNetwork net;
  net.AddNode();
  auto [w, r] = net.CreatePipe(0, 0);
  for (size_t i = 0; i < 2 * limits::PIPE_UNREAD_BYTES_WINDOW / kChunk; ++i) {
    ASSERT_TRUE(net.node(0).SendUserMessage(w, Bytes(kChunk)).ok());
  }
  ASSERT_TRUE(net.Pump());
  EXPECT_FALSE(StatusOf(net.node(0), w).send_would_wait);
}

TEST(UnreadWindowTest, AWriterThatIgnoresTheWindowBreaksOnlyItsPipeAndBlamesNobody) {
  TestNetwork net;
  // The writer's node keeps no window worth the name (as a hostile writer
  // would not); the reader's node caps what it holds unread at 1 MiB.
  net.AddNode({.unread_bytes_window = limits::MAX_PIPE_UNREAD_BYTES,
               .max_unread_bytes = limits::MAX_PIPE_UNREAD_BYTES});
  net.AddNode({.unread_bytes_window = 256 * 1024, .max_unread_bytes = 1024 * 1024});
  auto [w, r] = net.CreatePipe(0, 1);
  auto [other_w, other_r] = net.CreatePipe(0, 1);
  const size_t cap_messages = (1024 * 1024) / kChunk;  // 16 fit
  size_t sent = 0;
  for (; sent < 3 * cap_messages; ++sent) {
    Status s = net.node(0).SendUserMessage(w, Bytes(kChunk));
    if (!s.ok()) {
      EXPECT_EQ(s.error().code(), ErrorCode::kPeerClosed) << s.error().ToString();
      break;
    }
    ASSERT_TRUE(net.Pump());
  }
  // The message past the cap broke the pipe; the writer learnt it at once.
  EXPECT_EQ(sent, cap_messages + 1);
  // What was accepted stays readable, in order, then PEER_CLOSED.
  size_t read = 0;
  std::unique_ptr<UserMessage> got;
  Status s = OkStatus();
  while ((s = net.node(1).GetMessage(r, &got)).ok() && got != nullptr) ++read;
  EXPECT_EQ(read, cap_messages);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kPeerClosed);
  // The writer sees its peer closed.
  EXPECT_TRUE(StatusOf(net.node(0), w).peer_closed);
  // Nobody was blamed, and the other pipe between the same nodes still works.
  EXPECT_TRUE(net.violations().empty());
  ASSERT_TRUE(net.node(0).SendUserMessage(other_w, Msg("still here")).ok());
  ASSERT_TRUE(net.Pump());
  ASSERT_TRUE(net.node(1).GetMessage(other_r, &got).ok());
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(std::string(got->payload.begin(), got->payload.end()), "still here");
}

// Delivers every queued event except those on `held` links, until none is left.
void PumpExcept(TestNetwork& net, const std::vector<TestNetwork::Link>& held) {
  for (bool progress = true; progress;) {
    progress = false;
    for (const auto& link : net.ActiveLinks()) {
      if (std::find(held.begin(), held.end(), link) != held.end()) continue;
      progress |= net.DeliverOne(link);
    }
  }
}

TEST(ConfirmDeadlineTest, AWriterWaitsForAConfirmationThatNeverComesOnlyUntilTheDeadline) {
  TestNetwork net;
  const NodeOptions quick{.confirm_timeout = std::chrono::milliseconds(50)};
  net.AddNode(quick);
  net.AddNode(quick);
  net.AddNode(quick);
  auto [a, b] = net.CreatePipe(0, 1);
  auto [carrier, carrier_peer] = net.CreatePipe(1, 2);
  // b moves to node 2; a is re-pointed at it (a new, unconfirmed link), but
  // nothing a sends to node 2 is delivered: node 2 never confirms.
  ASSERT_TRUE(net.node(1).SendUserMessage(carrier, Msg("b", {b.name()})).ok());
  const std::vector<TestNetwork::Link> silent = {{0, 2}};
  PumpExcept(net, silent);
  net.senders_may_wait = true;
  // Past MAX_UNCONFIRMED_LINK_EVENTS a write parks and the writer waits for
  // the confirmation, which never comes: the deadline ends the wait and
  // reports node 2.
  uint32_t writes = 0;
  while (net.unresponsive.empty() && writes < 4 * limits::MAX_UNCONFIRMED_LINK_EVENTS) {
    ASSERT_TRUE(net.node(0).SendUserMessage(a, Msg("x")).ok());
    ++writes;
  }
  ASSERT_EQ(net.unresponsive.size(), 1u) << "no deadline after " << writes << " writes";
  EXPECT_EQ(net.unresponsive[0].first, 2u);
  EXPECT_NE(net.unresponsive[0].second.find("did not confirm a new link in 50 ms"),
            std::string::npos)
      << net.unresponsive[0].second;
  EXPECT_LE(writes, limits::MAX_UNCONFIRMED_LINK_EVENTS + 1);
  EXPECT_TRUE(StatusOf(net.node(0), a).send_would_wait);
  // A non-blocking writer never waits, not even for the deadline.
  {
    ScopedNoWait no_wait;
    ASSERT_TRUE(net.node(0).SendUserMessage(a, Msg("y")).ok());
  }
  EXPECT_EQ(net.unresponsive.size(), 1u);
  // Once node 2 is heard from, the parked events go and a is writable again.
  net.senders_may_wait = false;
  ASSERT_TRUE(net.Pump());
  EXPECT_FALSE(StatusOf(net.node(0), a).send_would_wait);
  EXPECT_TRUE(net.violations().empty());
}

}  // namespace
}  // namespace moat::ports
