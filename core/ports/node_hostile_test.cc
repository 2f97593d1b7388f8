// Ports against a compromised node (issue 11): node 2 of a TestNetwork is
// hostile and sends well-formed events by hand, naming ports it learned.
// Each test states the property: the attacker gets itself cut off, never an
// honest node; honest pipes keep working or report peer-closed; nothing is
// left behind once the attacker is gone.
#include <gtest/gtest.h>

#include <string>

#include "core/ports/node.h"
#include "core/ports/port.h"
#include "core/ports/test_network.h"
#include "limits/limits.h"

namespace moat::ports {
namespace {

using testing::TestNetwork;

std::unique_ptr<UserMessage> Msg(const std::string& text) {
  auto m = std::make_unique<UserMessage>();
  m->payload.assign(text.begin(), text.end());
  return m;
}

std::string Read(Node& node, const PortRef& port) {
  std::unique_ptr<UserMessage> m;
  Status s = node.GetMessage(port, &m);
  if (!s.ok() || !m) return "";
  return std::string(m->payload.begin(), m->payload.end());
}

// What the (hostile) node holding `port` needs to speak on its link: the
// peer it sends to and the next control sequence number of that link.
struct Hop {
  NodeName peer_node;
  PortName peer_port;
  uint64_t next_control_seq;
};
Hop HopOf(const PortRef& port) {
  Port* p = port.port();
  MutexLock lock(&p->mu);
  return {p->peer_node, p->peer_port, p->next_control_sequence_num_to_send};
}

class NodeHostileTest : public ::testing::Test {
 protected:
  static constexpr size_t kAttacker = 2;
  void SetUp() override {
    for (int i = 0; i < 4; ++i) net.AddNode();  // 0, 1, 3 honest; 2 hostile
  }
  // Only the attacker was ever blamed.
  void ExpectOnlyAttackerBlamed() {
    for (const auto& [who, why] : net.violations()) {
      EXPECT_EQ(who, kAttacker) << "honest node " << who << " blamed: " << why;
    }
  }
  PortStatus StatusOf(size_t node, const PortRef& port) {
    PortStatus st;
    EXPECT_TRUE(net.node(node).GetStatus(port, &st).ok());
    return st;
  }
  TestNetwork net;
};

// Class 1 (MRG-3): a MergePort naming an unused port that was never offered
// to the attacker. Before: the victim port was spliced to the attacker, which
// then read the victim's messages. Now: the attacker is cut off, the victim
// untouched.
TEST_F(NodeHostileTest, MergeWithUnofferedUnusedPortDisconnectsTheAttacker) {
  Node& n1 = net.node(1);
  PortRef c, d;
  ASSERT_TRUE(n1.CreatePortPair(&c, &d).ok());  // d unused: the victim
  PortDescriptor desc;
  desc.peer_node = net.node(kAttacker).name();
  desc.peer_port = PortName::Random();
  desc.referring_node = net.node(kAttacker).name();
  desc.referring_port = PortName::Random();
  Status s = net.Inject(kAttacker, 1, std::make_unique<MergePortEvent>(d.name(), PortName::Random(),
                                                                       desc));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kProtocolViolation);
  ASSERT_TRUE(net.Pump());
  ExpectOnlyAttackerBlamed();
  EXPECT_TRUE(net.is_lost(kAttacker));
  ASSERT_TRUE(n1.SendUserMessage(c, Msg("for d")).ok());
  ASSERT_TRUE(net.Pump());
  EXPECT_EQ(Read(n1, d), "for d");
  EXPECT_FALSE(StatusOf(1, d).peer_closed);
  EXPECT_EQ(n1.port_count(), 2u);
}

// Class 1: an offer is for one node and one merge.
TEST_F(NodeHostileTest, MergeOfferIsForOneNodeOnly) {
  Node& n1 = net.node(1);
  PortRef c, d;
  ASSERT_TRUE(n1.CreatePortPair(&c, &d).ok());
  ASSERT_TRUE(n1.OfferForMerge(d, net.node(0).name()).ok());
  PortRef x, y;
  ASSERT_TRUE(net.node(kAttacker).CreatePortPair(&x, &y).ok());
  ASSERT_TRUE(net.node(kAttacker).MergePorts(y, n1.name(), d.name()).ok());
  ASSERT_TRUE(net.Pump());
  ASSERT_EQ(net.violations().size(), 1u);
  ExpectOnlyAttackerBlamed();
  // The rightful merger still can.
  PortRef a, b;
  ASSERT_TRUE(net.node(0).CreatePortPair(&a, &b).ok());
  ASSERT_TRUE(net.node(0).MergePorts(b, n1.name(), d.name()).ok());
  ASSERT_TRUE(net.Pump());
  ASSERT_TRUE(net.node(0).SendUserMessage(a, Msg("merged")).ok());
  ASSERT_TRUE(net.Pump());
  EXPECT_EQ(Read(n1, c), "merged");
  EXPECT_EQ(net.violations().size(), 1u);
}

// Class 2 (PRT-13): the attacker sends honest node 3 a message for a port
// that does not exist, carrying a descriptor whose peer is a@0 and whose
// name is a's previous hop's port name (b, which lives on node 1). Node 3
// creates that port and closes it: its ObserveClosure reaches a@0 from node
// 3 naming b. Before: node 0 cut node 3 off as a forger. Now: buffered, no
// honest node blamed, a-b keeps working.
TEST_F(NodeHostileTest, RelayedDescriptorNamingAnotherPortsHopBlamesNoHonestNode) {
  auto [a, b] = net.CreatePipe(0, 1);
  auto event = std::make_unique<UserMessageEvent>(PortName::Random(), PortName::Random(), 1, 1,
                                                  std::make_unique<UserMessage>());
  PortDescriptor desc;
  desc.peer_node = net.node(0).name();
  desc.peer_port = a.name();
  desc.referring_node = net.node(kAttacker).name();
  desc.referring_port = PortName::Random();
  event->message->ports.push_back(b.name());
  event->port_descriptors.push_back(desc);
  ASSERT_TRUE(net.Inject(kAttacker, 3, std::move(event)).ok());
  ASSERT_TRUE(net.Pump());
  ExpectOnlyAttackerBlamed();
  EXPECT_FALSE(net.is_lost(3));
  EXPECT_FALSE(net.is_lost(0));
  ASSERT_TRUE(net.node(1).SendUserMessage(b, Msg("to a")).ok());
  ASSERT_TRUE(net.node(0).SendUserMessage(a, Msg("to b")).ok());
  ASSERT_TRUE(net.Pump());
  EXPECT_EQ(Read(net.node(0), a), "to a");
  EXPECT_EQ(Read(net.node(1), b), "to b");
  EXPECT_EQ(net.node(3).port_count(), 0u);
}

// PRT-13 (issue 11 class 2, floods): 300 forged messages for a missing port
// on node 3, each with a descriptor whose peer is port a on node 0. Before:
// node 3 created and closed 300 ports, their closures piled up at a until
// node 0 blamed node 3 for overflowing MAX_PORT_BUFFERED_EVENTS. Now node 3
// creates at most MAX_VOUCHED_UNCONFIRMED_LINKS such ports and blames the
// attacker for the next one; a's pipe keeps working.
TEST_F(NodeHostileTest, DescriptorFloodThroughAnHonestNodeBlamesTheOriginator) {
  auto [a, b] = net.CreatePipe(0, 1);
  size_t refused = 0;
  for (int i = 0; i < 300 && !net.is_lost(kAttacker); ++i) {
    auto event = std::make_unique<UserMessageEvent>(PortName::Random(), PortName::Random(), 1, 1,
                                                    std::make_unique<UserMessage>());
    PortDescriptor desc;
    desc.peer_node = net.node(0).name();
    desc.peer_port = a.name();
    desc.referring_node = net.node(kAttacker).name();
    desc.referring_port = PortName::Random();
    event->message->ports.push_back(PortName::Random());
    event->port_descriptors.push_back(desc);
    if (!net.Inject(kAttacker, 3, std::move(event)).ok()) ++refused;
    ASSERT_TRUE(net.Pump());
  }
  EXPECT_GE(refused, 1u);
  ExpectOnlyAttackerBlamed();
  EXPECT_FALSE(net.is_lost(3));
  {
    Port* p = a.port();
    MutexLock lock(&p->mu);
    EXPECT_LE(p->buffered_events.size(), limits::MAX_VOUCHED_UNCONFIRMED_LINKS);
  }
  ASSERT_TRUE(net.node(1).SendUserMessage(b, Msg("to a")).ok());
  ASSERT_TRUE(net.node(0).SendUserMessage(a, Msg("to b")).ok());
  ASSERT_TRUE(net.Pump());
  EXPECT_EQ(Read(net.node(0), a), "to a");
  EXPECT_EQ(Read(net.node(1), b), "to b");
}

// PRT-13: the node whose event overflows a port's buffer need not be the one
// that filled it. The attacker fills a's buffer to MAX_PORT_BUFFERED_EVENTS
// from links of its own; one event from an honest
// node's unknown link (as a descriptor flood makes it send) tips it over.
// Before: the honest node was blamed. Now the node holding most of the
// buffer is, its events there are dropped and the honest one is kept.
TEST_F(NodeHostileTest, BufferOverflowBlamesTheNodeHoldingMostOfIt) {
  auto [a, b] = net.CreatePipe(0, 1);
  for (uint32_t i = 0; i < limits::MAX_PORT_BUFFERED_EVENTS; ++i) {
    ASSERT_TRUE(net.Inject(kAttacker, 0,
                           std::make_unique<UserMessageReadAckEvent>(a.name(), PortName::Random(),
                                                                     1, 0))
                    .ok());
  }
  {
    Port* p = a.port();
    MutexLock lock(&p->mu);
    ASSERT_EQ(p->buffered_events.size(), limits::MAX_PORT_BUFFERED_EVENTS);
  }
  Status s = net.Inject(3, 0,
                        std::make_unique<UserMessageReadAckEvent>(a.name(), PortName::Random(), 1, 0));
  EXPECT_TRUE(s.ok()) << s.error().ToString();
  ASSERT_TRUE(net.Pump());
  ExpectOnlyAttackerBlamed();
  EXPECT_TRUE(net.is_lost(kAttacker));
  EXPECT_FALSE(net.is_lost(3));
  {
    Port* p = a.port();
    MutexLock lock(&p->mu);
    EXPECT_EQ(p->buffered_events.size(), 1u);  // node 3's
  }
  ASSERT_TRUE(net.node(1).SendUserMessage(b, Msg("to a")).ok());
  ASSERT_TRUE(net.Pump());
  EXPECT_EQ(Read(net.node(0), a), "to a");
}

// Class 2: one bad descriptor among good ones. Before: the good ones were
// created, then closed again (sending closures to the ports they name under
// the honest node's name). Now nothing is created and the sender is blamed.
TEST_F(NodeHostileTest, BadDescriptorCreatesNoPortAtAll) {
  auto [h, x] = net.CreatePipe(1, kAttacker);
  auto [a, b] = net.CreatePipe(0, 3);
  const Hop hop = HopOf(x);
  auto event = std::make_unique<UserMessageEvent>(hop.peer_port, x.name(), hop.next_control_seq,
                                                  1, std::make_unique<UserMessage>());
  PortDescriptor good;
  good.peer_node = net.node(0).name();
  good.peer_port = a.name();
  good.referring_node = net.node(kAttacker).name();
  good.referring_port = PortName::Random();
  PortDescriptor bad = good;
  bad.referring_node = net.node(0).name();  // not the sender: invalid
  event->message->ports = {PortName::Random(), PortName::Random()};
  event->port_descriptors = {good, bad};
  const size_t ports_before = net.node(1).port_count();
  Status s = net.Inject(kAttacker, 1, std::move(event));
  ASSERT_FALSE(s.ok());
  // Nothing reached node 0 from node 1 (no closure for the good descriptor).
  for (const auto& link : net.ActiveLinks()) EXPECT_FALSE(link.from == 1 && link.to == 0);
  ASSERT_TRUE(net.Pump());
  ExpectOnlyAttackerBlamed();
  EXPECT_LE(net.node(1).port_count(), ports_before);
  EXPECT_TRUE(StatusOf(1, h).peer_closed);
}

// Class 7: invalid descriptors on a message for a port that does not exist
// (before: silently ignored) disconnect the sender.
TEST_F(NodeHostileTest, InvalidDescriptorsForAMissingPortDisconnectTheSender) {
  auto event = std::make_unique<UserMessageEvent>(PortName::Random(), PortName::Random(), 1, 1,
                                                  std::make_unique<UserMessage>());
  PortDescriptor bad;
  bad.peer_node = net.node(0).name();
  bad.peer_port = PortName::Random();
  bad.referring_node = net.node(0).name();  // not the sender
  bad.referring_port = PortName::Random();
  event->message->ports.push_back(PortName::Random());
  event->port_descriptors.push_back(bad);
  Status s = net.Inject(kAttacker, 1, std::move(event));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kProtocolViolation);
  ExpectOnlyAttackerBlamed();
  EXPECT_EQ(net.node(1).port_count(), 0u);
}

// Class 3 (PRT-14): detach-then-die. The attacker, h's legitimate peer,
// re-points h at a node that does not exist (ObserveProxy) and makes it its
// previous hop (UpdatePreviousPeer), then dies. Before: h stayed receiving
// for ever. Now h reports peer-closed (at once: the node is unreachable).
TEST_F(NodeHostileTest, DetachToANonexistentNodeThenDieClosesThePipe) {
  auto [h, x] = net.CreatePipe(1, kAttacker);
  const Hop hop = HopOf(x);
  const NodeName nowhere = NodeName::Random();
  ASSERT_TRUE(net.Inject(kAttacker, 1,
                         std::make_unique<ObserveProxyEvent>(
                             hop.peer_port, x.name(), hop.next_control_seq,
                             net.node(kAttacker).name(), x.name(), nowhere, PortName::Random()))
                  .ok());
  ASSERT_TRUE(net.Inject(kAttacker, 1,
                         std::make_unique<UpdatePreviousPeerEvent>(
                             hop.peer_port, x.name(), hop.next_control_seq + 1, nowhere,
                             PortName::Random()))
                  .ok());
  net.LoseNode(kAttacker);
  ASSERT_TRUE(net.Pump());
  PortStatus st = StatusOf(1, h);
  EXPECT_TRUE(st.peer_closed);
  EXPECT_FALSE(st.receiving_messages);
  std::unique_ptr<UserMessage> m;
  EXPECT_EQ(net.node(1).GetMessage(h, &m).error().code(), ErrorCode::kPeerClosed);
  ASSERT_TRUE(net.node(1).ClosePort(h).ok());
  ASSERT_TRUE(net.Pump());
  EXPECT_EQ(net.node(1).port_count(), 0u);
  ExpectOnlyAttackerBlamed();
}

// Class 3: the same with only UpdatePreviousPeer (the incoming side points at
// nowhere); the honest far end must not wait either.
TEST_F(NodeHostileTest, PreviousHopAtANonexistentNodeClosesThePipe) {
  auto [h, x] = net.CreatePipe(1, kAttacker);
  const Hop hop = HopOf(x);
  ASSERT_TRUE(net.Inject(kAttacker, 1,
                         std::make_unique<UpdatePreviousPeerEvent>(
                             hop.peer_port, x.name(), hop.next_control_seq, NodeName::Random(),
                             PortName::Random()))
                  .ok());
  ASSERT_TRUE(net.Pump());
  EXPECT_TRUE(StatusOf(1, h).peer_closed);
  std::unique_ptr<UserMessage> m;
  EXPECT_EQ(net.node(1).GetMessage(h, &m).error().code(), ErrorCode::kPeerClosed);
}

// Class 3: a node already lost is as unreachable as one that never existed:
// re-pointing at it after its loss was processed closes the port too.
TEST_F(NodeHostileTest, RepointingAtAnAlreadyLostNodeClosesThePipe) {
  auto [h, x] = net.CreatePipe(1, kAttacker);
  net.LoseNode(3);
  const Hop hop = HopOf(x);
  ASSERT_TRUE(net.Inject(kAttacker, 1,
                         std::make_unique<ObserveProxyEvent>(
                             hop.peer_port, x.name(), hop.next_control_seq,
                             net.node(kAttacker).name(), x.name(), net.node(3).name(),
                             PortName::Random()))
                  .ok());
  ASSERT_TRUE(net.Pump());
  EXPECT_TRUE(StatusOf(1, h).peer_closed);
}

// Class 4 (PRT-15): a closure whose last sequence number is below messages
// already queued. Before: accepted, and the later messages delivered anyway.
// Now: a violation; the reader gets the messages it has (in order), then
// peer-closed.
TEST_F(NodeHostileTest, ClosureBelowQueuedMessagesIsAViolation) {
  auto [h, x] = net.CreatePipe(1, kAttacker);
  for (const char* t : {"1", "2", "3"}) {
    ASSERT_TRUE(net.node(kAttacker).SendUserMessage(x, Msg(t)).ok());
  }
  ASSERT_TRUE(net.Pump());
  const Hop hop = HopOf(x);
  Status s = net.Inject(kAttacker, 1,
                        std::make_unique<ObserveClosureEvent>(hop.peer_port, x.name(),
                                                              hop.next_control_seq, 1));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kProtocolViolation);
  ASSERT_TRUE(net.Pump());
  EXPECT_EQ(Read(net.node(1), h), "1");
  EXPECT_EQ(Read(net.node(1), h), "2");
  EXPECT_EQ(Read(net.node(1), h), "3");
  std::unique_ptr<UserMessage> m;
  EXPECT_EQ(net.node(1).GetMessage(h, &m).error().code(), ErrorCode::kPeerClosed);
  ExpectOnlyAttackerBlamed();
}

// Class 4: a closure announcing an astronomically high last message. Before:
// accepted; the reader waited for ever, even after the attacker was lost.
// Now: a violation, and the pipe reports peer-closed.
TEST_F(NodeHostileTest, ClosureFarBeyondTheWindowIsAViolation) {
  auto [h, x] = net.CreatePipe(1, kAttacker);
  const Hop hop = HopOf(x);
  Status s = net.Inject(kAttacker, 1,
                        std::make_unique<ObserveClosureEvent>(hop.peer_port, x.name(),
                                                              hop.next_control_seq,
                                                              uint64_t{1} << 62));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kProtocolViolation);
  ASSERT_TRUE(net.Pump());
  PortStatus st = StatusOf(1, h);
  EXPECT_TRUE(st.peer_closed);
  EXPECT_FALSE(st.receiving_messages);
  ExpectOnlyAttackerBlamed();
}

// Class 5: the attacker, h's previous hop, re-points h again and again
// (ObserveProxy) while h's writer keeps sending, so every retired link holds
// parked events. Before: the cap dropped only empty links and the list grew
// with every re-point. Now it never exceeds MAX_PORT_RETIRED_LINKS.
TEST_F(NodeHostileTest, RetiredLinksAreBoundedEvenWithParkedEvents) {
  auto [h, x] = net.CreatePipe(1, kAttacker);
  const Hop hop = HopOf(x);
  uint64_t seq = hop.next_control_seq;
  PortName proxy = x.name();
  const size_t rounds = limits::MAX_PORT_RETIRED_LINKS + 8;
  for (size_t r = 0; r < rounds; ++r) {
    const PortName target = PortName::Random();
    ASSERT_TRUE(net.Inject(kAttacker, 1,
                           std::make_unique<ObserveProxyEvent>(
                               hop.peer_port, x.name(), seq++, net.node(kAttacker).name(), proxy,
                               net.node(kAttacker).name(), target))
                    .ok());
    proxy = target;
    for (uint32_t i = 0; i < limits::MAX_UNCONFIRMED_LINK_EVENTS + 4; ++i) {
      ASSERT_TRUE(net.node(1).SendUserMessage(h, Msg("m")).ok());
    }
    Port* p = h.port();
    MutexLock lock(&p->mu);
    EXPECT_LE(p->retired.size(), limits::MAX_PORT_RETIRED_LINKS) << "round " << r;
  }
  net.LoseNode(kAttacker);
  EXPECT_TRUE(StatusOf(1, h).peer_closed);
  {
    Port* p = h.port();
    MutexLock lock(&p->mu);
    EXPECT_TRUE(p->retired.empty());
    EXPECT_TRUE(p->parked.empty());
  }
  ASSERT_TRUE(net.node(1).ClosePort(h).ok());
  ASSERT_TRUE(net.Pump());
  EXPECT_EQ(net.node(1).port_count(), 0u);
  ExpectOnlyAttackerBlamed();
}

// Class 5: the attacker makes honest node 1 create ports (from descriptors on
// messages for a port that does not exist) whose peer is a port of node 1
// itself; each closes at once and its closure waits, buffered, at that port
// for a switch only the attacker could send. Before: those local events
// stayed after the attacker was lost. Now they are freed with it.
TEST_F(NodeHostileTest, LocalEventsCausedByTheAttackerAreFreedWhenItIsLost) {
  PortRef c, d;
  ASSERT_TRUE(net.node(1).CreatePortPair(&c, &d).ok());
  for (int m = 0; m < 4; ++m) {
    auto event = std::make_unique<UserMessageEvent>(PortName::Random(), PortName::Random(), 1, 1,
                                                    std::make_unique<UserMessage>());
    for (uint32_t i = 0; i < limits::MAX_MESSAGE_HANDLE_COUNT; ++i) {
      PortDescriptor desc;
      desc.peer_node = net.node(1).name();
      desc.peer_port = d.name();
      desc.referring_node = net.node(kAttacker).name();
      desc.referring_port = PortName::Random();
      event->message->ports.push_back(PortName::Random());
      event->port_descriptors.push_back(desc);
    }
    ASSERT_TRUE(net.Inject(kAttacker, 1, std::move(event)).ok());
  }
  ASSERT_TRUE(net.Pump());
  auto buffered = [&] {
    Port* p = d.port();
    MutexLock lock(&p->mu);
    return p->buffered_events.size();
  };
  EXPECT_EQ(buffered(), 4u * limits::MAX_MESSAGE_HANDLE_COUNT);
  net.LoseNode(kAttacker);
  ASSERT_TRUE(net.Pump());
  EXPECT_EQ(buffered(), 0u);
  // The honest pipe is unharmed.
  ASSERT_TRUE(net.node(1).SendUserMessage(c, Msg("still")).ok());
  ASSERT_TRUE(net.Pump());
  EXPECT_EQ(Read(net.node(1), d), "still");
  EXPECT_EQ(net.node(1).port_count(), 2u);
  ExpectOnlyAttackerBlamed();
}

}  // namespace
}  // namespace moat::ports
