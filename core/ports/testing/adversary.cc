#include "core/ports/testing/adversary.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <tuple>
#include <utility>

#include "core/check.h"
#include "core/mutex.h"
#include "core/ports/event_codec.h"
#include "core/ports/port.h"
#include "core/ports/user_message.h"
#include "limits/limits.h"

namespace moat::ports::testing {

namespace {

constexpr uint64_t kAttackerTag = 1ull << 63;  // payload tags the attacker writes
constexpr size_t kDrainLimit = 20000;          // reads of one end before "it never ends"

// Sequence-number choices: edges of every window and counter.
constexpr uint64_t kSeqs[] = {0, 1, 2, 3, 5, 1024, 1025, 1ull << 62, kInvalidSequenceNum};
constexpr size_t kSeqCount = sizeof(kSeqs) / sizeof(kSeqs[0]);
constexpr uint64_t kSmallSeqs[] = {1, 2, 3, 1024};
// The last only from the fuzzer (see ForgeSpec::len): it takes a few of them
// to reach MAX_PORT_OUT_OF_ORDER_BYTES. It leaves room for the event's own
// encoding: the whole serialized event must fit MAX_MESSAGE_PAYLOAD_SIZE.
constexpr size_t kLens[] = {8, 64, 64 * 1024, limits::MAX_MESSAGE_PAYLOAD_SIZE - 64 * 1024};
constexpr uint32_t kRepeats[] = {1, 1, 40, 300};

uint64_t TagOf(const UserMessage& m) {
  uint64_t tag = 0;
  if (m.payload.size() >= sizeof(tag)) std::memcpy(&tag, m.payload.data(), sizeof(tag));
  return tag;
}

}  // namespace

const char* CheckName(Check c) {
  switch (c) {
    case Check::kBlame: return "blame";
    case Check::kIntegrity: return "integrity";
    case Check::kClosure: return "closure";
    case Check::kBuffered: return "buffered";
    case Check::kRetired: return "retired";
    case Check::kParked: return "parked";
    case Check::kOooBytes: return "ooo-bytes";
    case Check::kLiveness: return "liveness";
    case Check::kLeak: return "leak";
  }
  return "?";
}

std::optional<Check> CheckFromName(const std::string& name) {
  for (uint32_t i = 0; i < kCheckCount; ++i) {
    if (name == CheckName(static_cast<Check>(i))) return static_cast<Check>(i);
  }
  return std::nullopt;
}

std::set<Check> KnownOpenChecks() {
  // Every issue-11 class is fixed (s3-ports-bounds closed the last two:
  // blame, PRT-13, MAX_VOUCHED_UNCONFIRMED_LINKS and the overflow blaming
  // the node holding most of the buffer; buffered, PRT-16,
  // MAX_PORT_BUFFERED_LOCAL_*). A check whose fix is reverted goes here, with
  // a DISABLED_ test in property_tests/ports_adversary_model_test.cc.
  return {};
}

std::set<Check> DefaultChecks() {
  std::set<Check> out;
  const char* env = std::getenv("MOAT_ADVERSARY_CHECKS");
  if (env != nullptr && env[0] != '\0') {
    std::string list(env);
    if (list == "all") {
      for (uint32_t i = 0; i < kCheckCount; ++i) out.insert(static_cast<Check>(i));
      return out;
    }
    std::stringstream in(list);
    std::string item;
    while (std::getline(in, item, ',')) {
      auto c = CheckFromName(item);
      MOAT_ASSERT(c.has_value(), "MOAT_ADVERSARY_CHECKS: unknown check ", item);
      out.insert(*c);
    }
    return out;
  }
  const std::set<Check> open = KnownOpenChecks();
  for (uint32_t i = 0; i < kCheckCount; ++i) {
    if (!open.count(static_cast<Check>(i))) out.insert(static_cast<Check>(i));
  }
  return out;
}

std::ostream& operator<<(std::ostream& os, const Op& op) {
  switch (op.kind) {
    case OpKind::kCreatePipe: return os << "CreatePipe(n" << op.a % 2 << ", n" << op.b % 2 << ")";
    case OpKind::kSend: return os << "Send(h" << op.a << ", len" << kLens[op.b % 2] << ")";
    case OpKind::kRead: return os << "Read(h" << op.a << ")";
    case OpKind::kClose: return os << "Close(h" << op.a << ")";
    case OpKind::kGiveToAttacker: return os << "GiveToAttacker(h" << op.a << ")";
    case OpKind::kPassThrough:
      return os << "PassThrough(h" << op.a << " -> n" << op.b % 2 << ")";
    case OpKind::kAttackerReturn:
      return os << "AttackerReturn(k" << op.a << " -> n" << op.b % 2 << ")";
    case OpKind::kAttackerPipe: return os << "AttackerPipe(-> n" << op.a % 2 << ")";
    case OpKind::kAttackerUse: {
      static const char* what[] = {"write", "read", "close"};
      return os << "AttackerUse(k" << op.a << ", " << what[op.b % 3] << ")";
    }
    case OpKind::kDeliver: return os << "Deliver(link" << op.a << ", x" << op.b % 8 + 1 << ")";
    case OpKind::kPump: return os << "Pump";
    case OpKind::kAckInterval:
      return os << "AckInterval(h" << op.a << ", " << op.b % 4 << ")";
    case OpKind::kLoseAttacker: return os << "LoseAttacker";
    case OpKind::kForge: {
      const ForgeSpec& f = op.f;
      static const char* cseq[] = {"own-link", "next", "1", "next+1", "huge"};
      os << "Forge(" << EventTypeName(static_cast<EventType>(f.type % (kMaxEventType + 1)))
         << " -> n" << f.to % 2 << " port=L" << f.port << " from=L" << f.from
         << " cseq=" << cseq[f.cseq % 5] << " seq=" << kSeqs[f.seq % kSeqCount]
         << " len=" << kLens[f.len % 4] << " nports=" << f.nports % 3 << " a=N" << f.node_a % 4
         << "/L" << f.port_a << " b=N" << f.node_b % 4 << "/L" << f.port_b << " seq2=" << f.seq2
         << " flags=" << f.flags % 4 << " x" << kRepeats[f.repeat % 4] << ")";
      return os;
    }
  }
  return os << "?";
}

// ---------------------------------------------------------------------------
// The network.

struct Adversary::NetNode : public NodeDelegate {
  NetNode(Adversary* adv, size_t index)
      : adv(adv), index(index), name(NodeName::Random()), node(std::make_unique<Node>(name, this)) {}

  void ForwardEvent(const NodeName& to, std::unique_ptr<Event> event) override {
    if (adv->nodes_[index]->lost) return;
    const size_t j = adv->IndexOf(to);
    if (j == SIZE_MAX || adv->nodes_[j]->lost) return;  // no such node: dropped
    if (index == kAttacker) {
      // The attacker sees what its own node sends, and keeps the links'
      // control sequence going.
      adv->Learn(*event, j, /*outgoing=*/true);
      if (event->is_ring_event()) {
        auto [it, fresh] = adv->next_cseq_.try_emplace({j, event->port_name, event->from_port}, 0);
        if (fresh) adv->links_.push_back(it->first);
        uint64_t& next = it->second;
        next = std::max(next, event->control_sequence_num + 1);
      }
    }
    adv->queues_[{index, j}].push_back(std::move(event));
  }
  void PortStatusChanged(const PortRef&) override {}
  // As NodeController answers (PRT-14): the broker (node 0) knows every node
  // there is; a child cannot tell whether another child exists and knows
  // only the ones it lost.
  bool IsNodeReachable(const NodeName& other) const override {
    const size_t j = adv->IndexOf(other);
    if (j != SIZE_MAX && adv->nodes_[j]->lost) return false;
    return index != 0 || j != SIZE_MAX;
  }
  void BadEventFrom(const NodeName& from, const Error& error) override {
    if (index == kAttacker) return;  // the attacker's own node is not a witness
    adv->Blame(adv->IndexOf(from), index, error);
  }

  Adversary* adv;
  size_t index;
  NodeName name;
  std::unique_ptr<Node> node;
  bool lost = false;
};

Node& Adversary::node(size_t i) { return *nodes_[i]->node; }
const NodeName& Adversary::name(size_t i) const { return nodes_[i]->name; }

size_t Adversary::IndexOf(const NodeName& n) const {
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i]->name == n) return i;
  }
  return SIZE_MAX;
}

bool Adversary::Fail(Check c, const std::string& why) {
  if (stopped_) return false;
  if (options_.enabled.count(c)) {
    failure_ = std::string(CheckName(c)) + ": " + why;
  } else if (!options_.stop_on_disabled) {
    ++contained_[static_cast<size_t>(c)];
    return true;
  }
  stopped_ = true;
  stopped_by_ = c;
  return false;
}

void Adversary::Poison(int p) {
  if (p < 0) return;
  Pipe& pipe = pipes_[p];
  pipe.clean = false;
  pipe.poisoned = true;
  for (int s = 0; s < 2; ++s) {
    if (pipe.end[s] < 0) continue;
    HonestEnd& e = honest_[pipe.end[s]];
    if (!e.open) continue;
    e.open = false;
    abandoned_.emplace_back(e.node, e.ref);
  }
}

void Adversary::Blame(size_t blamed, size_t reporter, const Error& error) {
  if (blamed == kAttacker) {
    if (std::getenv("MOAT_ADVERSARY_DEBUG") && !attacker_lost_ && !pending_lose_) {
      std::fprintf(stderr, "attacker blamed: %s\n", error.ToString().c_str());
    }
    pending_lose_ = true;  // as the embedder would: cut it off (after this call)
    return;
  }
  if (blamed == SIZE_MAX) return;
  std::ostringstream os;
  os << "honest node n" << blamed << " blamed by n" << reporter << ": " << error.ToString();
  Fail(Check::kBlame, os.str());
}

void Adversary::LearnAt(const PortName& p, const NodeName& where) {
  if (!p.is_valid()) return;
  if (learned_set_.insert(p).second) learned_.push_back(p);
  size_t at = IndexOf(where);
  if (at == SIZE_MAX) at = 3;
  if (learned_at_set_.insert({p, at}).second) learned_at_[at].push_back(p);
}

void Adversary::Learn(const Event& e, size_t peer, bool outgoing) {
  const NodeName& self = name(kAttacker);
  const NodeName& other = name(peer);
  // The target lives at the receiver, the sending port at the sender.
  LearnAt(e.port_name, outgoing ? other : self);
  LearnAt(e.from_port, outgoing ? self : other);
  auto desc = [&](const PortDescriptor& d) {
    LearnAt(d.peer_port, d.peer_node);
    LearnAt(d.referring_port, d.referring_node);
  };
  switch (e.type()) {
    case EventType::kUserMessage: {
      const auto& m = static_cast<const UserMessageEvent&>(e);
      for (const PortName& p : m.message->ports) LearnAt(p, outgoing ? other : self);
      for (const PortDescriptor& d : m.port_descriptors) desc(d);
      break;
    }
    case EventType::kObserveProxy: {
      const auto& o = static_cast<const ObserveProxyEvent&>(e);
      LearnAt(o.proxy_port, o.proxy_node);
      LearnAt(o.proxy_target_port, o.proxy_target_node);
      break;
    }
    case EventType::kMergePort: {
      const auto& m = static_cast<const MergePortEvent&>(e);
      LearnAt(m.new_port_name, outgoing ? other : self);
      desc(m.new_port_descriptor);
      break;
    }
    case EventType::kUpdatePreviousPeer: {
      const auto& u = static_cast<const UpdatePreviousPeerEvent&>(e);
      LearnAt(u.new_prev_port, u.new_prev_node);
      break;
    }
    default:
      break;
  }
}

// choice % 64: below 32 a port known to live at `where` (0, 1, attacker, 3
// elsewhere), below 56 any learned port, else (or if none is known) a fresh
// name.
PortName Adversary::Pick(uint32_t choice, size_t where) {
  choice %= 64;
  const std::vector<PortName>& from = choice < 32 ? learned_at_[where] : learned_;
  if (choice >= 56 || from.empty()) return PortName::Random();
  return from[choice % from.size()];
}

void Adversary::NotePorts(size_t n, const Event& e) {
  auto& known = known_ports_[n];
  known.insert(e.port_name);
  if (e.type() == EventType::kUserMessage) {
    for (const PortName& p : static_cast<const UserMessageEvent&>(e).message->ports) {
      known.insert(p);
    }
  } else if (e.type() == EventType::kMergePort) {
    known.insert(static_cast<const MergePortEvent&>(e).new_port_name);
  }
}

std::vector<std::pair<size_t, size_t>> Adversary::ActiveLinks() const {
  std::vector<std::pair<size_t, size_t>> out;
  for (const auto& [link, q] : queues_) {
    if (!q.empty()) out.push_back(link);
  }
  return out;
}

void Adversary::Deliver(size_t from, size_t to) {
  auto it = queues_.find({from, to});
  if (it == queues_.end() || it->second.empty()) return;
  std::unique_ptr<Event> event = std::move(it->second.front());
  it->second.pop_front();
  if (nodes_[from]->lost || nodes_[to]->lost) return;
  if (to == kAttacker) {
    Learn(*event, from, /*outgoing=*/false);
    (void)node(to).AcceptEvent(name(from), std::move(event));  // its own business
  } else {
    NotePorts(to, *event);
    if (from == kAttacker && to != 0) {
      // Relayed by the broker, which first reports a node it does not know
      // when the event re-points a port at it (NodeController::HandleAsBroker,
      // PRT-14 on children): the child takes it as that node's loss.
      NodeName named;
      if (event->type() == EventType::kObserveProxy) {
        named = static_cast<const ObserveProxyEvent&>(*event).proxy_target_node;
      } else if (event->type() == EventType::kUpdatePreviousPeer) {
        named = static_cast<const UpdatePreviousPeerEvent&>(*event).new_prev_node;
      }
      const size_t j = IndexOf(named);
      if (named.is_valid() && (j == SIZE_MAX || nodes_[j]->lost)) {
        node(to).LostConnectionToNode(named);
      }
    }
    Status s = node(to).AcceptEvent(name(from), std::move(event));
    if (!s.ok()) Blame(from, to, s.error());
  }
  if (pending_lose_) LoseAttacker();
}

bool Adversary::Settle(size_t max_events) {
  for (size_t n = 0; n < max_events; ++n) {
    auto links = ActiveLinks();
    if (links.empty()) return true;
    Deliver(links.front().first, links.front().second);
  }
  return ActiveLinks().empty();
}

void Adversary::LoseAttacker() {
  pending_lose_ = false;
  if (attacker_lost_) return;
  attacker_lost_ = true;
  nodes_[kAttacker]->lost = true;
  for (auto& [link, q] : queues_) {
    if (link.first == kAttacker || link.second == kAttacker) q.clear();
  }
  for (size_t i = 0; i < kHonestNodes; ++i) node(i).LostConnectionToNode(name(kAttacker));
}

// ---------------------------------------------------------------------------
// Bookkeeping of pipes and ends.

int Adversary::AddPipe(bool clean) {
  pipes_.push_back(Pipe{});
  pipes_.back().clean = clean;
  return static_cast<int>(pipes_.size() - 1);
}

void Adversary::AddHonestEnd(size_t n, const PortRef& ref, int pipe, int side) {
  known_ports_[n].insert(ref.name());
  honest_.push_back(HonestEnd{n, ref, pipe, side, true});
  if (pipe >= 0) pipes_[pipe].end[side] = static_cast<int>(honest_.size() - 1);
}

std::unique_ptr<UserMessage> Adversary::Tagged(uint64_t tag, size_t len) {
  auto m = std::make_unique<UserMessage>();
  m->payload.assign(std::max(len, sizeof(tag)), 0x5a);
  std::memcpy(m->payload.data(), &tag, sizeof(tag));
  return m;
}

// Ports carried by a message an honest node read: the ends the model sent
// (by tag), or, in anything else, pipes of the attacker's making.
void Adversary::AdoptPorts(size_t n, const UserMessage& m, bool from_clean) {
  if (m.ports.empty()) return;
  std::vector<Carry> carried;
  auto it = carried_.find(TagOf(m));
  if (it != carried_.end() && it->second.size() == m.ports.size()) {
    carried = std::move(it->second);
    carried_.erase(it);
  }
  for (size_t i = 0; i < m.ports.size(); ++i) {
    PortRef ref;
    if (!node(n).GetPort(m.ports[i], &ref).ok()) {
      if (from_clean) {
        Fail(Check::kIntegrity, "port " + m.ports[i].ToString() +
                                    " carried by an honest message is missing at n" +
                                    std::to_string(n));
      }
      continue;
    }
    if (i < carried.size()) {
      AddHonestEnd(n, ref, carried[i].pipe, carried[i].side);
      MaybeRelease(carried[i].pipe);
    } else {
      AddHonestEnd(n, ref, AddPipe(/*clean=*/false), 0);
    }
  }
}

void Adversary::AdoptAtAttacker(const UserMessage& m) {
  std::vector<Carry> carried;
  auto it = carried_.find(TagOf(m));
  if (it != carried_.end() && it->second.size() == m.ports.size()) {
    carried = std::move(it->second);
    carried_.erase(it);
  }
  for (size_t i = 0; i < m.ports.size(); ++i) {
    PortRef ref;
    if (!node(kAttacker).GetPort(m.ports[i], &ref).ok()) continue;
    if (i < carried.size()) {
      held_.push_back(AttackerEnd{ref, carried[i].pipe, carried[i].side, true});
    } else {
      held_.push_back(AttackerEnd{ref, AddPipe(false), 0, true});
    }
  }
}

void Adversary::ReadBootstrapAtAttacker() {
  if (attacker_lost_) return;
  for (const PortRef& ref : boot_attacker_) {
    for (size_t n = 0; n < kDrainLimit; ++n) {
      std::unique_ptr<UserMessage> m;
      if (!node(kAttacker).GetMessage(ref, &m).ok() || !m) break;
      AdoptAtAttacker(*m);
    }
  }
}

void Adversary::ReadBootstrapAt(size_t n) {
  for (size_t i = 0; i < honest_.size(); ++i) {
    if (honest_[i].node == n && honest_[i].open && honest_[i].ref == boot_honest_[n]) {
      for (size_t k = 0; k < kDrainLimit && !stopped_; ++k) {
        std::unique_ptr<UserMessage> m;
        if (!node(n).GetMessage(honest_[i].ref, &m).ok() || !m) break;
        AdoptPorts(n, *m, /*from_clean=*/false);
      }
      return;
    }
  }
}

// A pipe whose ends are both back on honest nodes, entangled with each other
// directly (no hop through the attacker left), is clean from now on: what it
// held from the attacker's tenure is read and dropped, then every message
// must be exactly what its honest ends send.
void Adversary::MaybeRelease(int p) {
  Pipe& pipe = pipes_[p];
  if (pipe.clean || pipe.end[0] < 0 || pipe.end[1] < 0 || stopped_) return;
  if (!Settle()) return;
  const HonestEnd& e0 = honest_[pipe.end[0]];
  const HonestEnd& e1 = honest_[pipe.end[1]];
  if (!e0.open || !e1.open) return;
  auto direct = [&](const HonestEnd& x, const HonestEnd& y) {
    Port* port = x.ref.port();
    MutexLock lock(&port->mu);
    return port->state == Port::State::kReceiving && port->peer_node == name(y.node) &&
           port->peer_port == y.ref.name() && port->prev_node == name(y.node) &&
           port->prev_port == y.ref.name() && !port->peer_closed;
  };
  if (!direct(e0, e1) || !direct(e1, e0)) return;
  for (int s = 0; s < 2; ++s) {
    const HonestEnd& e = honest_[pipe.end[s]];
    for (size_t k = 0; k < kDrainLimit; ++k) {
      std::unique_ptr<UserMessage> m;
      if (!node(e.node).GetMessage(e.ref, &m).ok() || !m) break;
      AdoptPorts(e.node, *m, false);
    }
    pipe.to[s].clear();
  }
  pipe.clean = true;
}

// ---------------------------------------------------------------------------
// Setup.

Adversary::Adversary(Options options) : options_(std::move(options)), ghost_(NodeName::Random()) {
  for (size_t i = 0; i < 3; ++i) nodes_.push_back(std::make_unique<NetNode>(this, i));
  // The honest pipe between the broker and the child (their bootstrap).
  {
    PortRef a, a2, b, b2;
    MOAT_ASSERT(node(0).CreatePortPair(&a, &a2).ok());
    MOAT_ASSERT(node(1).CreatePortPair(&b, &b2).ok());
    MOAT_ASSERT(node(0).OfferForMerge(a2, name(1)).ok());
    MOAT_ASSERT(node(1).MergePorts(b2, name(0), a2.name()).ok());
    MOAT_ASSERT(Settle());
    boot_01_ = {a, b};
    const int p = AddPipe(/*clean=*/true);
    AddHonestEnd(0, a, p, 0);
    AddHonestEnd(1, b, p, 1);
  }
  // The attacker's bootstrap pipe with each honest node: it merges its end
  // with the port the honest node offers it (as a child does with the broker).
  for (size_t i = 0; i < kHonestNodes; ++i) {
    PortRef h, h2, x, x2;
    MOAT_ASSERT(node(i).CreatePortPair(&h, &h2).ok());
    MOAT_ASSERT(node(kAttacker).CreatePortPair(&x, &x2).ok());
    MOAT_ASSERT(node(i).OfferForMerge(h2, name(kAttacker)).ok());
    MOAT_ASSERT(node(kAttacker).MergePorts(x2, name(i), h2.name()).ok());
    MOAT_ASSERT(Settle());
    boot_honest_[i] = h;
    boot_attacker_[i] = x;
    const int p = AddPipe(/*clean=*/false);
    AddHonestEnd(i, h, p, 0);
    held_.push_back(AttackerEnd{x, p, 1, true});
  }
}

Adversary::~Adversary() = default;

// ---------------------------------------------------------------------------
// Honest operations.

void Adversary::CreatePipe(size_t i, size_t j) {
  PortRef a, b;
  if (!node(i).CreatePortPair(&a, &b).ok()) return;
  const int p = AddPipe(/*clean=*/true);
  AddHonestEnd(i, a, p, 0);
  if (i == j) {
    AddHonestEnd(i, b, p, 1);
    return;
  }
  // b moves to node j over the honest bootstrap pipe.
  known_ports_[i].insert(b.name());
  Pipe& boot = pipes_[0];
  const int from_side = static_cast<int>(i);
  const int from = boot.end[from_side];
  if (from < 0 || !honest_[from].open) return;
  const uint64_t tag = next_tag_++;
  auto m = Tagged(tag, 8);
  m->ports.push_back(b.name());
  carried_[tag] = {Carry{p, 1}};
  Status s = node(i).SendUserMessage(honest_[from].ref, std::move(m));
  if (!s.ok()) {
    carried_.erase(tag);
    Fail(Check::kIntegrity, "honest bootstrap pipe refused a send: " + s.error().ToString());
    return;
  }
  boot.to[1 - from_side].push_back(tag);
  Settle();
  Read(static_cast<size_t>(boot.end[1 - from_side]));
}

void Adversary::Send(size_t h, uint32_t len_choice) {
  if (honest_.empty()) return;
  HonestEnd& e = honest_[h % honest_.size()];
  if (!e.open) return;
  const uint64_t tag = next_tag_++;
  Status s = node(e.node).SendUserMessage(e.ref, Tagged(tag, kLens[len_choice % 2]));
  if (e.pipe < 0 || !pipes_[e.pipe].clean) return;
  Pipe& pipe = pipes_[e.pipe];
  const int other = 1 - e.side;
  if (s.ok()) {
    if (!pipe.closed[other]) pipe.to[other].push_back(tag);
  } else if (!(s.error().code() == ErrorCode::kPeerClosed && pipe.closed[other])) {
    if (Fail(Check::kIntegrity, "send on a clean end failed: " + s.error().ToString())) {
      Poison(e.pipe);
    }
  }
}

void Adversary::Read(size_t h) {
  if (honest_.empty()) return;
  const size_t idx = h % honest_.size();
  if (!honest_[idx].open) return;
  const size_t n = honest_[idx].node;
  const int p = honest_[idx].pipe;
  const int side = honest_[idx].side;
  std::unique_ptr<UserMessage> m;
  Status s = node(n).GetMessage(honest_[idx].ref, &m);
  const bool clean = p >= 0 && pipes_[p].clean;
  if (!clean) {
    if (s.ok() && m) AdoptPorts(n, *m, false);
    return;
  }
  Pipe& pipe = pipes_[p];
  std::ostringstream os;
  if (!s.ok()) {
    if (s.error().code() == ErrorCode::kPeerClosed && pipe.closed[1 - side] &&
        pipe.to[side].empty()) {
      return;
    }
    os << "read on clean end h" << idx << " (pipe " << p << "): " << s.error().ToString()
       << " with " << pipe.to[side].size() << " messages due"
       << (pipe.closed[1 - side] ? "" : " and its peer open");
    if (Fail(Check::kIntegrity, os.str())) Poison(p);
    return;
  }
  if (!m) return;
  const uint64_t tag = TagOf(*m);
  if (pipe.to[side].empty() || pipe.to[side].front() != tag) {
    os << "clean end h" << idx << " (pipe " << p << ") read "
       << ((tag & kAttackerTag) ? "an attacker's message" : "message t" + std::to_string(tag))
       << " but "
       << (pipe.to[side].empty() ? std::string("nothing")
                                 : "t" + std::to_string(pipe.to[side].front()))
       << " is due";
    if (Fail(Check::kIntegrity, os.str())) Poison(p);
    return;
  }
  pipe.to[side].pop_front();
  AdoptPorts(n, *m, /*from_clean=*/true);
}

void Adversary::Close(size_t h) {
  if (honest_.empty()) return;
  HonestEnd& e = honest_[h % honest_.size()];
  if (!e.open) return;
  if (e.ref == boot_honest_[e.node] || e.ref == boot_01_[e.node]) return;  // kept to the end
  e.open = false;
  Status s = node(e.node).ClosePort(e.ref);
  if (e.pipe < 0) return;
  Pipe& pipe = pipes_[e.pipe];
  pipe.closed[e.side] = true;
  pipe.to[e.side].clear();
  if (pipe.clean && !s.ok()) {
    if (Fail(Check::kIntegrity, "closing a clean end failed: " + s.error().ToString())) {
      Poison(e.pipe);
    }
  }
}

void Adversary::GiveToAttacker(size_t h) {
  if (honest_.empty() || attacker_lost_) return;
  const size_t idx = h % honest_.size();
  HonestEnd& e = honest_[idx];
  if (!e.open || e.ref == boot_honest_[e.node] || e.ref == boot_01_[e.node]) return;
  if (e.pipe < 0) return;
  const size_t n = e.node;
  const uint64_t tag = next_tag_++;
  auto m = Tagged(tag, 8);
  m->ports.push_back(e.ref.name());
  carried_[tag] = {Carry{e.pipe, e.side}};
  Status s = node(n).SendUserMessage(boot_honest_[n], std::move(m));
  if (!s.ok()) {
    carried_.erase(tag);
    return;
  }
  Pipe& pipe = pipes_[e.pipe];
  e.open = false;
  pipe.end[e.side] = -1;
  pipe.clean = false;
  Settle();
  ReadBootstrapAtAttacker();
}

void Adversary::AttackerReturn(size_t k, size_t dest) {
  if (held_.empty() || attacker_lost_) return;
  AttackerEnd& a = held_[k % held_.size()];
  if (!a.open) return;
  for (const PortRef& b : boot_attacker_) {
    if (a.ref == b) return;
  }
  const uint64_t tag = kAttackerTag | next_tag_++;
  auto m = Tagged(tag, 8);
  m->ports.push_back(a.ref.name());
  carried_[tag] = {Carry{a.pipe, a.side}};
  Status s = node(kAttacker).SendUserMessage(boot_attacker_[dest], std::move(m));
  if (!s.ok()) {
    carried_.erase(tag);
    return;
  }
  a.open = false;
  Settle();
  ReadBootstrapAt(dest);
}

void Adversary::AttackerPipe(size_t dest) {
  if (attacker_lost_) return;
  PortRef x, y;
  if (!node(kAttacker).CreatePortPair(&x, &y).ok()) return;
  const int p = AddPipe(false);
  held_.push_back(AttackerEnd{x, p, 0, true});
  held_.push_back(AttackerEnd{y, p, 1, true});
  AttackerReturn(held_.size() - 1, dest);
}

void Adversary::AttackerUse(size_t k, uint32_t what) {
  if (held_.empty() || attacker_lost_) return;
  AttackerEnd& a = held_[k % held_.size()];
  if (!a.open) return;
  switch (what % 3) {
    case 0:
      (void)node(kAttacker).SendUserMessage(a.ref, Tagged(kAttackerTag | next_tag_++, 8));
      break;
    case 1: {
      std::unique_ptr<UserMessage> m;
      if (node(kAttacker).GetMessage(a.ref, &m).ok() && m) AdoptAtAttacker(*m);
      break;
    }
    case 2:
      a.open = false;
      (void)node(kAttacker).ClosePort(a.ref);
      break;
  }
}

// ---------------------------------------------------------------------------
// Forgery.

std::unique_ptr<Event> Adversary::MakeForged(const ForgeSpec& f, uint32_t rep, size_t* to_out) {
  size_t to = *to_out = f.to % kHonestNodes;
  auto at = [](uint32_t node_choice) -> size_t { return node_choice % 4; };
  auto node_name = [&](uint32_t choice) -> NodeName {
    switch (choice % 4) {
      case 0: return name(0);
      case 1: return name(1);
      case 2: return name(kAttacker);
      default: return ghost_;
    }
  };
  PortName target = Pick(f.port, to);
  PortName from = Pick(f.from, kAttacker);
  uint32_t mode = f.cseq % 5;
  if (mode == 0 && links_.empty()) mode = 1;
  if (mode == 0) {
    // Continue one of the links its own node sends on, as that link's sender.
    // Mostly one of the last few: the links still in use.
    const size_t n = links_.size();
    const size_t back = f.port % 64 < 32 ? f.port % std::min<size_t>(n, 4) : f.port % n;
    const auto& link = links_[n - 1 - back];
    *to_out = to = std::get<0>(link);
    target = std::get<1>(link);
    from = std::get<2>(link);
    mode = 1;
  }
  // Names in the event body: 0-5 the event's own ports (the sender when the
  // node choice is the attacker, else the target).
  auto body = [&](uint32_t choice, uint32_t node_choice) -> PortName {
    if (choice % 64 < 6) return node_choice % 4 == 2 ? from : target;
    return Pick(choice, at(node_choice));
  };
  uint64_t cseq = 1;
  switch (mode) {
    case 1: {
      uint64_t& next = next_cseq_[{to, target, from}];
      if (next == 0) next = kInitialSequenceNum;
      cseq = next++;
      break;
    }
    case 2: cseq = kInitialSequenceNum; break;
    case 3: {
      auto it = next_cseq_.find({to, target, from});
      cseq = (it == next_cseq_.end() ? kInitialSequenceNum : it->second) + 1 + rep;
      break;
    }
    default: cseq = (1ull << 40) + rep; break;
  }
  const uint64_t seq = kSeqs[f.seq % kSeqCount];
  auto desc = [&](uint32_t k) {
    PortDescriptor d;
    d.peer_node = node_name(f.node_b + k);
    d.peer_port = body(f.port_b + k, f.node_b + k);
    d.referring_node = (f.flags & 2) ? name(1 - to) : name(kAttacker);
    d.referring_port = Pick(f.from + k, (f.flags & 2) ? 1 - to : kAttacker);
    d.next_sequence_num_to_send = kSmallSeqs[f.seq2 % 4];
    d.next_sequence_num_to_receive = kSmallSeqs[(f.seq2 / 4) % 4];
    if (f.flags & 1) {
      d.peer_closed = true;
      d.last_sequence_num_to_receive = d.next_sequence_num_to_receive - 1 + (f.seq2 / 16) % 3;
    }
    return d;
  };
  const auto type = static_cast<EventType>(f.type % (kMaxEventType + 1));
  switch (type) {
    case EventType::kUserMessage: {
      auto m = Tagged(kAttackerTag | next_tag_++, kLens[f.len % 4]);
      auto e = std::make_unique<UserMessageEvent>(target, from, cseq,
                                                  seq + (f.repeat % 4 >= 2 ? rep : 0),
                                                  std::move(m));
      for (uint32_t k = 0; k < f.nports % 3; ++k) {
        // Names of ports elsewhere: no clash here, but maybe a hop someone expects.
        e->message->ports.push_back(Pick(f.port_a + k, 1 - to));
        e->port_descriptors.push_back(desc(k));
      }
      return e;
    }
    case EventType::kPortAccepted:
      return std::make_unique<PortAcceptedEvent>(target, from);
    case EventType::kObserveProxy:
      return std::make_unique<ObserveProxyEvent>(target, from, cseq, node_name(f.node_a),
                                                 body(f.port_a, f.node_a), node_name(f.node_b),
                                                 body(f.port_b, f.node_b));
    case EventType::kObserveProxyAck:
      return std::make_unique<ObserveProxyAckEvent>(target, from, cseq, seq);
    case EventType::kObserveClosure:
      return std::make_unique<ObserveClosureEvent>(target, from, cseq, seq);
    case EventType::kMergePort:
      return std::make_unique<MergePortEvent>(target, Pick(f.port_a, to), desc(0));
    case EventType::kUserMessageReadAckRequest:
      return std::make_unique<UserMessageReadAckRequestEvent>(target, from, cseq, seq);
    case EventType::kUserMessageReadAck:
      return std::make_unique<UserMessageReadAckEvent>(target, from, cseq, seq);
    case EventType::kUpdatePreviousPeer:
      return std::make_unique<UpdatePreviousPeerEvent>(target, from, cseq, node_name(f.node_a),
                                                       body(f.port_a, f.node_a));
    case EventType::kRouteLost:
      return f.flags & 2 ? std::make_unique<RouteLostEvent>(target, from, node_name(f.node_a),
                                                            body(f.port_a, f.node_a))
                         : std::make_unique<RouteLostEvent>(target, from);
  }
  return nullptr;
}

void Adversary::Forge(const ForgeSpec& f) {
  if (attacker_lost_) return;
  uint32_t repeat = kRepeats[f.repeat % 4];
  // Largest payloads: a few are enough (and all are held in memory at once).
  if (f.len % 4 == 3) repeat = std::min<uint32_t>(repeat, 3);
  // 64 KiB ones: a count limit is reached with small payloads as well, and
  // 300 of them (encoded, decoded, queued: ~60 MB of copying) made the
  // fuzzer slow.
  if (f.len % 4 == 2) repeat = std::min<uint32_t>(repeat, 40);
  for (uint32_t rep = 0; rep < repeat; ++rep) {
    size_t to;
    std::unique_ptr<Event> e = MakeForged(f, rep, &to);
    if (!e) return;
    Learn(*e, to, /*outgoing=*/true);
    // Only what the real decoder accepts is well-formed enough to send.
    std::vector<UniqueFd> fds;
    std::vector<uint8_t> bytes = SerializeEvent(std::move(e), &fds);
    auto decoded = DeserializeEvent(bytes, fds);
    if (!decoded.ok()) {
      if (std::getenv("MOAT_ADVERSARY_DEBUG")) {
        std::fprintf(stderr, "codec refused: %s\n", decoded.error().ToString().c_str());
      }
      return;
    }
    queues_[{kAttacker, to}].push_back(std::move(*decoded));
  }
}

// ---------------------------------------------------------------------------
// Steps and checks.

void Adversary::Apply(const Op& op) {
  switch (op.kind) {
    case OpKind::kCreatePipe: CreatePipe(op.a % 2, op.b % 2); break;
    case OpKind::kSend: Send(op.a, op.b); break;
    case OpKind::kRead: Read(op.a); break;
    case OpKind::kClose: Close(op.a); break;
    case OpKind::kGiveToAttacker: GiveToAttacker(op.a); break;
    case OpKind::kPassThrough: {
      if (honest_.empty() || attacker_lost_) break;
      const size_t idx = op.a % honest_.size();
      const int pipe = honest_[idx].pipe;
      const int side = honest_[idx].side;
      const size_t before = held_.size();
      GiveToAttacker(idx);
      for (size_t k = before; k < held_.size(); ++k) {
        if (held_[k].pipe == pipe && held_[k].side == side && held_[k].open) {
          AttackerReturn(k, op.b % 2);
          break;
        }
      }
      break;
    }
    case OpKind::kAttackerReturn: AttackerReturn(op.a, op.b % 2); break;
    case OpKind::kAttackerPipe: AttackerPipe(op.a % 2); break;
    case OpKind::kAttackerUse: AttackerUse(op.a, op.b); break;
    case OpKind::kDeliver: {
      auto links = ActiveLinks();
      if (links.empty()) break;
      auto link = links[op.a % links.size()];
      for (uint32_t i = 0; i <= op.b % 8; ++i) Deliver(link.first, link.second);
      break;
    }
    case OpKind::kPump:
      if (!Settle()) Fail(Check::kLiveness, "the network did not settle (a forwarding loop?)");
      break;
    case OpKind::kAckInterval: {
      if (honest_.empty()) break;
      HonestEnd& e = honest_[op.a % honest_.size()];
      if (e.open) (void)node(e.node).SetAcknowledgeRequestInterval(e.ref, op.b % 4);
      break;
    }
    case OpKind::kForge: Forge(op.f); break;
    case OpKind::kLoseAttacker: LoseAttacker(); break;
  }
  if (pending_lose_) LoseAttacker();
}

bool Adversary::CheckPorts() {
  for (size_t n = 0; n < kHonestNodes && !stopped_; ++n) {
    std::vector<PortName> names(known_ports_[n].begin(), known_ports_[n].end());
    for (const PortName& pn : names) {
      PortRef ref;
      if (!node(n).GetPort(pn, &ref).ok()) {
        known_ports_[n].erase(pn);
        continue;
      }
      Port* port = ref.port();
      size_t buffered, retired, parked, queued, queued_bytes;
      bool receiving, peer_closed, has_next;
      uint64_t last, next;
      {
        MutexLock lock(&port->mu);
        buffered = port->buffered_events.size();
        retired = port->retired.size();
        parked = port->parked.size();
        for (const auto& l : port->retired) parked += l.parked.size();
        queued = port->message_queue.queued_message_count();
        queued_bytes = port->message_queue.queued_num_bytes();
        has_next = port->message_queue.HasNextMessage();
        next = port->message_queue.next_sequence_num();
        receiving = port->state == Port::State::kReceiving;
        peer_closed = port->peer_closed;
        last = port->last_sequence_num_to_receive;
      }
      std::ostringstream os;
      os << "port " << pn.ToString() << " on n" << n << " ";
      if (buffered > limits::MAX_PORT_BUFFERED_EVENTS) {
        os << "buffers " << buffered << " events, MAX_PORT_BUFFERED_EVENTS "
           << limits::MAX_PORT_BUFFERED_EVENTS;
        if (!Fail(Check::kBuffered, os.str())) return false;
        continue;
      }
      if (retired > limits::MAX_PORT_RETIRED_LINKS) {
        os << "keeps " << retired << " retired links, MAX_PORT_RETIRED_LINKS "
           << limits::MAX_PORT_RETIRED_LINKS;
        if (!Fail(Check::kRetired, os.str())) return false;
        continue;
      }
      if (parked > limits::MAX_PORT_BUFFERED_EVENTS) {
        os << "parks " << parked << " events (bound: MAX_PORT_BUFFERED_EVENTS "
           << limits::MAX_PORT_BUFFERED_EVENTS << ")";
        if (!Fail(Check::kParked, os.str())) return false;
        continue;
      }
      if (!has_next && queued_bytes > limits::MAX_PORT_OUT_OF_ORDER_BYTES) {
        os << "holds " << queued << " undeliverable messages of " << queued_bytes
           << " bytes, MAX_PORT_OUT_OF_ORDER_BYTES " << limits::MAX_PORT_OUT_OF_ORDER_BYTES;
        if (!Fail(Check::kOooBytes, os.str())) return false;
        continue;
      }
      if (receiving && peer_closed && last != kInvalidSequenceNum && queued > 0 &&
          (last + 1 < next || queued > last + 1 - next)) {
        os << "was told its peer closed after message " << last << " but holds " << queued
           << " messages from " << next << " on";
        if (!Fail(Check::kClosure, os.str())) return false;
        continue;
      }
    }
  }
  return !stopped_;
}

bool Adversary::CheckCleanEnds() {
  for (size_t i = 0; i < honest_.size() && !stopped_; ++i) {
    const HonestEnd& e = honest_[i];
    if (!e.open) continue;
    PortStatus st;
    Status s = node(e.node).GetStatus(e.ref, &st);
    std::ostringstream os;
    os << "honest end h" << i << " on n" << e.node << " (pipe " << e.pipe
       << (e.pipe >= 0 && pipes_[e.pipe].clean ? ", clean" : ", attacker's") << ") ";
    if (!s.ok()) {
      os << "was taken from its holder: " << s.error().ToString();
      if (!Fail(Check::kIntegrity, os.str())) return false;
      if (e.pipe >= 0) {
        Poison(e.pipe);
      } else {
        honest_[i].open = false;
        abandoned_.emplace_back(e.node, e.ref);
      }
      continue;
    }
    if (e.pipe < 0 || !pipes_[e.pipe].clean) continue;
    const Pipe& pipe = pipes_[e.pipe];
    if (st.peer_closed && !pipe.closed[1 - e.side]) {
      os << "reports its peer closed, but its peer is open";
      if (!Fail(Check::kIntegrity, os.str())) return false;
      Poison(e.pipe);
      continue;
    }
  }
  return !stopped_;
}

std::optional<std::string> Adversary::CheckStep() {
  if (!stopped_) CheckPorts();
  if (!stopped_) CheckCleanEnds();
  if (failure_.empty()) return std::nullopt;
  return failure_;
}

std::optional<std::string> Adversary::Finish() {
  auto done = [&]() -> std::optional<std::string> {
    if (failure_.empty()) return std::nullopt;
    return failure_;
  };
  if (stopped_) return done();
  if (!Settle()) {
    Fail(Check::kLiveness, "the network did not settle before the attacker was lost");
    return done();
  }
  LoseAttacker();
  if (!Settle()) {
    Fail(Check::kLiveness, "the network did not settle after the attacker was lost");
    return done();
  }
  if (CheckStep()) return done();
  if (stopped_) return done();
  // Clean pipes: everything due arrives, then they still carry messages both
  // ways (or report PEER_CLOSED if their peer was closed).
  for (size_t p = 0; p < pipes_.size() && !stopped_; ++p) {
    Pipe& pipe = pipes_[p];
    if (!pipe.clean) continue;
    for (int s = 0; s < 2 && !stopped_; ++s) {
      const int h = pipe.end[s];
      if (h < 0 || !honest_[h].open) continue;
      while (!pipe.to[s].empty() && !stopped_ && pipe.clean) {
        const size_t due = pipe.to[s].size();
        Read(static_cast<size_t>(h));
        if (pipe.clean && pipe.to[s].size() == due &&
            Fail(Check::kIntegrity, "clean end h" + std::to_string(h) + " (pipe " +
                                        std::to_string(p) + ") lost " + std::to_string(due) +
                                        " messages")) {
          Poison(static_cast<int>(p));
        }
      }
    }
    if (stopped_) break;
    if (!pipe.clean) continue;
    const bool open0 = pipe.end[0] >= 0 && honest_[pipe.end[0]].open;
    const bool open1 = pipe.end[1] >= 0 && honest_[pipe.end[1]].open;
    if (open0 && open1) {
      Send(static_cast<size_t>(pipe.end[0]), 0);
      Send(static_cast<size_t>(pipe.end[1]), 0);
      Settle();
      for (int s = 0; s < 2 && !stopped_ && pipe.clean; ++s) {
        Read(static_cast<size_t>(pipe.end[s]));
        if (pipe.clean && !pipe.to[s].empty() &&
            Fail(Check::kLiveness, "clean pipe " + std::to_string(p) +
                                       " stopped carrying messages after the attacker was lost")) {
          Poison(static_cast<int>(p));
        }
      }
    } else if (open0 != open1) {
      const HonestEnd& e = honest_[pipe.end[open0 ? 0 : 1]];
      std::unique_ptr<UserMessage> m;
      Status st = node(e.node).GetMessage(e.ref, &m);
      if ((st.ok() || st.error().code() != ErrorCode::kPeerClosed) &&
          Fail(Check::kLiveness, "clean pipe " + std::to_string(p) +
                                     ": its peer was closed but it never reports PEER_CLOSED")) {
        Poison(static_cast<int>(p));
      }
    }
  }
  // Every other honest end: its pipe depended on the attacker, who is gone.
  for (size_t i = 0; i < honest_.size() && !stopped_; ++i) {
    if (!honest_[i].open) continue;
    if (honest_[i].pipe >= 0 && pipes_[honest_[i].pipe].clean) continue;
    const size_t n = honest_[i].node;
    bool closed = false;
    for (size_t k = 0; k < kDrainLimit && !stopped_; ++k) {
      std::unique_ptr<UserMessage> m;
      Status st = node(n).GetMessage(honest_[i].ref, &m);
      if (!st.ok()) {
        if (st.error().code() == ErrorCode::kPeerClosed) {
          closed = true;
        } else {
          Fail(Check::kIntegrity, "honest end h" + std::to_string(i) +
                                      " was taken from its holder: " + st.error().ToString());
        }
        break;
      }
      if (!m) break;
      AdoptPorts(n, *m, false);
      Settle();
    }
    if (!closed && !stopped_) {
      PortStatus ps;
      std::ostringstream os;
      os << "honest end h" << i << " on n" << n << " (pipe " << honest_[i].pipe
         << ") of a pipe that depended on the lost attacker";
      if (node(n).GetStatus(honest_[i].ref, &ps).ok()) {
        os << " waits forever: peer_closed=" << ps.peer_closed
           << " receiving=" << ps.receiving_messages << " queued=" << ps.queued_message_count;
      }
      Fail(Check::kLiveness, os.str());
    }
  }
  if (stopped_) return done();
  // Nothing the attacker caused outlives it.
  for (size_t i = 0; i < honest_.size(); ++i) {
    if (!honest_[i].open) continue;
    honest_[i].open = false;
    (void)node(honest_[i].node).ClosePort(honest_[i].ref);
  }
  for (auto& [n, ref] : abandoned_) (void)node(n).ClosePort(ref);
  Settle();
  if (node(0).port_count() != 0 || node(1).port_count() != 0) {
    Fail(Check::kLeak, "ports left on honest nodes once every honest end was closed: " +
                           Describe());
  }
  return done();
}

std::string Adversary::Describe() const {
  std::ostringstream os;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    os << "n" << i << (nodes_[i]->lost ? "(lost)" : "") << ": " << nodes_[i]->node->port_count()
       << " ports, " << nodes_[i]->node->proxy_count() << " proxies; ";
  }
  os << "attacker learned " << learned_.size() << " port names";
  return os.str();
}

}  // namespace moat::ports::testing
