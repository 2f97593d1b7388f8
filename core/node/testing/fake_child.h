// Test helper: a child node the test speaks for by hand (the node channel
// over a raw Transport), connected to a real broker NodeController. For
// hostile-child tests: it can send any envelope as any name.
//
//   auto broker = NodeController::CreateBroker();
//   FakeChild x = FakeChild::Join(*broker);
//   x.t->Send(EncodeNodeChannelMessage(header, body));
//   FakeChild::Got reply = x.Receive();
#ifndef MOAT_CORE_NODE_TESTING_FAKE_CHILD_H_
#define MOAT_CORE_NODE_TESTING_FAKE_CHILD_H_

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <vector>

#include "core/node/node_channel.h"
#include "core/node/node_controller.h"
#include "transport/transport.h"

namespace moat::node::testing {

struct FakeChild {
  static constexpr auto kTimeout = std::chrono::seconds(20);

  std::unique_ptr<transport::Transport> t;
  ports::NodeName name;
  ports::NodeName broker;

  // Connects to `broker`, reads its hello and answers it.
  static FakeChild Join(NodeController& broker) {
    FakeChild c;
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    auto launched = broker.AddChild(UniqueFd(sv[0]));
    EXPECT_TRUE(launched.ok());
    auto t = transport::TransportHandle(UniqueFd(sv[1])).CreateTransport();
    EXPECT_TRUE(t.ok());
    c.t = std::move(*t);
    auto hello = c.Receive();
    EXPECT_EQ(hello.header.type, NodeChannelMessageType::kHello);
    c.name = hello.header.target;
    c.broker = hello.header.sender;
    NodeChannelHeader reply;
    reply.type = NodeChannelMessageType::kHelloReply;
    reply.sender = c.name;
    reply.target = c.broker;
    EXPECT_TRUE(c.t->Send(EncodeNodeChannelMessage(reply)).ok());
    return c;
  }

  struct Got {
    NodeChannelHeader header;
    std::vector<uint8_t> body;
  };
  // The next envelope (a failed expectation and an empty one if none).
  Got Receive() {
    auto m = t->Receive(kTimeout);
    EXPECT_TRUE(m.ok());
    if (!m.ok()) return {};
    auto d = DecodeNodeChannelMessage(m->payload, m->fds.size());
    EXPECT_TRUE(d.ok());
    if (!d.ok()) return {};
    return {d->header, std::vector<uint8_t>(d->body.begin(), d->body.end())};
  }
};

// Waits until `broker` counts `n` handshaken children (it reads each hello
// reply on that child's own thread).
inline bool WaitForConnectedNodes(NodeController& broker, size_t n) {
  for (int i = 0; i < 10000 && broker.ConnectedNodes().size() < n; ++i) ::usleep(1000);
  return broker.ConnectedNodes().size() == n;
}

}  // namespace moat::node::testing

#endif  // MOAT_CORE_NODE_TESTING_FAKE_CHILD_H_
