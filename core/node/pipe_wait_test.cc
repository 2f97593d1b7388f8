// ReadMessageBlocking (core/node/pipe_wait.h) on a pipe whose peer closed
// while more messages are still expected (PRT-15): it must wait, not spin.
#include "core/node/pipe_wait.h"

#include <gtest/gtest.h>

#include <chrono>
#include <deque>
#include <memory>
#include <utility>

#include "core/mutex.h"
#include "core/ports/event.h"
#include "core/ports/port.h"
#include "core/system/core.h"

namespace moat::node {
namespace {

// Two Cores whose events wait in a queue until Pump() delivers them.
struct TwoCores {
  std::deque<std::pair<int, std::unique_ptr<ports::Event>>> queue;  // (destination, event)
  system::Core a{[this](const ports::NodeName&, std::unique_ptr<ports::Event> e) {
    queue.emplace_back(1, std::move(e));
  }};
  system::Core b{[this](const ports::NodeName&, std::unique_ptr<ports::Event> e) {
    queue.emplace_back(0, std::move(e));
  }};
  void Pump() {
    while (!queue.empty()) {
      auto [to, e] = std::move(queue.front());
      queue.pop_front();
      system::Core& dest = to == 0 ? a : b;
      system::Core& src = to == 0 ? b : a;
      ASSERT_TRUE(dest.node().AcceptEvent(src.node().name(), std::move(e)).ok());
    }
  }
};

// The peer (on the other node) announces its closure after message 1, which
// has not arrived (it is still on its way, e.g. through a proxy). PEER_CLOSED
// is satisfied and READABLE still satisfiable. Before the fix every loop of
// ReadMessageBlocking waited for PEER_CLOSED again, returned at once and
// spun at 100% CPU until the deadline (thousands of waits); now it waits once
// for READABLE until the deadline.
TEST(PipeWaitTest, PeerClosedWithMessagesStillExpectedDoesNotSpin) {
  TwoCores net;
  // A pipe across the two nodes: hb on b, its peer on a (merged as a
  // broker and a child merge their bootstrap ports).
  auto pb = net.b.CreateMessagePipe();
  auto pa = net.a.CreateMessagePipe();
  ASSERT_TRUE(pb.ok() && pa.ok());
  const system::Handle hb = pb->first;
  auto b2 = net.b.ReleaseForRemoteMerge(pb->second);
  ASSERT_TRUE(b2.ok());
  ports::PortRef b2ref, y;
  ASSERT_TRUE(net.b.node().GetPort(*b2, &b2ref).ok());
  ports::PortName y_name;
  {
    MutexLock lock(&b2ref.port()->mu);
    y_name = b2ref.port()->peer_port;  // hb's port
  }
  ASSERT_TRUE(net.b.node().OfferForMerge(b2ref, net.a.node().name()).ok());
  ASSERT_TRUE(net.a.MergeWithRemotePort(pa->second, net.b.node().name(), *b2).ok());
  net.Pump();
  ASSERT_TRUE(net.b.node().GetPort(y_name, &y).ok());
  // hb's previous hop (the port on a) announces its closure after message
  // 1, which has not arrived.
  ports::NodeName prev_node;
  ports::PortName prev_port;
  uint64_t cseq;
  {
    ports::Port* p = y.port();
    MutexLock lock(&p->mu);
    prev_node = p->prev_node;
    prev_port = p->prev_port;
    cseq = p->next_control_sequence_num_to_receive;
  }
  ASSERT_EQ(prev_node, net.a.node().name());
  ASSERT_TRUE(net.b.node()
                  .AcceptEvent(prev_node, std::make_unique<ports::ObserveClosureEvent>(
                                              y_name, prev_port, cseq, /*last=*/1))
                  .ok());
  auto st = net.b.QuerySignals(hb);
  ASSERT_TRUE(st.ok());
  ASSERT_NE(st->satisfied & system::kSignalPeerClosed, 0u);
  ASSERT_NE(st->satisfiable & system::kSignalReadable, 0u);

  const uint64_t before = testing::ReadMessageBlockingWaits();
  auto r = ReadMessageBlocking(net.b, hb, std::chrono::milliseconds(200));
  const uint64_t waits = testing::ReadMessageBlockingWaits() - before;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kShouldWait);
  EXPECT_LE(waits, 2u) << "ReadMessageBlocking spun: " << waits << " waits in 200 ms";
  EXPECT_TRUE(net.b.Close(hb).ok());
  EXPECT_TRUE(net.a.Close(pa->first).ok());
  net.Pump();
}

}  // namespace
}  // namespace moat::node
