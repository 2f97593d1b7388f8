// Issue 15 item 2: a node that cuts another off tells it why (node channel
// kDisconnect), and a peer's parting words are checked like any input: only
// on a direct connection, never relayed, bounded and UTF-8.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <chrono>
#include <optional>
#include <string>

#include "core/mutex.h"
#include "core/node/node_channel.h"
#include "core/node/node_controller.h"
#include "core/node/pipe_wait.h"
#include "core/node/testing/fake_child.h"
#include "transport/transport.h"

namespace moat::node {
namespace {

using testing::FakeChild;
constexpr auto kTimeout = std::chrono::seconds(20);

// Records the errors on_node_lost reports, per node.
struct LossLog {
  Mutex mu;
  CondVar cv;
  std::map<ports::NodeName, Error> errors ABSL_GUARDED_BY(mu);

  NodeControllerOptions Options() {
    NodeControllerOptions o;
    o.on_node_lost = [this](const ports::NodeName& n, const Error& e) {
      MutexLock lock(&mu);
      errors.emplace(n, e);
      cv.SignalAll();
    };
    return o;
  }
  std::optional<Error> WaitFor(const ports::NodeName& n) {
    const auto deadline = std::chrono::steady_clock::now() + kTimeout;
    MutexLock lock(&mu);
    while (!errors.contains(n)) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) return std::nullopt;
      cv.WaitFor(&mu, deadline - now);
    }
    return errors.at(n);
  }
};

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// The embedder's verdict reaches the offender: a child whose message the
// broker reports as bad learns that it was cut off, by whom and why.
TEST(NodeDisconnectTest, ABadMessageReportTellsTheSenderWhy) {
  LossLog broker_log, child_log;
  auto broker = NodeController::CreateBroker(broker_log.Options());
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  auto launched = broker->AddChild(UniqueFd(sv[0]));
  ASSERT_TRUE(launched.ok()) << launched.error().ToString();
  auto c = NodeController::ConnectToBroker(UniqueFd(sv[1]), kTimeout, child_log.Options());
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  std::unique_ptr<NodeController> child = std::move(*c);
  EXPECT_FALSE(child->BrokerLoss().has_value());

  const std::vector<uint8_t> bad = {'n', 'o', 'p', 'e'};
  ASSERT_TRUE(child->core().WriteMessage(child->bootstrap(), bad, {}, {}).ok());
  auto readable = WaitForSignals(broker->core(), launched->bootstrap, system::kSignalReadable,
                                 kTimeout);
  ASSERT_TRUE(readable.ok()) << readable.error().ToString();
  system::Handle context = system::kInvalidHandle;
  auto m = broker->core().ReadMessage(launched->bootstrap, nullptr, nullptr, &context);
  ASSERT_TRUE(m.ok()) << m.error().ToString();
  ASSERT_TRUE(broker->core().NotifyBadMessage(context, "field 'size' is out of range").ok());

  std::optional<Error> lost = child_log.WaitFor(broker->name());
  ASSERT_TRUE(lost.has_value()) << "the child never learned it was cut off";
  EXPECT_EQ(lost->code(), ErrorCode::kPeerClosed) << lost->ToString();
  EXPECT_TRUE(Contains(lost->ToString(), "node " + broker->name().ToString() +
                                             " cut this node off"))
      << lost->ToString();
  EXPECT_TRUE(Contains(lost->ToString(), "field 'size' is out of range")) << lost->ToString();
  std::optional<Error> recorded = child->BrokerLoss();
  ASSERT_TRUE(recorded.has_value());
  EXPECT_EQ(recorded->ToString(), lost->ToString());
  // The broker's own report says the same.
  std::optional<Error> cut = broker_log.WaitFor(launched->name);
  ASSERT_TRUE(cut.has_value());
  EXPECT_TRUE(Contains(cut->ToString(), "field 'size' is out of range")) << cut->ToString();
}

// A protocol violation the broker detects is explained to the offender too,
// as its connection's last message.
TEST(NodeDisconnectTest, AViolationIsExplainedToTheOffender) {
  auto broker = NodeController::CreateBroker();
  FakeChild x = FakeChild::Join(*broker);
  ASSERT_TRUE(testing::WaitForConnectedNodes(*broker, 1));
  NodeChannelHeader h;
  h.type = NodeChannelMessageType::kNodeLost;  // broker-only
  h.sender = x.name;
  h.target = x.broker;
  h.subject_hi = 1;
  ASSERT_TRUE(x.t->Send(EncodeNodeChannelMessage(h)).ok());
  FakeChild::Got last = x.Receive();
  EXPECT_EQ(last.header.type, NodeChannelMessageType::kDisconnect);
  EXPECT_EQ(last.header.sender, x.broker);
  EXPECT_EQ(last.header.target, x.name);
  const std::string reason(last.body.begin(), last.body.end());
  EXPECT_TRUE(Contains(reason, "a child may send only events")) << reason;
  EXPECT_FALSE(x.t->Receive(kTimeout).ok());  // and then the end of the stream
}

// Parting words are for the direct peer only: a child cannot make the broker
// hand another child a forged "you were cut off" (nor have it cut off).
TEST(NodeDisconnectTest, ADisconnectForAnotherNodeIsAViolationNotRelayed) {
  LossLog log;
  auto broker = NodeController::CreateBroker(log.Options());
  FakeChild x = FakeChild::Join(*broker);
  FakeChild y = FakeChild::Join(*broker);
  ASSERT_TRUE(testing::WaitForConnectedNodes(*broker, 2));
  ASSERT_TRUE(x.t->Send(EncodeDisconnectMessage(x.name, y.name, "you are evicted")).ok());
  std::optional<Error> lost = log.WaitFor(x.name);
  ASSERT_TRUE(lost.has_value());
  EXPECT_EQ(lost->code(), ErrorCode::kProtocolViolation) << lost->ToString();
  EXPECT_TRUE(Contains(lost->ToString(), "never relayed")) << lost->ToString();
  // y hears only that x is gone, and stays connected.
  FakeChild::Got got = y.Receive();
  EXPECT_EQ(got.header.type, NodeChannelMessageType::kNodeLost);
  EXPECT_EQ(got.header.subject_node(), x.name);
  EXPECT_EQ(broker->ConnectedNodes(), std::vector<ports::NodeName>{y.name});
}

// A child that leaves with a reason: the broker reports the child lost with
// the child's own words (no violation).
TEST(NodeDisconnectTest, AChildsPartingWordsReachTheBrokersReport) {
  LossLog log;
  auto broker = NodeController::CreateBroker(log.Options());
  FakeChild x = FakeChild::Join(*broker);
  ASSERT_TRUE(testing::WaitForConnectedNodes(*broker, 1));
  ASSERT_TRUE(x.t->Send(EncodeDisconnectMessage(x.name, x.broker, "renderer shutting down")).ok());
  std::optional<Error> lost = log.WaitFor(x.name);
  ASSERT_TRUE(lost.has_value());
  EXPECT_EQ(lost->code(), ErrorCode::kPeerClosed) << lost->ToString();
  EXPECT_TRUE(Contains(lost->ToString(), "cut this node off: renderer shutting down"))
      << lost->ToString();
  EXPECT_FALSE(x.t->Receive(kTimeout).ok());  // no reply: the broker just closes
}

}  // namespace
}  // namespace moat::node
