// TRP-12 at the node layer: a hostile broker (a raw socket the test speaks
// for by hand) sends a child an event carrying a descriptor whose last
// close() blocks (a lingering TCP socket), in an event that fails to decode
// only after the descriptor was taken into the message. The child's IO
// thread drops the event and cuts the broker off; it must not sit in close()
// meanwhile, so the loss is reported at once.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <vector>

#include "core/deferred_close.h"
#include "core/mutex.h"
#include "core/node/node_channel.h"
#include "core/node/node_controller.h"
#include "core/ports/event.h"
#include "core/ports/event_codec.h"
#include "core/testing/lingering_socket.h"
#include "transport/testing/raw_peer.h"

namespace moat::node {
namespace {

using moat::testing::LingeringSocket;
using transport::testing::OpenDevNull;
using transport::testing::RawFrame;
using transport::testing::SendRaw;
using transport::testing::WriteAll;
using Clock = std::chrono::steady_clock;

TEST(NodePeerDescriptorTest, LingeringDescriptorInABadEventDoesNotDelayTheLossReport) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd raw(sv[0]);
  const ports::NodeName broker = ports::NodeName::Random();
  const ports::NodeName child = ports::NodeName::Random();
  NodeChannelHeader hello;
  hello.type = NodeChannelMessageType::kHello;
  hello.sender = broker;
  hello.target = child;
  const ports::PortName bootstrap = ports::PortName::Random();
  hello.subject_hi = bootstrap.hi;
  hello.subject_lo = bootstrap.lo;
  ASSERT_TRUE(WriteAll(raw.get(), RawFrame(EncodeNodeChannelMessage(hello))));

  Mutex mu;
  CondVar cv;
  bool broker_lost = false;
  NodeControllerOptions options;
  options.on_node_lost = [&](const ports::NodeName& n, const Error&) {
    MutexLock lock(&mu);
    if (n == broker) broker_lost = true;
    cv.SignalAll();
  };
  auto c = NodeController::ConnectToBroker(UniqueFd(sv[1]), std::chrono::seconds(20), options);
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  std::unique_ptr<NodeController> controller = std::move(*c);

  // A UserMessage with one descriptor, then one trailing byte: the decoder
  // takes the descriptor into the message before it finds the junk.
  auto message = std::make_unique<ports::UserMessage>();
  message->payload = {'x'};
  message->fds.emplace_back(OpenDevNull(1)[0]);
  std::vector<UniqueFd> serialized_fds;
  std::vector<uint8_t> body = ports::SerializeEvent(
      std::make_unique<ports::UserMessageEvent>(ports::PortName::Random(),
                                                ports::PortName::Random(),
                                                ports::kInitialSequenceNum,
                                                ports::kInitialSequenceNum, std::move(message)),
      &serialized_fds);
  ASSERT_EQ(serialized_fds.size(), 1u);
  body.push_back(0);
  NodeChannelHeader h;
  h.type = NodeChannelMessageType::kEvent;
  h.sender = broker;
  h.target = child;
  h.fd_count = 1;
  const std::vector<uint8_t> frame = RawFrame(EncodeNodeChannelMessage(h, body), 1);

  // The weapon rides with the frame's first bytes and the attacker's copy is
  // closed before the rest arrives: the child's close is the last one.
  LingeringSocket weapon = LingeringSocket::Make();
  const std::vector<uint8_t> first(frame.begin(), frame.begin() + kFrameHeaderSize);
  const std::vector<uint8_t> rest(frame.begin() + kFrameHeaderSize, frame.end());
  ASSERT_TRUE(SendRaw(raw.get(), first, {weapon.weapon.release()}));
  const Clock::time_point start = Clock::now();
  ASSERT_TRUE(SendRaw(raw.get(), rest));
  bool reported = false;
  {
    MutexLock lock(&mu);
    while (!broker_lost && Clock::now() - start < moat::testing::kLingerGuard) {
      cv.WaitFor(&mu, std::chrono::milliseconds(50));
    }
    reported = broker_lost;
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("[measure] loss of a broker that sent a lingering descriptor reported after %.3f s\n",
              seconds);
  EXPECT_TRUE(reported) << "the child's IO thread was stuck in close() for " << seconds << " s";
  if (!reported) weapon.Disarm();
  controller.reset();
  moat::testing::RunWithin("the closer thread", &weapon, [] { WaitForDeferredCloses(); });
}

}  // namespace
}  // namespace moat::node
