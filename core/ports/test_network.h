// TestNetwork: an in-process multi-node harness for ports tests and fuzzers.
//
// Each TestNode is a Node whose delegate queues outgoing events on a per-link
// FIFO (as a real transport would). Pump() delivers them; DeliverOneFrom()
// lets a test or fuzzer choose which link goes next (reordering across
// links, never within one); LoseNode() simulates a crashed process; events
// that fail validation disconnect the sending node, as an embedder would.
//
//   TestNetwork net;
//   Node& n0 = net.AddNode();  Node& n1 = net.AddNode();
//   auto [a, b] = net.CreateRemotePipe(0, 1);   // a on n0, b on n1
//   ... net.Pump(); EXPECT_TRUE(net.AllClean());
#ifndef MOAT_CORE_PORTS_TEST_NETWORK_H_
#define MOAT_CORE_PORTS_TEST_NETWORK_H_

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/ports/node.h"

namespace moat::ports::testing {

class TestNetwork {
 public:
  struct Link {
    size_t from, to;
    friend auto operator<=>(const Link&, const Link&) = default;
  };

  TestNetwork();
  ~TestNetwork();

  Node& AddNode(NodeOptions options = {});
  Node& node(size_t i);
  size_t node_count() const { return nodes_.size(); }

  // A pipe whose ends are `a` on node i and `b` on node j (via MergePorts
  // when i != j), pumped until established.
  std::pair<PortRef, PortRef> CreatePipe(size_t i, size_t j);

  // Optional hook: every event crossing a link passes through it (e.g. a
  // serialize/deserialize round trip). Returning an Error drops the event
  // and disconnects the sender.
  std::function<Result<std::unique_ptr<Event>>(std::unique_ptr<Event>)> transform;

  // What every node's delegate answers to SendersMayWaitForPeers. A writer
  // that then waits (for a confirmation) waits on the test's own thread, so
  // only until NodeOptions::confirm_timeout.
  bool senders_may_wait = false;
  // PeerUnresponsive calls: (node index reported, reason).
  std::vector<std::pair<size_t, std::string>> unresponsive;

  // Links with queued events.
  std::vector<Link> ActiveLinks() const;
  // Delivers the oldest event on `link`; false if none.
  bool DeliverOne(const Link& link);
  // Delivers until every queue is empty (bounded; false if it did not settle).
  bool Pump(size_t max_events = 1000000);

  // Node i crashes: its events vanish, every other node is told.
  void LoseNode(size_t i);
  bool is_lost(size_t i) const;
  // The link between nodes i and j breaks (both stay up and connected to
  // everyone else): what is queued on it vanishes, nothing crosses it again,
  // and node i is told it lost j (node j too if `both_sides`).
  void LoseLink(size_t i, size_t j, bool both_sides);

  // Injects an event as if node `from` had sent it to node `to`; returns what
  // AcceptEvent returned (and, on error, disconnects `from` from `to`).
  Status Inject(size_t from, size_t to, std::unique_ptr<Event> event);

  // Protocol violations observed (node index that was blamed, error text).
  const std::vector<std::pair<size_t, std::string>>& violations() const { return violations_; }
  size_t status_changes(size_t i) const;

  // Every live node has no ports left.
  bool AllClean() const;
  std::string Describe() const;
  // What is queued on every link (event type, target port), for failure
  // messages and debugging.
  std::string DescribeQueues() const;

  size_t IndexOf(const NodeName& name) const;

 private:
  struct TestNode;
  void Disconnect(size_t blamed, size_t reporter, const Error& error);

  std::vector<std::unique_ptr<TestNode>> nodes_;
  std::map<Link, std::deque<std::unique_ptr<Event>>> queues_;
  std::set<Link> cut_;  // LoseLink, both directions
  std::vector<std::pair<size_t, std::string>> violations_;
};

// A message carrying `text` (and `ports`, moved with it), for tests.
inline std::unique_ptr<UserMessage> Msg(const std::string& text,
                                        std::vector<PortName> ports = {}) {
  auto m = std::make_unique<UserMessage>();
  m->payload.assign(text.begin(), text.end());
  m->ports = std::move(ports);
  return m;
}

}  // namespace moat::ports::testing

#endif  // MOAT_CORE_PORTS_TEST_NETWORK_H_
