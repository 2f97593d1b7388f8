#include "core/ports/test_network.h"

#include <sstream>

#include "core/check.h"

namespace moat::ports::testing {

struct TestNetwork::TestNode : public NodeDelegate {
  TestNode(TestNetwork* net, size_t index, NodeOptions options)
      : net(net),
        index(index),
        name(NodeName::Random()),
        node(std::make_unique<Node>(name, this, options)) {}

  void ForwardEvent(const NodeName& to, std::unique_ptr<Event> event) override {
    if (lost) return;
    size_t j = net->IndexOf(to);
    if (j == SIZE_MAX || net->nodes_[j]->lost) return;  // no transport: dropped
    if (net->cut_.contains(Link{index, j})) return;
    net->queues_[Link{index, j}].push_back(std::move(event));
  }
  void PortStatusChanged(const PortRef&) override { ++status_changes; }
  bool IsNodeReachable(const NodeName& other) const override {
    size_t j = net->IndexOf(other);
    return j != SIZE_MAX && !net->nodes_[j]->lost && !net->cut_.contains(Link{index, j});
  }
  void BadEventFrom(const NodeName& from, const Error& error) override {
    size_t j = net->IndexOf(from);
    if (j != SIZE_MAX) net->Disconnect(j, index, error);
  }
  bool SendersMayWaitForPeers() const override { return net->senders_may_wait; }
  void PeerUnresponsive(const NodeName& node, const Error& why) override {
    net->unresponsive.emplace_back(net->IndexOf(node), why.ToString());
  }

  TestNetwork* net;
  size_t index;
  NodeName name;
  std::unique_ptr<Node> node;
  bool lost = false;
  size_t status_changes = 0;
};

TestNetwork::TestNetwork() = default;
Node& TestNetwork::node(size_t i) { return *nodes_[i]->node; }
bool TestNetwork::is_lost(size_t i) const { return nodes_[i]->lost; }
size_t TestNetwork::status_changes(size_t i) const { return nodes_[i]->status_changes; }
TestNetwork::~TestNetwork() = default;

Node& TestNetwork::AddNode(NodeOptions options) {
  nodes_.push_back(std::make_unique<TestNode>(this, nodes_.size(), options));
  return *nodes_.back()->node;
}

size_t TestNetwork::IndexOf(const NodeName& name) const {
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i]->name == name) return i;
  }
  return SIZE_MAX;
}

std::pair<PortRef, PortRef> TestNetwork::CreatePipe(size_t i, size_t j) {
  PortRef a, a_other, b, b_other;
  MOAT_ASSERT(node(i).CreatePortPair(&a, &a_other).ok());
  if (i == j) return {a, a_other};
  MOAT_ASSERT(node(j).CreatePortPair(&b, &b_other).ok());
  MOAT_ASSERT(node(j).OfferForMerge(b_other, node(i).name()).ok());
  MOAT_ASSERT(node(i).MergePorts(a_other, node(j).name(), b_other.name()).ok());
  Pump();
  return {a, b};
}

std::vector<TestNetwork::Link> TestNetwork::ActiveLinks() const {
  std::vector<Link> out;
  for (const auto& [link, q] : queues_) {
    if (!q.empty()) out.push_back(link);
  }
  return out;
}

bool TestNetwork::DeliverOne(const Link& link) {
  auto it = queues_.find(link);
  if (it == queues_.end() || it->second.empty()) return false;
  std::unique_ptr<Event> event = std::move(it->second.front());
  it->second.pop_front();
  if (nodes_[link.to]->lost || nodes_[link.from]->lost) return true;
  if (transform) {
    auto r = transform(std::move(event));
    if (!r.ok()) {
      Disconnect(link.from, link.to, r.error());
      return true;
    }
    event = std::move(*r);
  }
  Status s = node(link.to).AcceptEvent(nodes_[link.from]->name, std::move(event));
  if (!s.ok()) Disconnect(link.from, link.to, s.error());
  return true;
}

bool TestNetwork::Pump(size_t max_events) {
  for (size_t n = 0; n < max_events; ++n) {
    auto links = ActiveLinks();
    if (links.empty()) return true;
    DeliverOne(links.front());
  }
  return ActiveLinks().empty();
}

void TestNetwork::Disconnect(size_t blamed, size_t reporter, const Error& error) {
  violations_.emplace_back(blamed, error.ToString());
  // A hostile node is cut off from everyone (as if its process were killed).
  LoseNode(blamed);
}

void TestNetwork::LoseNode(size_t i) {
  if (nodes_[i]->lost) return;
  nodes_[i]->lost = true;
  for (auto& [link, q] : queues_) {
    if (link.from == i || link.to == i) q.clear();
  }
  for (size_t j = 0; j < nodes_.size(); ++j) {
    if (j != i && !nodes_[j]->lost) node(j).LostConnectionToNode(nodes_[i]->name);
  }
}

void TestNetwork::LoseLink(size_t i, size_t j, bool both_sides) {
  cut_.insert(Link{i, j});
  cut_.insert(Link{j, i});
  queues_[Link{i, j}].clear();
  queues_[Link{j, i}].clear();
  node(i).LostConnectionToNode(nodes_[j]->name);
  if (both_sides) node(j).LostConnectionToNode(nodes_[i]->name);
}

Status TestNetwork::Inject(size_t from, size_t to, std::unique_ptr<Event> event) {
  Status s = node(to).AcceptEvent(nodes_[from]->name, std::move(event));
  if (!s.ok()) Disconnect(from, to, s.error());
  return s;
}

bool TestNetwork::AllClean() const {
  for (const auto& n : nodes_) {
    if (!n->lost && n->node->port_count() != 0) return false;
  }
  return true;
}

std::string TestNetwork::Describe() const {
  std::ostringstream out;
  for (const auto& n : nodes_) {
    out << "node" << n->index << (n->lost ? "(lost)" : "") << ": " << n->node->port_count()
        << " ports, " << n->node->proxy_count() << " proxies; ";
  }
  return out.str();
}

std::string TestNetwork::DescribeQueues() const {
  std::ostringstream out;
  for (const auto& [link, q] : queues_) {
    if (q.empty()) continue;
    out << "n" << link.from << "->n" << link.to << ":";
    for (const auto& e : q) {
      out << " " << EventTypeName(e->type()) << "(" << e->port_name.ToString().substr(0, 6)
          << "<-" << e->from_port.ToString().substr(0, 6) << ")";
    }
    out << "; ";
  }
  return out.str();
}

}  // namespace moat::ports::testing
