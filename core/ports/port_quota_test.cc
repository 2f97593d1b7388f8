// PRT-8: ports one node makes us hold are capped per node
// (MAX_PORTS_PER_PEER_NODE), so one hostile node cannot use up the node-wide
// MAX_PORTS_PER_NODE for every other peer and for our own embedder.
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "core/check.h"
#include "core/ports/node.h"
#include "core/ports/test_network.h"

namespace moat::ports {
namespace {

using testing::Msg;
using testing::TestNetwork;

constexpr size_t kCap = 64;

// Node `from` sends node 0, on `pipe`, one message carrying a new port.
Status SendAPort(TestNetwork& net, size_t from, const PortRef& pipe) {
  PortRef x, y;
  MOAT_TRY(net.node(from).CreatePortPair(&x, &y));
  MOAT_TRY(net.node(from).SendUserMessage(pipe, Msg("port", {x.name()})));
  net.Pump();
  return OkStatus();
}

TEST(PortQuotaTest, OneNodeCannotFillThePortLimitForEveryone) {
  TestNetwork net;
  net.AddNode({.max_ports_per_peer_node = kCap});
  net.AddNode();
  net.AddNode();
  auto [to0_from1, at0_from1] = net.CreatePipe(1, 0);
  auto [to0_from2, at0_from2] = net.CreatePipe(2, 0);
  const size_t before = net.node(0).port_count();
  // The pipes' own ends on node 0 were made by merges, not from descriptors.
  for (size_t i = 0; i < kCap; ++i) {
    ASSERT_TRUE(SendAPort(net, 1, to0_from1).ok());
    ASSERT_TRUE(net.violations().empty()) << "blamed after " << i << " ports";
  }
  EXPECT_EQ(net.node(0).port_count(), before + kCap);
  // The next one is refused and its sender blamed.
  (void)SendAPort(net, 1, to0_from1);
  ASSERT_EQ(net.violations().size(), 1u);
  EXPECT_EQ(net.violations()[0].first, 1u);
  EXPECT_NE(net.violations()[0].second.find("MAX_PORTS_PER_PEER_NODE"), std::string::npos)
      << net.violations()[0].second;
  // Everyone else can still give node 0 ports, and node 0 can make its own.
  for (size_t i = 0; i < kCap; ++i) ASSERT_TRUE(SendAPort(net, 2, to0_from2).ok());
  EXPECT_EQ(net.violations().size(), 1u);
  PortRef a, b;
  EXPECT_TRUE(net.node(0).CreatePortPair(&a, &b).ok());
}

TEST(PortQuotaTest, ClosedPortsNoLongerCount) {
  TestNetwork net;
  net.AddNode({.max_ports_per_peer_node = kCap});
  net.AddNode();
  auto [to0, at0] = net.CreatePipe(1, 0);
  for (int round = 0; round < 3; ++round) {
    for (size_t i = 0; i < kCap; ++i) ASSERT_TRUE(SendAPort(net, 1, to0).ok());
    // Node 0 reads and closes every port it got: the quota is free again.
    std::unique_ptr<UserMessage> m;
    size_t closed = 0;
    while (net.node(0).GetMessage(at0, &m).ok() && m != nullptr) {
      for (const PortName& name : m->ports) {
        PortRef p;
        ASSERT_TRUE(net.node(0).GetPort(name, &p).ok());
        ASSERT_TRUE(net.node(0).ClosePort(p).ok());
        ++closed;
      }
    }
    ASSERT_EQ(closed, kCap);
    ASSERT_TRUE(net.Pump());
    ASSERT_TRUE(net.violations().empty()) << "round " << round << ": " << net.violations()[0].second;
  }
}

}  // namespace
}  // namespace moat::ports
