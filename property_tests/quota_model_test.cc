// R29/R13: stateful model of quota backpressure (core/system/quota.h).
//
// System under test: a sender endpoint A (QuotaSet + AckTracker for what it
// sends) and a receiver endpoint B (QuotaSet + its receive queue), wired with
// Mojo's read-ack protocol exactly as the ports layer runs it: A asks B to
// acknowledge sequence number `acked + interval` (interval =
// QuotaSet::AckRequestInterval()), B acknowledges its last read sequence
// number once it has read that far, and every applied ack makes A ask for the
// next one. Acks travel on a "wire" the test controls: they are delivered
// late, out of order, twice, or never, and a hostile peer forges arbitrary
// ones.
//
// The model is plain counters. After every step:
//   * AckTracker's last_sent/last_acked/unread equal the model's (an ack is
//     applied iff sent >= v > acked, a violation iff v > sent, else stale);
//   * QUOTA_EXCEEDED (AnyExceeded, and IsExceeded per quota) on A and on B
//     is raised exactly when the model says some usage > limit;
//   * AckRequestInterval == (L + 1) / 2, computed without overflow;
//   * without forged acks, A never believes more was read than really was
//     (true unread <= unacknowledged), and once every honest ack is
//     delivered its view lags by less than one ack window
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
  bool polite = true;             // no write while A was exceeded since the limit last changed
};

std::string LimitStr(uint64_t l) { return l == kNoQuotaLimit ? "none" : std::to_string(l); }

std::ostream& operator<<(std::ostream& os, const Model& m) {
  os << "A{limits=" << LimitStr(m.a.limits[0]) << "," << LimitStr(m.a.limits[1]) << ","
     << LimitStr(m.a.limits[2]) << " sent=" << m.sent << " acked=" << m.acked << "} B{limits="
     << LimitStr(m.b.limits[0]) << "," << LimitStr(m.b.limits[1]) << "," << LimitStr(m.b.limits[2])
     << " read=" << m.read << " queued=" << m.queue_at_b.size() << "/" << m.queued_bytes
     << " request=" << m.ack_request_at_b << "} wire=[";
  for (uint64_t v : m.wire) os << " " << v;
  return os << " ] forged_applied=" << m.forged_applied << " polite=" << m.polite;
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
  QuotaSet quota_a, quota_b;
  AckTracker tracker;  // A's
  std::deque<MMessage> queue_at_b;
  uint64_t last_read_at_b = 0;
  uint64_t ack_request_at_b = 0;
  std::vector<uint64_t> wire;

  QuotaUsage UsageA() const { return {0, 0, tracker.unread()}; }
  QuotaUsage UsageB() const {
    uint64_t bytes = 0;
    for (const MMessage& m : queue_at_b) bytes += m.bytes;
    return {queue_at_b.size(), bytes, 0};
  }

  // B receives a request to acknowledge `seq` (Node::OnReadAckRequest).
  void RequestAt(uint64_t seq) {
    if (seq <= last_read_at_b) {
      ack_request_at_b = 0;
      wire.push_back(last_read_at_b);
    } else {
      ack_request_at_b = seq;
    }
  }
  // A asks for the next ack (after a limit change or an applied ack).
  void AskNext() {
    const uint64_t interval = quota_a.AckRequestInterval();
    if (interval != 0) RequestAt(tracker.last_acked() + interval);
  }
};

// Model twin of Sut::RequestAt/AskNext.
void ModelRequestAt(Model& m, uint64_t seq) {
  if (seq <= m.read) {
    m.ack_request_at_b = 0;
    m.wire.push_back(m.read);
  } else {
    m.ack_request_at_b = seq;
  }
}
void ModelAskNext(Model& m) {
  const uint64_t interval = ModelInterval(m.a.limits[2]);
  if (interval != 0) ModelRequestAt(m, m.acked + interval);
}

void CheckInvariants(const Model& m, const Sut& s) {
  if (s.tracker.last_sent() != m.sent || s.tracker.last_acked() != m.acked) {
    FailWith(m, "tracker sent/acked " + std::to_string(s.tracker.last_sent()) + "/" +
                    std::to_string(s.tracker.last_acked()));
  }
  if (s.tracker.unread() != m.sent - m.acked) {
    FailWith(m, "tracker unread " + std::to_string(s.tracker.unread()));
  }
  if (s.tracker.last_acked() > s.tracker.last_sent()) FailWith(m, "acked beyond sent");
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
      if (st.ok() && on_a && *type == QuotaType::kUnreadMessageCount) s.AskNext();
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

// A writes a message of `bytes`; a polite writer skips while A is exceeded.
struct Write : Cmd {
  uint64_t bytes;
  bool polite;
  explicit Write(const Model&)
      : bytes(*rc::gen::inRange<uint64_t>(0, 64)), polite(*rc::gen::arbitrary<bool>()) {}
  bool Skips(const Model& m) const {
    return polite && ModelExceeded(m.a, 0, 0, m.sent - m.acked);
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
      const uint64_t seq = s.tracker.OnMessageSent();
      s.queue_at_b.push_back({seq, bytes});
    }
    Model next = m;
    apply(next);
    CheckInvariants(next, s);
  }
  void show(std::ostream& os) const override {
    os << "Write(" << bytes << " bytes" << (polite ? ", polite" : "") << ")";
  }
};

// B reads one message and acknowledges it if A asked for that far.
struct Read : Cmd {
  explicit Read(const Model&) {}
  void checkPreconditions(const Model& m) const override { RC_PRE(!m.queue_at_b.empty()); }
  void apply(Model& m) const override {
    const MMessage msg = m.queue_at_b.front();
    m.queue_at_b.pop_front();
    m.queued_bytes -= msg.bytes;
    m.read = msg.seq;
    if (m.ack_request_at_b != 0 && msg.seq >= m.ack_request_at_b) {
      m.ack_request_at_b = 0;
      m.wire.push_back(msg.seq);
    }
  }
  void run(const Model& m, Sut& s) const override {
    const MMessage msg = s.queue_at_b.front();
    s.queue_at_b.pop_front();
    RC_ASSERT(msg.seq == m.queue_at_b.front().seq);
    s.last_read_at_b = msg.seq;
    if (s.ack_request_at_b != 0 && msg.seq >= s.ack_request_at_b) {
      s.ack_request_at_b = 0;
      s.wire.push_back(msg.seq);
    }
    Model next = m;
    apply(next);
    CheckInvariants(next, s);
  }
  void show(std::ostream& os) const override { os << "Read()"; }
};

enum class Outcome { kApplied, kStale, kViolation };

Outcome ModelAck(const Model& m, uint64_t v) {
  if (v > m.sent) return Outcome::kViolation;
  if (v <= m.acked) return Outcome::kStale;
  return Outcome::kApplied;
}

void ModelApplyAck(Model& m, uint64_t v) {
  if (ModelAck(m, v) != Outcome::kApplied) return;
  m.acked = v;
  ModelAskNext(m);
}

void RunAck(const Model& m, Sut& s, uint64_t v) {
  Result<AckTracker::AckOutcome> r = s.tracker.OnReadAck(v);
  const Outcome want = ModelAck(m, v);
  Outcome got = Outcome::kViolation;
  if (r.ok()) {
    got = *r == AckTracker::AckOutcome::kApplied ? Outcome::kApplied : Outcome::kStale;
  } else {
    RC_ASSERT(r.error().code() == ErrorCode::kProtocolViolation);
  }
  if (got != want) {
    static const char* kNames[] = {"applied", "stale", "violation"};
    FailWith(m, "ack " + std::to_string(v) + " was " + kNames[static_cast<int>(got)] +
                    ", model says " + kNames[static_cast<int>(want)]);
  }
  if (got == Outcome::kApplied) s.AskNext();
}

// Delivers honest ack `index` from the wire (possibly out of order: late acks
// arrive stale). `keep` leaves it on the wire to be delivered again.
struct DeliverAck : Cmd {
  size_t index;
  bool keep;
  explicit DeliverAck(const Model& m)
      : index(*rc::gen::inRange<size_t>(0, std::max<size_t>(m.wire.size(), 1))),
        keep(*rc::gen::weightedOneOf<bool>({{3, rc::gen::just(false)}, {1, rc::gen::just(true)}})) {}
  void checkPreconditions(const Model& m) const override { RC_PRE(index < m.wire.size()); }
  void apply(Model& m) const override {
    const uint64_t v = m.wire[index];
    if (!keep) m.wire.erase(m.wire.begin() + static_cast<ptrdiff_t>(index));
    ModelApplyAck(m, v);
  }
  void run(const Model& m, Sut& s) const override {
    const uint64_t v = s.wire[index];
    RC_ASSERT(v == m.wire[index]);
    if (!keep) s.wire.erase(s.wire.begin() + static_cast<ptrdiff_t>(index));
    RunAck(m, s, v);
    Model next = m;
    apply(next);
    CheckInvariants(next, s);
  }
  void show(std::ostream& os) const override {
    os << (keep ? "DuplicateAck(wire[" : "DeliverAck(wire[") << index << "])";
  }
};

// Loses an honest ack on the wire.
struct DropAck : Cmd {
  size_t index;
  explicit DropAck(const Model& m)
      : index(*rc::gen::inRange<size_t>(0, std::max<size_t>(m.wire.size(), 1))) {}
  void checkPreconditions(const Model& m) const override { RC_PRE(index < m.wire.size()); }
  void apply(Model& m) const override {
    m.wire.erase(m.wire.begin() + static_cast<ptrdiff_t>(index));
    m.lost = true;
  }
  void run(const Model& m, Sut& s) const override {
    s.wire.erase(s.wire.begin() + static_cast<ptrdiff_t>(index));
    Model next = m;
    apply(next);
    CheckInvariants(next, s);
  }
  void show(std::ostream& os) const override { os << "DropAck(wire[" << index << "])"; }
};

// A hostile peer forges an ack value.
struct ForgeAck : Cmd {
  uint64_t value;
  explicit ForgeAck(const Model& m)
      : value(*rc::gen::oneOf(
            rc::gen::element<uint64_t>(0, m.sent, m.sent + 1, m.acked, UINT64_MAX, UINT64_MAX - 1),
            rc::gen::inRange<uint64_t>(0, m.sent + 5))) {}
  void apply(Model& m) const override {
    const bool applied = ModelAck(m, value) == Outcome::kApplied;
    const bool beyond_read = value > m.read;
    ModelApplyAck(m, value);
    if (applied && beyond_read) m.forged_applied = true;
  }
  void run(const Model& m, Sut& s) const override {
    RunAck(m, s, value);
    Model next = m;
    apply(next);
    CheckInvariants(next, s);
  }
  void show(std::ostream& os) const override { os << "ForgeAck(" << value << ")"; }
};

RC_GTEST_PROP(QuotaModel, BackpressureMatchesTheModel, ()) {
  Model initial;
  Sut sut;
  rc::state::check(initial, sut,
                   rc::state::gen::execOneOfWithArgs<SetQuota, Write, Write, Write, Read, Read,
                                                     DeliverAck, DeliverAck, DropAck, ForgeAck>());
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
