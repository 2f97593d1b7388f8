// NodeController against a compromised broker-side peer, in one process: the
// test speaks the node channel by hand on one end of a socketpair (a fake
// broker) to a real child NodeController on the other end.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <string>

#include "core/mutex.h"
#include "core/node/node_channel.h"
#include "core/node/node_controller.h"
#include "core/node/testing/fake_child.h"
#include "core/ports/event_codec.h"
#include "transport/transport.h"

namespace moat::node {
namespace {

constexpr auto kTimeout = std::chrono::seconds(20);

struct LossCounter {
  Mutex mu;
  CondVar cv;
  std::map<ports::NodeName, int> count ABSL_GUARDED_BY(mu);

  NodeControllerOptions Options() {
    NodeControllerOptions o;
    o.on_node_lost = [this](const ports::NodeName& n, const Error&) {
      MutexLock lock(&mu);
      ++count[n];
      cv.SignalAll();
    };
    return o;
  }
  bool WaitFor(const ports::NodeName& n) {
    const auto deadline = std::chrono::steady_clock::now() + kTimeout;
    MutexLock lock(&mu);
    while (count[n] == 0) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) return false;
      cv.WaitFor(&mu, deadline - now);
    }
    return true;
  }
  int Of(const ports::NodeName& n) {
    MutexLock lock(&mu);
    return count[n];
  }
};

class FakeBrokerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    auto t = transport::TransportHandle(UniqueFd(sv[0])).CreateTransport();
    ASSERT_TRUE(t.ok()) << t.error().ToString();
    broker_ = std::move(*t);
    NodeChannelHeader hello;
    hello.type = NodeChannelMessageType::kHello;
    hello.sender = broker_name_;
    hello.target = child_name_;
    const ports::PortName port = ports::PortName::Random();
    hello.subject_hi = port.hi;
    hello.subject_lo = port.lo;
    ASSERT_TRUE(broker_->Send(EncodeNodeChannelMessage(hello)).ok());
    auto c = NodeController::ConnectToBroker(UniqueFd(sv[1]), kTimeout, losses_.Options());
    ASSERT_TRUE(c.ok()) << c.error().ToString();
    child_ = std::move(*c);
  }
  void SendEvent(const ports::NodeName& from, std::span<const uint8_t> body) {
    NodeChannelHeader h;
    h.type = NodeChannelMessageType::kEvent;
    h.sender = from;
    h.target = child_name_;
    ASSERT_TRUE(broker_->Send(EncodeNodeChannelMessage(h, body)).ok());
  }
  void SendNodeLost(const ports::NodeName& lost) {
    NodeChannelHeader h;
    h.type = NodeChannelMessageType::kNodeLost;
    h.sender = broker_name_;
    h.target = child_name_;
    h.subject_hi = lost.hi;
    h.subject_lo = lost.lo;
    ASSERT_TRUE(broker_->Send(EncodeNodeChannelMessage(h)).ok());
  }

  const ports::NodeName broker_name_ = ports::NodeName::Random();
  const ports::NodeName child_name_ = ports::NodeName::Random();
  LossCounter losses_;
  std::unique_ptr<transport::Transport> broker_;
  std::unique_ptr<NodeController> child_;
};

// Issue 11 class 7 (NOD-8): bad events relayed from another child X. Before:
// on_node_lost(X) ran once per bad event (and again for the broker's loss
// report). Now once per node, and X's later events are dropped unread; the
// broker link stays up.
TEST_F(FakeBrokerTest, ARelayedNodeIsReportedLostOnce) {
  const ports::NodeName x = ports::NodeName::Random();
  const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x01};
  SendEvent(x, junk);
  SendEvent(x, junk);
  SendNodeLost(x);
  // A marker after them on the same (ordered) connection.
  const ports::NodeName y = ports::NodeName::Random();
  SendNodeLost(y);
  ASSERT_TRUE(losses_.WaitFor(y));
  EXPECT_EQ(losses_.Of(x), 1);
  EXPECT_EQ(losses_.Of(broker_name_), 0);
  auto nodes = child_->ConnectedNodes();
  EXPECT_EQ(nodes.size(), 1u);
}


using testing::FakeChild;

// PRT-14 on a child: child X re-points a port of child Y at a node that does
// not exist (ObserveProxy, UpdatePreviousPeer), to die afterwards; Y cannot
// tell that the node does not exist. Before: the broker relayed the events
// and nothing ever told Y. Now a loss report for that node precedes each.
TEST(FakeChildrenTest, BrokerReportsAGhostNodeAheadOfARelayedRepointing) {
  auto broker = NodeController::CreateBroker();
  FakeChild x = FakeChild::Join(*broker);
  FakeChild y = FakeChild::Join(*broker);
  // Both must count as connected, or the final check races them.
  ASSERT_TRUE(testing::WaitForConnectedNodes(*broker, 2));
  const ports::NodeName ghost = ports::NodeName::Random();
  NodeChannelHeader h;
  h.type = NodeChannelMessageType::kEvent;
  h.sender = x.name;
  h.target = y.name;
  std::vector<UniqueFd> no_fds;
  ports::ObserveProxyEvent proxy(ports::PortName::Random(), ports::PortName::Random(), 1, x.name,
                                 ports::PortName::Random(), ghost, ports::PortName::Random());
  ASSERT_TRUE(x.t->Send(EncodeNodeChannelMessage(h, ports::SerializeEvent(proxy, &no_fds))).ok());
  // A re-pointing at a node that exists (x itself) is relayed alone.
  ports::UpdatePreviousPeerEvent update(ports::PortName::Random(), ports::PortName::Random(), 2,
                                        x.name, ports::PortName::Random());
  ASSERT_TRUE(x.t->Send(EncodeNodeChannelMessage(h, ports::SerializeEvent(update, &no_fds))).ok());

  FakeChild::Got first = y.Receive();
  EXPECT_EQ(first.header.type, NodeChannelMessageType::kNodeLost);
  EXPECT_EQ(first.header.subject_node(), ghost);
  FakeChild::Got second = y.Receive();
  EXPECT_EQ(second.header.type, NodeChannelMessageType::kEvent);
  EXPECT_EQ(second.header.sender, x.name);
  FakeChild::Got third = y.Receive();
  EXPECT_EQ(third.header.type, NodeChannelMessageType::kEvent);
  // Nobody was cut off.
  EXPECT_EQ(broker->ConnectedNodes().size(), 2u);
}

}  // namespace
}  // namespace moat::node
