// R29/R11/R12: stateful model of ports (core/ports/node.h) across nodes.
//
// System under test: three ports::Node objects in one process, wired by
// core/ports/test_network.h (each node's delegate queues events on a FIFO per
// link, as a transport would). Commands create pipes (local or spanning two
// nodes), write messages (with or without an attached endpoint, which moves to
// the receiving node and may be sent on again from there), read, close, merge
// two pipes (MergeLocalPorts), deliver a random number of queued events on
// random links (so operations interleave with partial event delivery), and
// lose a node.
//
// The model is the ideal: every endpoint has a FIFO inbox of the messages its
// peer sent, regardless of where either end currently lives; an endpoint
// attached to a message lives inside that message; closing an end destroys its
// unread messages and closes every endpoint they carry (recursively); merging a
// and b makes peer(a) and peer(b) one pipe, with what peer(a) had sent towards
// a flowing on to peer(b) (and vice versa); losing a node loses every end that
// lives there. Reads pump the network first, then must match exactly:
//   * the message read is the model's next one (exactly once, in order), with
//     the attached endpoints usable on the reader's node;
//   * "nothing yet" only when the model inbox is empty and the peer alive;
//     PEER_CLOSED only when the inbox is empty and the peer is gone (so peer
//     closure is reported only after everything sent before it was read);
//   * merge succeeds exactly when the model allows it (distinct, receiving,
//     same node, not each other's peer, never sent or read);
//   * no node ever blames another for a protocol violation;
//   * after every end is closed, no ports or proxies remain on any live node.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/ports/node.h"
#include "core/ports/test_network.h"
#include "core/ports/user_message.h"

namespace moat::ports {
namespace {

using ::moat::ports::testing::TestNetwork;

constexpr int kNodes = 3;
constexpr size_t kMaxEnds = 24;

enum class EState { kOpen, kInMessage, kClosed, kMerged, kLost };

const char* Name(EState s) {
  switch (s) {
    case EState::kOpen: return "open";
    case EState::kInMessage: return "in-msg";
    case EState::kClosed: return "closed";
    case EState::kMerged: return "merged";
    case EState::kLost: return "lost";
  }
  return "?";
}

struct MEnd {
  int node = 0;
  EState state = EState::kOpen;
  int peer = -1;
  bool used = false;        // sent or read a message (merge refuses it)
  std::deque<int> inbox;    // message ids, oldest first
};

struct Model {
  std::vector<MEnd> ends;
  std::vector<std::vector<int>> msgs;  // message id -> attached ends
  std::array<bool, kNodes> lost = {};
};

std::ostream& operator<<(std::ostream& os, const Model& m) {
  for (size_t i = 0; i < m.ends.size(); ++i) {
    const MEnd& e = m.ends[i];
    os << "\n    e" << i << "@n" << e.node << " " << Name(e.state) << " peer=e" << e.peer
       << (e.used ? " used" : "") << " inbox=[";
    for (int id : e.inbox) {
      os << " m" << id;
      if (!m.msgs[id].empty()) {
        os << "(";
        for (int x : m.msgs[id]) os << "e" << x;
        os << ")";
      }
    }
    os << " ]";
  }
  os << "\n    lost nodes:";
  for (int n = 0; n < kNodes; ++n) {
    if (m.lost[n]) os << " n" << n;
  }
  return os;
}

[[noreturn]] void FailWith(const Model& m, const std::string& why) {
  std::ostringstream os;
  os << why << "\n  model before the step:" << m;
  RC_FAIL(os.str());
  __builtin_unreachable();
}

bool Alive(const Model& m, int e) {
  return m.ends[e].state == EState::kOpen || m.ends[e].state == EState::kInMessage;
}

// Ends `e` (closed or lost); its unread messages die and so do the ends they carry.
void EndCascade(Model& m, int e, EState how) {
  m.ends[e].state = how;
  std::deque<int> inbox = std::move(m.ends[e].inbox);
  m.ends[e].inbox.clear();
  for (int id : inbox) {
    for (int x : m.msgs[id]) EndCascade(m, x, how);
  }
}

// Delivers message `id` to `to` (or destroys it if `to` is gone).
void Deliver(Model& m, int to, int id) {
  if (Alive(m, to)) {
    m.ends[to].inbox.push_back(id);
  } else {
    for (int x : m.msgs[id]) EndCascade(m, x, EState::kClosed);
  }
}

// Every end reachable from x through messages in inboxes.
void Reach(const Model& m, int x, std::set<int>& out) {
  for (int id : m.ends[x].inbox) {
    for (int y : m.msgs[id]) {
      if (out.insert(y).second) Reach(m, y, out);
    }
  }
}

struct Sut {
  TestNetwork net;
  std::vector<PortRef> refs;
  Sut() {
    for (int i = 0; i < kNodes; ++i) net.AddNode();
  }
};

void CheckNoViolations(const Model& m, const Sut& s) {
  if (!s.net.violations().empty()) {
    FailWith(m, "node " + std::to_string(s.net.violations().front().first) +
                    " blamed for: " + s.net.violations().front().second);
  }
}

std::vector<int> OpenEnds(const Model& m) {
  std::vector<int> out;
  for (size_t i = 0; i < m.ends.size(); ++i) {
    if (m.ends[i].state == EState::kOpen) out.push_back(static_cast<int>(i));
  }
  return out;
}

int PickOpen(const Model& m) {
  const std::vector<int> open = OpenEnds(m);
  RC_PRE(!open.empty());
  return *rc::gen::elementOf(open);
}

using Cmd = rc::state::Command<Model, Sut>;

struct CreatePipe : Cmd {
  int i, j;
  explicit CreatePipe(const Model&)
      : i(*rc::gen::inRange(0, kNodes)),
        j(*rc::gen::weightedOneOf<int>({{1, rc::gen::just(-1)}, {2, rc::gen::inRange(0, kNodes)}})) {}
  int J() const { return j < 0 ? i : j; }
  void checkPreconditions(const Model& m) const override {
    RC_PRE(!m.lost[i]);
    RC_PRE(!m.lost[J()]);
    RC_PRE(m.ends.size() + 2 <= kMaxEnds);
  }
  void apply(Model& m) const override {
    const int a = static_cast<int>(m.ends.size());
    m.ends.push_back({i, EState::kOpen, a + 1, false, {}});
    m.ends.push_back({J(), EState::kOpen, a, false, {}});
  }
  void run(const Model& m, Sut& s) const override {
    auto [a, b] = s.net.CreatePipe(i, J());
    s.refs.push_back(a);
    s.refs.push_back(b);
    CheckNoViolations(m, s);
  }
  void show(std::ostream& os) const override { os << "CreatePipe(n" << i << ", n" << J() << ")"; }
};

std::unique_ptr<UserMessage> MakeMessage(int id) {
  auto msg = std::make_unique<UserMessage>();
  msg->payload.resize(4);
  const uint32_t v = static_cast<uint32_t>(id);
  std::memcpy(msg->payload.data(), &v, 4);
  return msg;
}

struct Write : Cmd {
  int e;
  int x;  // attached end, or -1
  explicit Write(const Model& m) : e(PickOpen(m)), x(-1) {
    if (*rc::gen::arbitrary<bool>()) {
      std::vector<int> candidates;
      for (int c : OpenEnds(m)) {
        if (c != e && c != m.ends[e].peer && m.ends[c].node == m.ends[e].node) candidates.push_back(c);
      }
      if (!candidates.empty()) x = *rc::gen::elementOf(candidates);
    }
  }
  void checkPreconditions(const Model& m) const override {
    RC_PRE(e < static_cast<int>(m.ends.size()));
    RC_PRE(m.ends[e].state == EState::kOpen);
    if (x >= 0) {
      RC_PRE(x < static_cast<int>(m.ends.size()));
      RC_PRE(m.ends[x].state == EState::kOpen);
      RC_PRE(m.ends[x].node == m.ends[e].node);
      RC_PRE(x != e && x != m.ends[e].peer);
      // No cycle of ends carried inside each other's queues (unreachable by
      // construction in Mojo too: nobody could ever close them).
      const int r = m.ends[e].peer;
      std::set<int> reach;
      Reach(m, x, reach);
      RC_PRE(r != x);
      RC_PRE(reach.count(r) == 0u);
    }
  }
  void apply(Model& m) const override {
    const int id = static_cast<int>(m.msgs.size());
    m.msgs.push_back(x >= 0 ? std::vector<int>{x} : std::vector<int>{});
    // A send refused with PEER_CLOSED does not use the port and, like a
    // cancelled transit (R9), leaves the attached end usable where it was
    // (run() settles the network first so the sender knows).
    if (!Alive(m, m.ends[e].peer)) return;  // refused: the attached end stays usable here
    m.ends[e].used = true;
    if (x >= 0) m.ends[x].state = EState::kInMessage;
    Deliver(m, m.ends[e].peer, id);
  }
  void run(const Model& m, Sut& s) const override {
    const int id = static_cast<int>(m.msgs.size());
    auto msg = MakeMessage(id);
    if (x >= 0) msg->ports.push_back(s.refs[x].name());
    Node& node = s.net.node(m.ends[e].node);
    const bool peer_alive = Alive(m, m.ends[e].peer);
    // Writing to a dead peer: once the network settles the closure is known
    // and the send must be refused.
    if (!peer_alive && !s.net.Pump()) FailWith(m, "network did not settle");
    Status st = node.SendUserMessage(s.refs[e], std::move(msg));
    if (peer_alive && !st.ok()) FailWith(m, "SendUserMessage failed: " + st.error().ToString());
    if (!peer_alive && (st.ok() || st.error().code() != ErrorCode::kPeerClosed)) {
      FailWith(m, "SendUserMessage to a closed peer returned " +
                      (st.ok() ? std::string("OK") : st.error().ToString()));
    }
    CheckNoViolations(m, s);
  }
  void show(std::ostream& os) const override {
    os << "Write(e" << e;
    if (x >= 0) os << ", attach e" << x;
    os << ")";
  }
};

struct Read : Cmd {
  int e;
  explicit Read(const Model& m) : e(PickOpen(m)) {}
  void checkPreconditions(const Model& m) const override {
    RC_PRE(e < static_cast<int>(m.ends.size()));
    RC_PRE(m.ends[e].state == EState::kOpen);
  }
  void apply(Model& m) const override {
    MEnd& end = m.ends[e];
    if (end.inbox.empty()) return;
    const int id = end.inbox.front();
    end.inbox.pop_front();
    end.used = true;
    for (int x : m.msgs[id]) {
      m.ends[x].state = EState::kOpen;
      m.ends[x].node = end.node;
    }
  }
  void run(const Model& m, Sut& s) const override {
    if (!s.net.Pump()) FailWith(m, "network did not settle");
    CheckNoViolations(m, s);
    const MEnd& end = m.ends[e];
    Node& node = s.net.node(end.node);
    std::unique_ptr<UserMessage> msg;
    Status st = node.GetMessage(s.refs[e], &msg);
    const bool peer_alive = Alive(m, end.peer);
    if (!st.ok()) {
      if (st.error().code() != ErrorCode::kPeerClosed) FailWith(m, "GetMessage: " + st.error().ToString());
      if (!end.inbox.empty()) {
        FailWith(m, "PEER_CLOSED with " + std::to_string(end.inbox.size()) + " messages unread");
      }
      if (peer_alive) FailWith(m, "PEER_CLOSED but the peer is alive");
      return;
    }
    if (msg == nullptr) {
      if (!end.inbox.empty()) {
        FailWith(m, "no message, but m" + std::to_string(end.inbox.front()) + " is due");
      }
      if (!peer_alive) FailWith(m, "no message and no PEER_CLOSED, but the peer is gone");
      return;
    }
    if (end.inbox.empty()) FailWith(m, "read a message the model never sent");
    uint32_t id = UINT32_MAX;
    if (msg->payload.size() == 4) std::memcpy(&id, msg->payload.data(), 4);
    if (static_cast<int>(id) != end.inbox.front()) {
      FailWith(m, "read m" + std::to_string(id) + " but m" + std::to_string(end.inbox.front()) +
                      " is due");
    }
    const std::vector<int>& attached = m.msgs[id];
    if (msg->ports.size() != attached.size()) FailWith(m, "wrong number of attached ports");
    for (size_t k = 0; k < attached.size(); ++k) {
      PortRef ref;
      Status got = node.GetPort(msg->ports[k], &ref);
      if (!got.ok()) FailWith(m, "attached port not found on the reader's node: " + got.error().ToString());
      s.refs[attached[k]] = ref;
    }
  }
  void show(std::ostream& os) const override { os << "Read(e" << e << ")"; }
};

struct Close : Cmd {
  int e;
  explicit Close(const Model& m) : e(PickOpen(m)) {}
  void checkPreconditions(const Model& m) const override {
    RC_PRE(e < static_cast<int>(m.ends.size()));
    RC_PRE(m.ends[e].state == EState::kOpen);
  }
  void apply(Model& m) const override { EndCascade(m, e, EState::kClosed); }
  void run(const Model& m, Sut& s) const override {
    Status st = s.net.node(m.ends[e].node).ClosePort(s.refs[e]);
    if (!st.ok()) FailWith(m, "ClosePort: " + st.error().ToString());
    CheckNoViolations(m, s);
  }
  void show(std::ostream& os) const override { os << "Close(e" << e << ")"; }
};

struct Merge : Cmd {
  int a, b;
  explicit Merge(const Model& m) : a(PickOpen(m)), b(PickOpen(m)) {}
  void checkPreconditions(const Model& m) const override {
    const int n = static_cast<int>(m.ends.size());
    RC_PRE(a < n);
    RC_PRE(b < n);
    RC_PRE(m.ends[a].state == EState::kOpen);
    RC_PRE(m.ends[b].state == EState::kOpen);
    RC_PRE(m.ends[a].node == m.ends[b].node);
    if (Allowed(m)) {
      // A cycle spanning nodes (a carried end or the target still sent from
      // another node) is still forwarded around between them: excluded.
      RC_PRE(LocalOrNoCycle(m, a, m.ends[b].peer));
      RC_PRE(LocalOrNoCycle(m, b, m.ends[a].peer));
    }
  }
  static bool LocalOrNoCycle(const Model& m, int from_end, int target) {
    const int node = m.ends[from_end].node;
    bool cycle = false, local = m.ends[target].node == node;
    for (int id : m.ends[from_end].inbox) {
      for (int y : m.msgs[id]) {
        std::set<int> reach;
        Reach(m, y, reach);
        if (y != target && reach.count(target) == 0u) continue;
        cycle = true;
        reach.insert(y);
        for (int z : reach) local = local && m.ends[z].node == node;
      }
    }
    return !cycle || local;
  }
  bool Allowed(const Model& m) const {
    return a != b && m.ends[a].peer != b && !m.ends[a].used && !m.ends[b].used;
  }
  // A merge hands what pa sent towards a on to pb (and vice versa): an end
  // y carried by one of those messages that is pb or (transitively) carries
  // pb would put pb into its own queue, an unreachable cycle that used to
  // be forwarded around forever. Such a y is closed (with everything it
  // carries) instead of delivered; the rest of the message is delivered.
  static void CloseCarriedInto(Model& m, const std::deque<int>& from, int target) {
    for (int id : from) {
      std::vector<int> kept;
      for (int y : m.msgs[id]) {
        std::set<int> reach;
        Reach(m, y, reach);
        if (y == target || reach.count(target) != 0u) {
          EndCascade(m, y, EState::kClosed);
        } else {
          kept.push_back(y);
        }
      }
      m.msgs[id] = std::move(kept);
    }
  }
  void apply(Model& m) const override {
    if (!Allowed(m)) return;
    const int pa = m.ends[a].peer, pb = m.ends[b].peer;
    std::deque<int> from_pa = std::move(m.ends[a].inbox);
    std::deque<int> from_pb = std::move(m.ends[b].inbox);
    m.ends[a].inbox.clear();
    m.ends[b].inbox.clear();
    m.ends[a].state = EState::kMerged;
    m.ends[b].state = EState::kMerged;
    m.ends[pa].peer = pb;
    m.ends[pb].peer = pa;
    CloseCarriedInto(m, from_pa, pb);
    CloseCarriedInto(m, from_pb, pa);
    for (int id : from_pa) Deliver(m, pb, id);
    for (int id : from_pb) Deliver(m, pa, id);
  }
  void run(const Model& m, Sut& s) const override {
    Status st = s.net.node(m.ends[a].node).MergeLocalPorts(s.refs[a], s.refs[b]);
    if (st.ok() != Allowed(m)) {
      FailWith(m, std::string("MergeLocalPorts ") +
                      (st.ok() ? "succeeded" : "failed (" + st.error().ToString() + ")") +
                      ", the model says the opposite");
    }
    if (!st.ok() && st.error().code() != ErrorCode::kFailedPrecondition) {
      FailWith(m, "MergeLocalPorts refused with " + st.error().ToString());
    }
    CheckNoViolations(m, s);
  }
  void show(std::ostream& os) const override { os << "Merge(e" << a << ", e" << b << ")"; }
};

// Delivers up to n queued events, each on a link chosen by `picks`.
struct DeliverSome : Cmd {
  std::vector<uint32_t> picks;
  explicit DeliverSome(const Model&)
      : picks(*rc::gen::resize(12, rc::gen::container<std::vector<uint32_t>>(rc::gen::arbitrary<uint32_t>()))) {}
  void apply(Model&) const override {}
  void run(const Model& m, Sut& s) const override {
    for (uint32_t p : picks) {
      auto links = s.net.ActiveLinks();
      if (links.empty()) break;
      s.net.DeliverOne(links[p % links.size()]);
    }
    CheckNoViolations(m, s);
  }
  void show(std::ostream& os) const override { os << "DeliverSome(" << picks.size() << " events)"; }
};

// A node crashes once the network is quiet (nothing it sent is in flight).
struct LoseNode : Cmd {
  int n;
  explicit LoseNode(const Model&) : n(*rc::gen::inRange(0, kNodes)) {}
  void checkPreconditions(const Model& m) const override {
    RC_PRE(!m.lost[n]);
    int alive = 0;
    for (bool l : m.lost) alive += l ? 0 : 1;
    RC_PRE(alive >= 2);
  }
  void apply(Model& m) const override {
    m.lost[n] = true;
    for (size_t i = 0; i < m.ends.size(); ++i) {
      if (m.ends[i].state == EState::kOpen && m.ends[i].node == n) {
        EndCascade(m, static_cast<int>(i), EState::kLost);
      }
    }
  }
  void run(const Model& m, Sut& s) const override {
    if (!s.net.Pump()) FailWith(m, "network did not settle");
    s.net.LoseNode(n);
    CheckNoViolations(m, s);
  }
  void show(std::ostream& os) const override { os << "LoseNode(n" << n << ")"; }
};

// Issue 12 item 2: an end bounced between its node and another one, `rounds`
// round trips on a helper pipe, each hop delivering only what the carrying
// message needs (round-robin over links), as fast as a real broker and child
// would. Messages to and from the end may be in flight meanwhile. Model: the
// end is where it is, its inbox unchanged; no node blames another (a chain
// past MAX_OBSERVE_PROXY_HOPS, a confirmation that looks forged).
struct Bounce : Cmd {
  int x, other, rounds;
  explicit Bounce(const Model& m)
      : x(PickOpen(m)),
        other(*rc::gen::inRange(0, kNodes)),
        rounds(*rc::gen::weightedOneOf<int>(
            {{4, rc::gen::inRange(1, 8)}, {1, rc::gen::inRange(33, 41)}})) {}
  void checkPreconditions(const Model& m) const override {
    RC_PRE(x < static_cast<int>(m.ends.size()));
    RC_PRE(m.ends[x].state == EState::kOpen);
    RC_PRE(other != m.ends[x].node);
    RC_PRE(!m.lost[other]);
    RC_PRE(!m.lost[m.ends[x].node]);
  }
  void apply(Model&) const override {}  // every round trip ends where it began
  void run(const Model& m, Sut& s) const override {
    const size_t home = static_cast<size_t>(m.ends[x].node), away = static_cast<size_t>(other);
    auto [c_home, c_away] = s.net.CreatePipe(home, away);
    const PortRef carrier[2] = {c_home, c_away};
    const size_t node_of[2] = {home, away};
    int at = 0;
    for (int hop = 0; hop < 2 * rounds; ++hop) {
      auto msg = std::make_unique<UserMessage>();
      msg->ports.push_back(s.refs[x].name());
      Status st = s.net.node(node_of[at]).SendUserMessage(carrier[at], std::move(msg));
      if (!st.ok()) FailWith(m, "bounce hop " + std::to_string(hop) + ": " + st.error().ToString());
      const int to = 1 - at;
      std::unique_ptr<UserMessage> got;
      for (size_t turn = 0; !got; ++turn) {
        CheckNoViolations(m, s);
        st = s.net.node(node_of[to]).GetMessage(carrier[to], &got);
        if (!st.ok()) FailWith(m, "bounce hop " + std::to_string(hop) + ": " + st.error().ToString());
        if (got) break;
        auto links = s.net.ActiveLinks();
        if (links.empty()) FailWith(m, "bounce hop " + std::to_string(hop) + ": carrier lost");
        s.net.DeliverOne(links[turn % links.size()]);
      }
      if (got->ports.size() != 1) FailWith(m, "bounce: the end did not travel");
      PortRef moved;
      if (!s.net.node(node_of[to]).GetPort(got->ports[0], &moved).ok()) {
        FailWith(m, "bounce: moved end not found");
      }
      s.refs[x] = moved;
      at = to;
    }
    RC_ASSERT(s.net.node(home).ClosePort(c_home).ok());
    RC_ASSERT(s.net.node(away).ClosePort(c_away).ok());
    CheckNoViolations(m, s);
  }
  void show(std::ostream& os) const override {
    os << "Bounce(e" << x << " to n" << other << " and back, " << rounds << " times)";
  }
};

// Issue 12 item 1 (crbug.com/1005510): node n shuts down in order. Its open
// ends close, then it keeps delivering until Node::HasEventsInFlight() is
// false and nothing it sent is queued (what NodeController's orderly
// shutdown waits for), then its connections drop. Model: its ends closed
// (not lost): everything they sent, and everything sent through its proxies
// (ends that just left it), still arrives.
struct ShutdownNode : Cmd {
  int n;
  explicit ShutdownNode(const Model&) : n(*rc::gen::inRange(0, kNodes)) {}
  void checkPreconditions(const Model& m) const override {
    RC_PRE(!m.lost[n]);
    int alive = 0;
    for (bool l : m.lost) alive += l ? 0 : 1;
    RC_PRE(alive >= 2);
  }
  void apply(Model& m) const override {
    for (size_t i = 0; i < m.ends.size(); ++i) {
      if (m.ends[i].state == EState::kOpen && m.ends[i].node == n) {
        EndCascade(m, static_cast<int>(i), EState::kClosed);
      }
    }
    m.lost[n] = true;
  }
  void run(const Model& m, Sut& s) const override {
    for (size_t i = 0; i < m.ends.size(); ++i) {
      if (m.ends[i].state == EState::kOpen && m.ends[i].node == n) {
        Status st = s.net.node(n).ClosePort(s.refs[i]);
        if (!st.ok()) FailWith(m, "ClosePort on shutdown: " + st.error().ToString());
      }
    }
    auto sending = [&] {
      for (const auto& link : s.net.ActiveLinks()) {
        if (link.from == static_cast<size_t>(n)) return true;
      }
      return false;
    };
    for (size_t turn = 0; s.net.node(n).HasEventsInFlight() || sending(); ++turn) {
      auto links = s.net.ActiveLinks();
      if (links.empty() || turn > 1000000) FailWith(m, "node " + std::to_string(n) + " never idle");
      s.net.DeliverOne(links[turn % links.size()]);
    }
    s.net.LoseNode(n);
    CheckNoViolations(m, s);
  }
  void show(std::ostream& os) const override { os << "ShutdownNode(n" << n << ")"; }
};

RC_GTEST_PROP(PortsModel, PipesBehaveAsIdealFifoQueues, ()) {
  Sut sut;
  Model initial;
  // Start from the model the commands leave behind, so the final clean-up
  // knows which ends are still open.
  const auto commands = *rc::state::gen::commands(
      initial, rc::state::gen::execOneOfWithArgs<CreatePipe, CreatePipe, Write, Write, Write, Read,
                                                 Read, Read, Close, Merge, DeliverSome,
                                                 DeliverSome, LoseNode, Bounce, Bounce,
                                                 ShutdownNode, ShutdownNode>());
  rc::state::runAll(commands, initial, sut);
  Model final_model = initial;
  rc::state::applyAll(commands, final_model);
  // Close every end still open, then nothing may remain anywhere.
  for (int e : OpenEnds(final_model)) {
    Status st = sut.net.node(final_model.ends[e].node).ClosePort(sut.refs[e]);
    if (!st.ok()) FailWith(final_model, "final ClosePort(e" + std::to_string(e) + "): " + st.error().ToString());
  }
  if (!sut.net.Pump()) FailWith(final_model, "network did not settle at the end");
  CheckNoViolations(final_model, sut);
  if (!sut.net.AllClean()) FailWith(final_model, "ports left behind: " + sut.net.Describe());
  for (int n = 0; n < kNodes; ++n) {
    if (sut.net.is_lost(n)) continue;
    if (sut.net.node(n).proxy_count() != 0) FailWith(final_model, "proxies left: " + sut.net.Describe());
    RC_ASSERT(sut.net.node(n).CanShutdownCleanly());
  }
}

// Issue 12 item 4 (PRT-23): after any history, with events still in flight,
// the link between two nodes breaks and only one of them is told (the third
// stays connected to both). The ideal model cannot say which pipes survive,
// so the check is the invariant: every pipe whose both ends are open either
// keeps working in both directions or reports PEER_CLOSED on both ends, and
// nobody is blamed. (With one node told, only pipes between the untold node
// and the third are checked; see the residual below and PRT-23.)
//
// Was disabled until 2026-12-04: it failed on 24 of seeds 1..30 (21 of them
// an honest node blamed for MAX_OBSERVE_PROXY_HOPS by a bounce carrying both
// ends of a pipe, the rest half-dead pipes after a bounce through the told
// node). Now 29 of 30 pass; seed 20 still finds an honest node blamed for
// MAX_VOUCHED_UNCONFIRMED_LINKS during a 33-round-trip bounce of an end whose
// peer is on the third node (PRT-13, open; not a link-loss defect).
RC_GTEST_PROP(PortsModel, OneSidedLinkLossNeverLeavesAHalfDeadPipe, ()) {
  Sut sut;
  Model initial;
  const auto commands = *rc::state::gen::commands(
      initial, rc::state::gen::execOneOfWithArgs<CreatePipe, CreatePipe, Write, Write, Write,
                                                 Write, Read, DeliverSome, DeliverSome,
                                                 DeliverSome, Bounce>());
  rc::state::runAll(commands, initial, sut);
  Model m = initial;
  rc::state::applyAll(commands, m);
  const int i = *rc::gen::inRange(0, kNodes);
  const int j = (i + *rc::gen::inRange(1, kNodes)) % kNodes;
  const bool both_sides = *rc::gen::arbitrary<bool>();
  RC_TAG(both_sides ? "both told" : "one told");
  sut.net.LoseLink(i, j, both_sides);
  if (!sut.net.Pump()) FailWith(m, "network did not settle after the cut");
  CheckNoViolations(m, sut);
  auto peer_closed = [&](int e) {
    PortStatus st;
    Status s = sut.net.node(m.ends[e].node).GetStatus(sut.refs[e], &st);
    if (!s.ok()) FailWith(m, "GetStatus(e" + std::to_string(e) + "): " + s.error().ToString());
    return st.peer_closed;
  };
  // Every message now readable at e; true if probe `id` is among them.
  auto drain_finds = [&](int e, int id) {
    bool found = false;
    std::unique_ptr<UserMessage> msg;
    while (sut.net.node(m.ends[e].node).GetMessage(sut.refs[e], &msg).ok() && msg) {
      uint32_t v = 0;
      if (msg->payload.size() == 4) std::memcpy(&v, msg->payload.data(), 4);
      if (static_cast<int>(v) == id) found = true;
    }
    return found;
  };
  int probe = 1 << 20;
  for (int a = 0; a < static_cast<int>(m.ends.size()); ++a) {
    const int b = m.ends[a].peer;
    if (b < a || m.ends[a].state != EState::kOpen || m.ends[b].state != EState::kOpen) continue;
    // With only node i told, only the issue's shape is checked: one end on
    // the untold node j, the other on the third node k (the route may have
    // run through proxies on i). Others are open (PRT-23 residual): ends
    // only on {i, j} may have had every route over the cut link, and an end
    // on i whose route to k ran only through proxies on the untold j is not
    // told either (e.g. CreatePipe(n0, n2), Bounce(e0 to n1 and back, 33
    // times), LoseLink(n0, n1, one-sided)).
    const auto on = [&](int e, int n) { return m.ends[e].node == n; };
    const int k = 3 - i - j;
    const bool issue_shape = (on(a, j) && on(b, k)) || (on(a, k) && on(b, j));
    if (!both_sides && !issue_shape) continue;
    const bool ca = peer_closed(a), cb = peer_closed(b);
    const std::string pipe = "e" + std::to_string(a) + "@n" + std::to_string(m.ends[a].node) +
                             " - e" + std::to_string(b) + "@n" + std::to_string(m.ends[b].node);
    RC_TAG(ca && cb ? "pipe closed" : (ca || cb ? "half-dead" : "pipe works"));
    if (ca != cb) {
      FailWith(m, "half-dead pipe after LoseLink(n" + std::to_string(i) + ", n" +
                      std::to_string(j) + (both_sides ? ", both" : ", one-sided") + "): " + pipe +
                      " peer_closed " + std::to_string(ca) + "/" + std::to_string(cb));
    }
    if (ca) continue;
    const int pa = probe++, pb = probe++;
    Status sa = sut.net.node(m.ends[a].node).SendUserMessage(sut.refs[a], MakeMessage(pa));
    Status sb = sut.net.node(m.ends[b].node).SendUserMessage(sut.refs[b], MakeMessage(pb));
    if (!sa.ok() || !sb.ok()) FailWith(m, "write on open pipe " + pipe + " failed");
    if (!sut.net.Pump()) FailWith(m, "network did not settle");
    const bool got_b = drain_finds(b, pa), got_a = drain_finds(a, pb);
    const bool now_ca = peer_closed(a), now_cb = peer_closed(b);
    if (!(got_a && got_b) && !(now_ca && now_cb)) {
      FailWith(m, "pipe " + pipe + " neither works nor closed after LoseLink(n" +
                      std::to_string(i) + ", n" + std::to_string(j) +
                      (both_sides ? ", both" : ", one-sided") + "): a->b " +
                      std::to_string(got_b) + " b->a " + std::to_string(got_a));
    }
  }
  CheckNoViolations(m, sut);
}

}  // namespace
}  // namespace moat::ports
