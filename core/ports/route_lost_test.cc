// PRT-23 (issue 12 item 4): a link between two nodes breaks while both stay
// connected to a third. A pipe whose route ran over that link must either
// keep working or report PEER_CLOSED on both ends; never the half-dead pipe
// where one end writes into nothing and nobody is told.
#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

#include "core/ports/event.h"
#include "core/ports/node.h"
#include "core/ports/test_network.h"

namespace moat::ports {
namespace {

using testing::Msg;
using testing::TestNetwork;


// Every message readable now, as text.
std::vector<std::string> Drain(Node& node, const PortRef& port) {
  std::vector<std::string> out;
  std::unique_ptr<UserMessage> m;
  while (node.GetMessage(port, &m).ok() && m) {
    out.emplace_back(m->payload.begin(), m->payload.end());
  }
  return out;
}

bool PeerClosed(Node& node, const PortRef& port) {
  PortStatus st;
  EXPECT_TRUE(node.GetStatus(port, &st).ok());
  return st.peer_closed;
}

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// Param: (events delivered before the cut, whether node 2 is told as well).
class RouteLostTest : public ::testing::TestWithParam<std::tuple<int, bool>> {};

// E on node 0, its peer y on node 1 moves to node 2 (leaving a proxy on node
// 1); at each step of the move the link 1-2 breaks.
TEST_P(RouteLostTest, PipeOverCutLinkWorksOrClosesOnBothEnds) {
  const auto [steps, both_sides] = GetParam();
  TestNetwork net;
  Node& n0 = net.AddNode();
  Node& n1 = net.AddNode();
  Node& n2 = net.AddNode();
  auto [a, b] = net.CreatePipe(1, 2);  // carrier 1 -> 2
  auto [e, y] = net.CreatePipe(0, 1);  // y moves to node 2
  ASSERT_TRUE(n0.SendUserMessage(e, Msg("before")).ok());
  ASSERT_TRUE(n1.SendUserMessage(a, Msg("carry", {y.name()})).ok());
  for (int i = 0; i < steps; ++i) {
    auto links = net.ActiveLinks();
    if (links.empty()) break;
    net.DeliverOne(links.front());
  }
  net.LoseLink(1, 2, both_sides);
  ASSERT_TRUE(net.Pump());
  PortRef f;
  std::unique_ptr<UserMessage> m;
  while (n2.GetMessage(b, &m).ok() && m) {
    for (const PortName& p : m->ports) ASSERT_TRUE(n2.GetPort(p, &f).ok());
  }
  std::vector<std::string> at_f, at_e;
  if (!f.is_valid()) {
    // The moved end was lost with the link: E must be told.
    EXPECT_TRUE(PeerClosed(n0, e)) << "E's peer never arrived, E is not told";
  } else {
    (void)n0.SendUserMessage(e, Msg("e2f"));
    (void)n2.SendUserMessage(f, Msg("f2e"));
    ASSERT_TRUE(net.Pump());
    at_f = Drain(n2, f);
    at_e = Drain(n0, e);
    const bool closed_e = PeerClosed(n0, e), closed_f = PeerClosed(n2, f);
    EXPECT_EQ(closed_e, closed_f) << "half-dead pipe: E peer_closed=" << closed_e
                                  << " F peer_closed=" << closed_f;
    if (!closed_e && !closed_f) {
      EXPECT_TRUE(Contains(at_f, "before"));
      EXPECT_TRUE(Contains(at_f, "e2f"));
      EXPECT_TRUE(Contains(at_e, "f2e"));
    }
    // What arrived, arrived in order.
    if (Contains(at_f, "e2f")) EXPECT_EQ(at_f.front(), "before");
    ASSERT_TRUE(n2.ClosePort(f).ok());
  }
  ASSERT_TRUE(n0.ClosePort(e).ok());
  ASSERT_TRUE(n1.ClosePort(a).ok());
  ASSERT_TRUE(n2.ClosePort(b).ok());
  ASSERT_TRUE(net.Pump());
  EXPECT_TRUE(net.violations().empty()) << net.violations().front().second;
  EXPECT_EQ(n0.port_count(), 0u) << net.Describe();
  EXPECT_EQ(n2.port_count(), 0u) << net.Describe();
}

INSTANTIATE_TEST_SUITE_P(EachStep, RouteLostTest,
                         ::testing::Combine(::testing::Range(0, 20), ::testing::Bool()));

// A forged RouteLost (from a node that is not the port's next hop) changes
// nothing and blames nobody; the real next hop's one closes.
TEST(RouteLostDirectTest, ForgedRouteLostIsIgnored) {
  TestNetwork net;
  Node& n0 = net.AddNode();
  Node& n1 = net.AddNode();
  net.AddNode();
  auto [e, f] = net.CreatePipe(0, 1);
  ASSERT_TRUE(net.Inject(2, 0, std::make_unique<RouteLostEvent>(e.name(), f.name())).ok());
  ASSERT_TRUE(net.Inject(2, 0, std::make_unique<RouteLostEvent>(e.name(), PortName::Random())).ok());
  ASSERT_TRUE(net.Inject(1, 0, std::make_unique<RouteLostEvent>(e.name(), PortName::Random())).ok());
  ASSERT_TRUE(net.Pump());
  EXPECT_FALSE(PeerClosed(n0, e));
  EXPECT_FALSE(PeerClosed(n1, f));
  ASSERT_TRUE(n0.SendUserMessage(e, Msg("still")).ok());
  ASSERT_TRUE(net.Pump());
  EXPECT_EQ(Drain(n1, f), std::vector<std::string>{"still"});
  // From the real next hop (f@node 1): both ends close.
  ASSERT_TRUE(net.Inject(1, 0, std::make_unique<RouteLostEvent>(e.name(), f.name())).ok());
  ASSERT_TRUE(net.Pump());
  EXPECT_TRUE(PeerClosed(n0, e));
  EXPECT_TRUE(net.violations().empty());
}

// An end bounced to another node and back, `rounds` round trips on a helper
// pipe, each hop delivering only what the carrying message needs (as the
// model's Bounce does): bypass events are still in flight afterwards.
PortRef Bounce(TestNetwork& net, PortRef x, size_t home, size_t away, int rounds) {
  auto [c_home, c_away] = net.CreatePipe(home, away);
  const PortRef carrier[2] = {c_home, c_away};
  const size_t node_of[2] = {home, away};
  int at = 0;
  for (int hop = 0; hop < 2 * rounds; ++hop) {
    EXPECT_TRUE(net.node(node_of[at]).SendUserMessage(carrier[at], Msg("", {x.name()})).ok());
    const int to = 1 - at;
    std::unique_ptr<UserMessage> got;
    for (size_t turn = 0; !got; ++turn) {
      EXPECT_TRUE(net.node(node_of[to]).GetMessage(carrier[to], &got).ok());
      if (got) break;
      auto links = net.ActiveLinks();
      if (links.empty()) {
        ADD_FAILURE() << "hop " << hop << ": the carrying message is lost";
        return x;
      }
      net.DeliverOne(links[turn % links.size()]);
    }
    EXPECT_TRUE(net.node(node_of[to]).GetPort(got->ports[0], &x).ok());
    at = to;
  }
  EXPECT_TRUE(net.node(home).ClosePort(c_home).ok());
  EXPECT_TRUE(net.node(away).ClosePort(c_away).ok());
  return x;
}

// Param: (round trips of the bounce, the node not told of the cut: 0 or 1,
// events delivered after the bounce before the cut, round-robin).
class BouncedThenCutTest : public ::testing::TestWithParam<std::tuple<int, size_t, int>> {};

// Found by PortsModel.OneSidedLinkLossNeverLeavesAHalfDeadPipe (seeds 4, 6,
// 7 of 30): E on node 0, F on node 1 bounced through node 2 and back; then
// the link 2-0 breaks and only node 2 is told. E had just bypassed F's old
// proxy on node 1 and sends to F's port on node 2 (now a proxy), which
// learns E as its previous hop only from the old proxy's UpdatePreviousPeer,
// when E is already unreachable for it: it closed towards F, and E, whose
// events vanish over the cut link, was never told. Now node 2 answers with
// a RouteLost to the old proxy, whose node passes it on to E (which still
// counts that proxy as on its route: its new link is unconfirmed).
TEST_P(BouncedThenCutTest, BothEndsCloseOrThePipeWorks) {
  TestNetwork net;
  Node& n0 = net.AddNode();
  Node& n1 = net.AddNode();
  net.AddNode();
  const auto [rounds, untold, steps] = GetParam();
  auto [e, f] = net.CreatePipe(0, 1);
  f = Bounce(net, f, 1, 2, rounds);
  for (int i = 0; i < steps; ++i) {
    auto links = net.ActiveLinks();
    if (links.empty()) break;
    net.DeliverOne(links[static_cast<size_t>(i) % links.size()]);
  }
  net.LoseLink(2, untold, /*both_sides=*/false);
  ASSERT_TRUE(net.Pump());
  const bool closed_e = PeerClosed(n0, e), closed_f = PeerClosed(n1, f);
  EXPECT_EQ(closed_e, closed_f) << "half-dead pipe: E peer_closed=" << closed_e
                                << " F peer_closed=" << closed_f;
  if (!closed_e && !closed_f) {
    ASSERT_TRUE(n0.SendUserMessage(e, Msg("e2f")).ok());
    ASSERT_TRUE(n1.SendUserMessage(f, Msg("f2e")).ok());
    ASSERT_TRUE(net.Pump());
    EXPECT_TRUE(Contains(Drain(n1, f), "e2f"));
    EXPECT_TRUE(Contains(Drain(n0, e), "f2e"));
  }
  ASSERT_TRUE(n0.ClosePort(e).ok());
  ASSERT_TRUE(n1.ClosePort(f).ok());
  ASSERT_TRUE(net.Pump());
  EXPECT_TRUE(net.violations().empty()) << net.violations().front().second;
  // The node that was not told may keep a proxy whose every hop is on the
  // node it lost without knowing (PRT-23 residual); the others are clean.
  for (size_t n = 0; n < 3; ++n) {
    if (n != untold) EXPECT_EQ(net.node(n).port_count(), 0u) << "node " << n << ": " << net.Describe();
  }
}

INSTANTIATE_TEST_SUITE_P(RoundTrips, BouncedThenCutTest,
                         ::testing::Combine(::testing::Values(1, 2, 5, 33),
                                            ::testing::Values(size_t{0}, size_t{1}),
                                            ::testing::Range(0, 10)));

// Found by the model (seed 8 of 30), both ends of the cut told: a pipe on
// node 1 whose one end was bounced through node 0 and the other through
// node 2; the 0-1 link breaks. The pipe must work or close on both ends.
TEST(RouteLostDirectTest, BothBouncedThenBothSidedCut) {
  TestNetwork net;
  Node& n1 = (net.AddNode(), net.AddNode());
  net.AddNode();
  auto [e, f] = net.CreatePipe(1, 1);
  f = Bounce(net, f, 1, 0, 1);
  e = Bounce(net, e, 1, 2, 2);
  net.LoseLink(0, 1, /*both_sides=*/true);
  ASSERT_TRUE(net.Pump());
  const bool closed_e = PeerClosed(n1, e), closed_f = PeerClosed(n1, f);
  EXPECT_EQ(closed_e, closed_f) << "half-dead pipe";
  if (!closed_e && !closed_f) {
    ASSERT_TRUE(n1.SendUserMessage(e, Msg("e2f")).ok());
    ASSERT_TRUE(n1.SendUserMessage(f, Msg("f2e")).ok());
    ASSERT_TRUE(net.Pump());
    const bool got_f = Contains(Drain(n1, f), "e2f"), got_e = Contains(Drain(n1, e), "f2e");
    EXPECT_TRUE((got_f && got_e) || (PeerClosed(n1, e) && PeerClosed(n1, f)))
        << "neither works nor closed: e->f " << got_f << " f->e " << got_e;
  }
  ASSERT_TRUE(n1.ClosePort(e).ok());
  ASSERT_TRUE(n1.ClosePort(f).ok());
  ASSERT_TRUE(net.Pump());
  EXPECT_TRUE(net.violations().empty()) << net.violations().front().second;
}

// A RouteLost naming a removed proxy from anyone but that proxy's peer is
// not passed on: the port behind the proxy stays open.
TEST(RouteLostDirectTest, ForgedRouteLostForRemovedProxyIsIgnored) {
  TestNetwork net;
  Node& n0 = net.AddNode();
  Node& n1 = net.AddNode();
  net.AddNode();
  auto [e, f] = net.CreatePipe(0, 1);
  const PortName old_f = f.name();
  f = Bounce(net, f, 1, 2, 1);  // leaves removed proxies on node 1 and 2
  ASSERT_TRUE(net.Pump());
  // Node 2 and node 0 name the removed proxy, each from a port that is not
  // its peer; node 1 names it from itself.
  for (size_t from : {0u, 2u, 1u}) {
    ASSERT_TRUE(
        net.Inject(from, 1, std::make_unique<RouteLostEvent>(old_f, PortName::Random())).ok());
  }
  ASSERT_TRUE(net.Pump());
  EXPECT_FALSE(PeerClosed(n0, e));
  EXPECT_FALSE(PeerClosed(n1, f));
  ASSERT_TRUE(n0.SendUserMessage(e, Msg("still")).ok());
  ASSERT_TRUE(net.Pump());
  EXPECT_EQ(Drain(n1, f), std::vector<std::string>{"still"});
  EXPECT_TRUE(net.violations().empty());
}

}  // namespace
}  // namespace moat::ports
