// R29/R13: stateful model of quota backpressure (core/system/quota.h).
//
// System under test: a pipe between port A on node 0 and port B on node 1
// (core/ports/test_network.h), each end with a QuotaSet, as the system layer
// wires them: A's unread-count limit L sets A's read-ack request interval to
// QuotaSet::AckRequestInterval(); the ports layer then asks B to acknowledge
// `acked + interval`, B acknowledges its last read sequence number once it
// has read that far, and every applied ack makes A ask for the next one (the
// read-ack tracking lives in ports::Node: PortStatus::unacknowledged_message_count).
// The network is pumped after each step (acks arrive promptly); a compromised
// node 1 forges acks (stale, duplicate, in range, over-count, u64 max) stamped
// as B's own events, and is disconnected when one is a violation.
//
// The model is plain counters. After every step:
//   * A's unacknowledged count equals the model's (an ack is applied iff
//     sent >= v > acked, a violation iff v > sent, else ignored as stale);
//     B's queued message count and bytes equal the model's;
//   * QUOTA_EXCEEDED (AnyExceeded, and IsExceeded per quota) on A and on B
//     is raised exactly when the model says some usage > limit;
//   * AckRequestInterval == (L + 1) / 2, computed without overflow;
//   * without forged acks, A never believes more was read than really was
//     (true unread <= unacknowledged), and its view lags by less than one ack
//     window
//     (unacknowledged - true unread < interval), so a drained receiver
//     always un-exceeds the sender (no backpressure deadlock);
//   * a writer that honours QUOTA_EXCEEDED keeps unacknowledged <= L + 1,
//     i.e. within the limit plus the ack window (L + 1) / 2.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>

#include <array>
#include <cstdint>
#include <deque>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/mutex.h"
#include "core/ports/event.h"
#include "core/ports/node.h"
#include "core/ports/port.h"
#include "core/ports/test_network.h"
#include "core/ports/user_message.h"
#include "core/system/quota.h"

namespace moat::system {
namespace {

struct MMessage {
  uint64_t seq = 0;
  uint64_t bytes = 0;
};

struct MEndpoint {
  std::array<uint64_t, kQuotaTypeCount> limits = {kNoQuotaLimit, kNoQuotaLimit, kNoQuotaLimit};
};

struct Model {
  MEndpoint a, b;
  uint64_t sent = 0;          // messages A sent
  uint64_t acked = 0;         // highest ack A applied
  uint64_t read = 0;          // messages B read
  uint64_t queued_bytes = 0;  // payload bytes queued at B
  std::deque<MMessage> queue_at_b;
  uint64_t ack_request_at_b = 0;  // 0: none outstanding
  std::vector<uint64_t> wire;     // honest acks in flight B -> A
  bool forged_applied = false;    // a forged ack was accepted (it can lie within range)
  bool lost = false;              // an honest ack was lost: the sender may lag for good
  bool disconnected = false;      // a forged ack was a violation: node 1 was cut off
  bool polite = true;             // no write while A was exceeded since the limit last changed
  int b_node = 1;                 // where B lives now (it moves between nodes 1 and 2)
  bool b_closed = false;          // B was closed: its closure acknowledges everything
};

std::string LimitStr(uint64_t l) { return l == kNoQuotaLimit ? "none" : std::to_string(l); }

std::ostream& operator<<(std::ostream& os, const Model& m) {
  os << "A{limits=" << LimitStr(m.a.limits[0]) << "," << LimitStr(m.a.limits[1]) << ","
     << LimitStr(m.a.limits[2]) << " sent=" << m.sent << " acked=" << m.acked << "} B{limits="
     << LimitStr(m.b.limits[0]) << "," << LimitStr(m.b.limits[1]) << "," << LimitStr(m.b.limits[2])
     << " read=" << m.read << " queued=" << m.queue_at_b.size() << "/" << m.queued_bytes
     << " request=" << m.ack_request_at_b << "} wire=[";
  for (uint64_t v : m.wire) os << " " << v;
  return os << " ] forged_applied=" << m.forged_applied << " polite=" << m.polite
            << " B@n" << m.b_node << (m.b_closed ? " closed" : "");
}

[[noreturn]] void FailWith(const Model& m, const std::string& why) {
  std::ostringstream os;
  os << why << "\n  model: " << m;
  RC_FAIL(os.str());
  __builtin_unreachable();
}

// The model's own interval: (L + 1) / 2 in 128-bit arithmetic.
uint64_t ModelInterval(uint64_t limit) {
  if (limit == kNoQuotaLimit) return 0;
  return static_cast<uint64_t>((static_cast<unsigned __int128>(limit) + 1) / 2);
}

bool ModelExceeded(const MEndpoint& e, uint64_t len, uint64_t bytes, uint64_t unread) {
  return len > e.limits[0] || bytes > e.limits[1] || unread > e.limits[2];
}

struct Sut {
  ports::testing::TestNetwork net;
  ports::PortRef a, b;
  int b_node = 1;
  QuotaSet quota_a, quota_b;

  Sut() {
    net.AddNode();
    net.AddNode();
    net.AddNode();  // B moves between nodes 1 and 2 (MoveReader)
    auto [x, y] = net.CreatePipe(0, 1);
    a = x;
    b = y;
  }
  ports::PortStatus Status(int node, const ports::PortRef& p) {
    ports::PortStatus st;
    RC_ASSERT(net.node(node).GetStatus(p, &st).ok());
    return st;
  }
  QuotaUsage UsageA() { return {0, 0, Status(0, a).unacknowledged_message_count}; }
  QuotaUsage UsageB() {
    const ports::PortStatus st = Status(b_node, b);
    return {st.queued_message_count, st.queued_num_bytes, 0};
  }
};

enum class Outcome { kApplied, kStale, kViolation };

Outcome ModelAck(const Model& m, uint64_t v) {
  if (v > m.sent) return Outcome::kViolation;
  if (v <= m.acked) return Outcome::kStale;
  return Outcome::kApplied;
}

void ModelAskNext(Model& m);

// A's port receives ack v (acks are delivered promptly: the network is
// pumped after every step).
void ModelApplyAck(Model& m, uint64_t v) {
  if (ModelAck(m, v) != Outcome::kApplied) return;
  m.acked = v;
  ModelAskNext(m);
}

// B receives a request to acknowledge `seq` (Node::OnReadAckRequest).
void ModelRequestAt(Model& m, uint64_t seq) {
  if (seq <= m.read) {
    m.ack_request_at_b = 0;
    ModelApplyAck(m, m.read);
  } else {
    m.ack_request_at_b = seq;
  }
}
void ModelAskNext(Model& m) {
  const uint64_t interval = ModelInterval(m.a.limits[2]);
  if (interval != 0) ModelRequestAt(m, m.acked + interval);
}

void CheckInvariants(const Model& m, Sut& s) {
  if (!s.net.Pump()) FailWith(m, "network did not settle");
  if (m.disconnected) {
    if (s.net.violations().empty()) FailWith(m, "violating ack did not disconnect node 1");
    return;
  }
  if (!s.net.violations().empty()) FailWith(m, "node 1 blamed: " + s.net.violations().front().second);
  const uint64_t unacked_real = s.UsageA().unread_message_count;
  if (unacked_real != m.sent - m.acked) {
    FailWith(m, "A reports " + std::to_string(unacked_real) + " unacknowledged");
  }
  if (m.b_closed) {
    // The closed reader acknowledged everything: A's unread usage is 0 and
    // its QUOTA_EXCEEDED (and with it the unwritable state) clears.
    if (s.quota_a.AnyExceeded(s.UsageA())) FailWith(m, "A still QUOTA_EXCEEDED after PEER_CLOSED");
    ports::PortStatus st = s.Status(0, s.a);
    if (!st.peer_closed) FailWith(m, "A does not see PEER_CLOSED");
    return;
  }
  const QuotaUsage ub = s.UsageB();
  if (ub.receive_queue_length != m.queue_at_b.size() || ub.receive_queue_bytes != m.queued_bytes) {
    FailWith(m, "B reports " + std::to_string(ub.receive_queue_length) + " queued / " +
                    std::to_string(ub.receive_queue_bytes) + " bytes");
  }
  for (uint32_t t = 0; t < kQuotaTypeCount; ++t) {
    if (s.quota_a.limit(static_cast<QuotaType>(t)) != m.a.limits[t] ||
        s.quota_b.limit(static_cast<QuotaType>(t)) != m.b.limits[t]) {
      FailWith(m, "limit of quota " + std::to_string(t) + " differs");
    }
  }
  const uint64_t unacked = m.sent - m.acked;
  const bool a_exceeded = ModelExceeded(m.a, 0, 0, unacked);
  const bool b_exceeded = ModelExceeded(m.b, m.queue_at_b.size(), m.queued_bytes, 0);
  if (s.quota_a.AnyExceeded(s.UsageA()) != a_exceeded) {
    FailWith(m, std::string("A QUOTA_EXCEEDED is ") + (a_exceeded ? "off" : "on"));
  }
  if (s.quota_b.AnyExceeded(s.UsageB()) != b_exceeded) {
    FailWith(m, std::string("B QUOTA_EXCEEDED is ") + (b_exceeded ? "off" : "on"));
  }
  RC_ASSERT(s.quota_a.IsExceeded(QuotaType::kUnreadMessageCount, s.UsageA()) ==
            (unacked > m.a.limits[2]));
  RC_ASSERT(s.quota_b.IsExceeded(QuotaType::kReceiveQueueLength, s.UsageB()) ==
            (m.queue_at_b.size() > m.b.limits[0]));
  RC_ASSERT(s.quota_b.IsExceeded(QuotaType::kReceiveQueueMemorySize, s.UsageB()) ==
            (m.queued_bytes > m.b.limits[1]));
  const uint64_t interval = ModelInterval(m.a.limits[2]);
  if (s.quota_a.AckRequestInterval() != interval) {
    FailWith(m, "AckRequestInterval " + std::to_string(s.quota_a.AckRequestInterval()) +
                    " != (L+1)/2 = " + std::to_string(interval));
  }
  const uint64_t true_unread = m.sent - m.read;
  if (!m.forged_applied) {
    if (true_unread > unacked) {
      FailWith(m, "sender believes more was read (" + std::to_string(m.acked) +
                      ") than really was (" + std::to_string(m.read) + ")");
    }
    if (!m.lost && interval != 0 && m.wire.empty() && unacked - true_unread >= interval) {
      FailWith(m, "with every ack delivered the sender lags " +
                      std::to_string(unacked - true_unread) + " >= one ack window " +
                      std::to_string(interval));
    }
    if (!m.lost && interval != 0 && m.wire.empty() && m.queue_at_b.empty() && a_exceeded) {
      FailWith(m, "receiver drained, every ack delivered, sender still QUOTA_EXCEEDED");
    }
    if (m.polite && m.a.limits[2] != kNoQuotaLimit && unacked > m.a.limits[2] + 1) {
      FailWith(m, "a polite writer reached " + std::to_string(unacked) + " unacknowledged");
    }
  }
}

using Cmd = rc::state::Command<Model, Sut>;

rc::Gen<uint64_t> GenLimit() {
  return rc::gen::weightedOneOf<uint64_t>({
      {6, rc::gen::inRange<uint64_t>(1, 9)},
      {1, rc::gen::just<uint64_t>(0)},
      {2, rc::gen::just(kNoQuotaLimit)},
      {1, rc::gen::element<uint64_t>(kNoQuotaLimit - 1, kNoQuotaLimit - 2, uint64_t{1} << 63)},
  });
}

struct SetQuota : Cmd {
  bool on_a;
  uint32_t raw_type;
  uint64_t limit;
  explicit SetQuota(const Model&)
      : on_a(*rc::gen::arbitrary<bool>()),
        raw_type(*rc::gen::weightedOneOf<uint32_t>(
            {{8, rc::gen::inRange<uint32_t>(0, 3)},
             {1, rc::gen::element<uint32_t>(3, 4, 0x80000000u, UINT32_MAX)}})),
        limit(*GenLimit()) {}
  bool Valid() const { return raw_type < kQuotaTypeCount && limit != 0; }
  void apply(Model& m) const override {
    if (!Valid()) return;
    MEndpoint& e = on_a ? m.a : m.b;
    e.limits[raw_type] = limit;
    if (on_a && raw_type == 2) {
      m.polite = (m.sent - m.acked) <= limit;
      ModelAskNext(m);
    }
  }
  void checkPreconditions(const Model& m) const override { RC_PRE(!m.disconnected); }
  void run(const Model& m, Sut& s) const override {
    Result<QuotaType> type = QuotaSet::ParseType(raw_type);
    if (raw_type >= kQuotaTypeCount) {
      RC_ASSERT(!type.ok());
      RC_ASSERT(type.error().code() == ErrorCode::kInvalidArgument);
    } else {
      RC_ASSERT(type.ok());
      QuotaSet& q = on_a ? s.quota_a : s.quota_b;
      Status st = q.Set(*type, limit);
      if (st.ok() != Valid()) FailWith(m, "Set returned " + std::string(st.ok() ? "ok" : "error"));
      if (!st.ok()) RC_ASSERT(st.error().code() == ErrorCode::kInvalidArgument);
      // What the system layer does when the unread quota changes.
      if (st.ok() && on_a && *type == QuotaType::kUnreadMessageCount) {
        RC_ASSERT(s.net.node(0).SetAcknowledgeRequestInterval(s.a, s.quota_a.AckRequestInterval()).ok());
      }
    }
    Model next = m;
    apply(next);
    CheckInvariants(next, s);
  }
  void show(std::ostream& os) const override {
    os << "SetQuota(" << (on_a ? "A" : "B") << ", type=" << raw_type << ", limit=" << LimitStr(limit)
       << ")";
  }
};

// SetQuota of A's unread-message limit (the quota with read-ack traffic),
// drawn often enough that short runs reach acks in flight around moves.
struct SetUnreadQuota : SetQuota {
  explicit SetUnreadQuota(const Model& m) : SetQuota(m) {
    on_a = true;
    raw_type = 2;
    limit = *rc::gen::inRange<uint64_t>(1, 9);
  }
};

std::unique_ptr<ports::UserMessage> Message(uint64_t bytes) {
  auto msg = std::make_unique<ports::UserMessage>();
  msg->payload.assign(bytes, 0x5A);
  return msg;
}

// A writes a message of `bytes`; a polite writer skips while A is exceeded.
struct Write : Cmd {
  uint64_t bytes;
  bool polite;
  explicit Write(const Model&)
      : bytes(*rc::gen::inRange<uint64_t>(0, 64)), polite(*rc::gen::arbitrary<bool>()) {}
  bool Skips(const Model& m) const {
    return polite && ModelExceeded(m.a, 0, 0, m.sent - m.acked);
  }
  void checkPreconditions(const Model& m) const override {
    RC_PRE(!m.disconnected);
    RC_PRE(!m.b_closed);
  }
  void apply(Model& m) const override {
    if (Skips(m)) return;
    if (ModelExceeded(m.a, 0, 0, m.sent - m.acked)) m.polite = false;
    ++m.sent;
    m.queue_at_b.push_back({m.sent, bytes});
    m.queued_bytes += bytes;
  }
  void run(const Model& m, Sut& s) const override {
    const bool exceeded = s.quota_a.AnyExceeded(s.UsageA());
    if (!(polite && exceeded)) {
      Status st = s.net.node(0).SendUserMessage(s.a, Message(bytes));
      if (!st.ok()) FailWith(m, "SendUserMessage: " + st.error().ToString());
    }
    Model next = m;
    apply(next);
    CheckInvariants(next, s);
  }
  void show(std::ostream& os) const override {
    os << "Write(" << bytes << " bytes" << (polite ? ", polite" : "") << ")";
  }
};

// B reads one message (the ports layer acknowledges it if A asked for that far).
struct Read : Cmd {
  explicit Read(const Model&) {}
  void checkPreconditions(const Model& m) const override {
    RC_PRE(!m.disconnected);
    RC_PRE(!m.b_closed);
    RC_PRE(!m.queue_at_b.empty());
  }
  void apply(Model& m) const override {
    const MMessage msg = m.queue_at_b.front();
    m.queue_at_b.pop_front();
    m.queued_bytes -= msg.bytes;
    m.read = msg.seq;
    if (m.ack_request_at_b != 0 && msg.seq >= m.ack_request_at_b) {
      m.ack_request_at_b = 0;
      ModelApplyAck(m, msg.seq);
    }
  }
  void run(const Model& m, Sut& s) const override {
    std::unique_ptr<ports::UserMessage> msg;
    Status st = s.net.node(s.b_node).GetMessage(s.b, &msg);
    if (!st.ok() || msg == nullptr) FailWith(m, "B could not read a queued message");
    RC_ASSERT(msg->payload.size() == m.queue_at_b.front().bytes);
    Model next = m;
    apply(next);
    CheckInvariants(next, s);
  }
  void show(std::ostream& os) const override { os << "Read()"; }
};

// A compromised node 1 sends A a read ack of its choosing, stamped as B's own
// next event (so only the ack's value is hostile).
struct ForgeAck : Cmd {
  uint64_t value;
  explicit ForgeAck(const Model& m)
      : value(*rc::gen::oneOf(
            rc::gen::element<uint64_t>(0, m.sent, m.sent + 1, m.acked, UINT64_MAX, UINT64_MAX - 1),
            rc::gen::inRange<uint64_t>(0, m.sent + 5))) {}
  void checkPreconditions(const Model& m) const override {
    RC_PRE(!m.disconnected);
    RC_PRE(!m.b_closed);
  }
  void apply(Model& m) const override {
    const Outcome o = ModelAck(m, value);
    if (o == Outcome::kViolation) {
      m.disconnected = true;
      return;
    }
    if (o == Outcome::kApplied && value > m.read) m.forged_applied = true;
    ModelApplyAck(m, value);
  }
  void run(const Model& m, Sut& s) const override {
    auto ack = std::make_unique<ports::UserMessageReadAckEvent>(ports::kInvalidPortName,
                                                               ports::kInvalidPortName, 0, value);
    {
      ports::Port* port = s.b.port();
      MutexLock lock(&port->mu);
      port->StampForPeer(ack.get(), s.b.name());
    }
    Status st = s.net.Inject(static_cast<size_t>(s.b_node), 0, std::move(ack));
    const bool violation = ModelAck(m, value) == Outcome::kViolation;
    if (st.ok() == violation) {
      FailWith(m, "forged ack " + std::to_string(value) + (st.ok() ? " accepted" : " rejected (" + st.error().ToString() + ")") +
                      ", model says the opposite");
    }
    if (!st.ok() && st.error().code() != ErrorCode::kProtocolViolation) {
      FailWith(m, "forged ack gave " + st.error().ToString());
    }
    Model next = m;
    apply(next);
    CheckInvariants(next, s);
  }
  void show(std::ostream& os) const override { os << "ForgeAck(" << value << ")"; }
};

// The reader moves to the other node (1 <-> 2) inside a message on a helper
// pipe, with its queue and any outstanding read-ack request (issue 12 item 3:
// a request left behind means the writer's count never falls and a writer
// waiting for WRITABLE under its unread quota deadlocks). The model does not
// change: B is the same endpoint wherever it lives.
struct MoveReader : Cmd {
  explicit MoveReader(const Model&) {}
  void checkPreconditions(const Model& m) const override {
    RC_PRE(!m.disconnected);
    RC_PRE(!m.b_closed);
  }
  void apply(Model& m) const override { m.b_node = 3 - m.b_node; }
  void run(const Model& m, Sut& s) const override {
    const size_t from = static_cast<size_t>(s.b_node), to = static_cast<size_t>(3 - s.b_node);
    auto [c, d] = s.net.CreatePipe(from, to);
    auto carrier = std::make_unique<ports::UserMessage>();
    carrier->ports.push_back(s.b.name());
    Status st = s.net.node(from).SendUserMessage(c, std::move(carrier));
    if (!st.ok()) FailWith(m, "sending B: " + st.error().ToString());
    if (!s.net.Pump()) FailWith(m, "network did not settle");
    std::unique_ptr<ports::UserMessage> got;
    st = s.net.node(to).GetMessage(d, &got);
    if (!st.ok() || got == nullptr || got->ports.size() != 1) FailWith(m, "B did not arrive");
    ports::PortRef moved;
    if (!s.net.node(to).GetPort(got->ports[0], &moved).ok()) FailWith(m, "moved B not found");
    RC_ASSERT(s.net.node(from).ClosePort(c).ok());
    RC_ASSERT(s.net.node(to).ClosePort(d).ok());
    s.b = moved;
    s.b_node = static_cast<int>(to);
    Model next = m;
    apply(next);
    CheckInvariants(next, s);
  }
  void show(std::ostream& os) const override { os << "MoveReader()"; }
};

// The reader closes: peer closure counts as acknowledgement (Mojo), so A's
// unread usage drops to 0 and QUOTA_EXCEEDED clears.
struct CloseReader : Cmd {
  explicit CloseReader(const Model&) {}
  void checkPreconditions(const Model& m) const override {
    RC_PRE(!m.disconnected);
    RC_PRE(!m.b_closed);
  }
  void apply(Model& m) const override {
    m.b_closed = true;
    m.acked = m.sent;
    m.queue_at_b.clear();
    m.queued_bytes = 0;
    m.ack_request_at_b = 0;
  }
  void run(const Model& m, Sut& s) const override {
    Status st = s.net.node(s.b_node).ClosePort(s.b);
    if (!st.ok()) FailWith(m, "closing B: " + st.error().ToString());
    Model next = m;
    apply(next);
    CheckInvariants(next, s);
  }
  void show(std::ostream& os) const override { os << "CloseReader()"; }
};

RC_GTEST_PROP(QuotaModel, BackpressureMatchesTheModel, ()) {
  Model initial;
  Sut sut;
  rc::state::check(initial, sut,
                   rc::state::gen::execOneOfWithArgs<SetQuota, SetUnreadQuota, Write, Write, Write,
                                                     Read, Read, ForgeAck, MoveReader, MoveReader,
                                                     CloseReader>());
}

// The interval formula on its own, over the whole u64 range (the stateful
// model only meets a few huge limits).
RC_GTEST_PROP(QuotaModel, AckIntervalIsHalfTheLimitRoundedUp, (uint64_t limit)) {
  QuotaSet q;
  Status s = q.Set(QuotaType::kUnreadMessageCount, limit);
  RC_ASSERT(s.ok() == (limit != 0));
  if (!s.ok()) {
    RC_ASSERT(q.AckRequestInterval() == 0u);
    return;
  }
  RC_ASSERT(q.AckRequestInterval() == ModelInterval(limit));
}

}  // namespace
}  // namespace moat::system
