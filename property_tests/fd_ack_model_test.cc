// R29/R8: stateful model of the descriptor-acknowledgement protocol
// (transport/fd_ack.h) between two peers.
//
// Each peer owns one FdAckState (sender and receiver halves) with a random
// window. Commands send frames carrying real descriptors (/dev/null) and a
// piggybacked ack count, deliver frames in order, send standalone FD_ACKs, and
// let a hostile peer inject acks (too many, exactly enough, u32 max) and
// descriptor counts that overflow the u32 ack counter.
//
// The model: per peer a FIFO of retained descriptor numbers and a pending-ack
// counter. After every step:
//   * retained() == model == total_sent - total_acked; pending_acks() and the
//     totals match; CanSend(n) holds exactly when n more fit in the window;
//   * an ack releases (closes) exactly the oldest descriptors, and the ones
//     still retained are open; a violating ack (more than outstanding) is
//     kProtocolViolation and releases nothing; an overflowing descriptor count
//     is kProtocolViolation and changes nothing;
//   * the process holds exactly baseline + retained descriptors (no leak, no
//     premature close), and none at the end;
//   * with an honest peer, sender retained == descriptors on the wire + the
//     receiver's pending acks + acks on the wire back (nothing is lost), and
//     never exceeds the window.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/testing/fd_count.h"
#include "core/unique_fd.h"
#include "transport/fd_ack.h"

namespace moat::transport {
namespace {

struct MFrame {
  uint32_t fd_count = 0;
  uint32_t ack_count = 0;
};

struct MPeer {
  uint32_t window = 1;
  std::deque<bool> retained;  // oldest first; true: a real descriptor is retained
  uint64_t pending_acks = 0;
  uint64_t total_sent = 0;
  uint64_t total_acked = 0;
  std::deque<MFrame> inbox;  // frames on the wire towards this peer, FIFO
};

struct Model {
  std::array<MPeer, 2> peers;
  bool hostile = false;  // a forged ack or count was accepted: conservation no longer holds
};

std::ostream& operator<<(std::ostream& os, const Model& m) {
  for (int p = 0; p < 2; ++p) {
    const MPeer& x = m.peers[p];
    os << "P" << p << "{window=" << x.window << " retained=" << x.retained.size()
       << " pending_acks=" << x.pending_acks << " sent=" << x.total_sent
       << " acked=" << x.total_acked << " inbox=[";
    for (const MFrame& f : x.inbox) os << " fds" << f.fd_count << "/ack" << f.ack_count;
    os << " ]} ";
  }
  return os << "hostile=" << m.hostile;
}

[[noreturn]] void FailWith(const Model& m, const std::string& why) {
  std::ostringstream os;
  os << why << "\n  model: " << m;
  RC_FAIL(os.str());
  __builtin_unreachable();
}

struct Sut {
  std::vector<FdAckState> peers;
  size_t baseline_fds = 0;
  // Harness bookkeeping beside the model's queues: the numbers of the
  // descriptors each peer sent, oldest first (-1: sent without retaining).
  std::array<std::deque<int>, 2> fd_numbers;
  // Descriptor numbers the last step must have closed (checked before
  // anything else can reuse the numbers).
  std::vector<int> just_released;

  void Release(int peer, uint32_t count) {
    for (uint32_t i = 0; i < count && !fd_numbers[peer].empty(); ++i) {
      if (fd_numbers[peer].front() >= 0) just_released.push_back(fd_numbers[peer].front());
      fd_numbers[peer].pop_front();
    }
  }
};

bool IsOpen(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

size_t ModelRetainedReal(const Model& m) {
  size_t n = 0;
  for (const MPeer& p : m.peers) {
    for (bool real : p.retained) n += real ? 1 : 0;
  }
  return n;
}

void CheckInvariants(const Model& m, Sut& s) {
  for (int p = 0; p < 2; ++p) {
    const MPeer& mp = m.peers[p];
    const FdAckState& sp = s.peers[p];
    const std::string who = "P" + std::to_string(p);
    if (sp.retained() != mp.retained.size()) {
      FailWith(m, who + " retains " + std::to_string(sp.retained()));
    }
    if (sp.pending_acks() != mp.pending_acks) {
      FailWith(m, who + " pending_acks " + std::to_string(sp.pending_acks()));
    }
    if (sp.total_sent() != mp.total_sent || sp.total_acked() != mp.total_acked) {
      FailWith(m, who + " totals " + std::to_string(sp.total_sent()) + "/" +
                      std::to_string(sp.total_acked()));
    }
    RC_ASSERT(sp.total_sent() - sp.total_acked() == sp.retained());
    for (size_t n : {size_t{0}, size_t{1}, size_t{2}, size_t{mp.window}, size_t{mp.window} + 1}) {
      const bool fits = n <= mp.window && mp.retained.size() + n <= mp.window;
      if (sp.CanSend(n) != fits) FailWith(m, who + " CanSend(" + std::to_string(n) + ") wrong");
    }
    if (mp.retained.size() > mp.window) FailWith(m, who + " retains beyond its window");
    RC_ASSERT(s.fd_numbers[p].size() == mp.retained.size());
    for (int fd : s.fd_numbers[p]) {
      if (fd >= 0 && !IsOpen(fd)) FailWith(m, who + " closed retained descriptor " + std::to_string(fd));
    }
  }
  for (int fd : s.just_released) {
    if (IsOpen(fd)) FailWith(m, "acknowledged descriptor " + std::to_string(fd) + " still open");
  }
  s.just_released.clear();
  const size_t open_now = moat::testing::OpenFdCount();
  if (open_now != s.baseline_fds + ModelRetainedReal(m)) {
    FailWith(m, "process holds " + std::to_string(open_now) + " descriptors, expected " +
                    std::to_string(s.baseline_fds) + " + " + std::to_string(ModelRetainedReal(m)));
  }
  if (!m.hostile) {
    for (int p = 0; p < 2; ++p) {
      const MPeer& sender = m.peers[p];
      const MPeer& receiver = m.peers[1 - p];
      uint64_t in_flight = receiver.pending_acks;
      for (const MFrame& f : receiver.inbox) in_flight += f.fd_count;
      for (const MFrame& f : sender.inbox) in_flight += f.ack_count;
      if (in_flight != sender.retained.size()) {
        FailWith(m, "P" + std::to_string(p) + " retains " + std::to_string(sender.retained.size()) +
                        " but " + std::to_string(in_flight) + " are accounted for in flight");
      }
    }
  }
}

using Cmd = rc::state::Command<Model, Sut>;

// Peer `from` sends a frame with n descriptors (if they fit), piggybacking its
// pending acks or not.
struct Send : Cmd {
  int from;
  uint32_t n;
  bool piggyback;
  bool retain;
  explicit Send(const Model&)
      : from(*rc::gen::inRange(0, 2)),
        n(*rc::gen::inRange<uint32_t>(0, 5)),
        piggyback(*rc::gen::arbitrary<bool>()),
        retain(*rc::gen::weightedOneOf<bool>({{5, rc::gen::just(true)}, {1, rc::gen::just(false)}})) {}
  bool Fits(const Model& m) const {
    const MPeer& p = m.peers[from];
    return n <= p.window && p.retained.size() + n <= p.window;
  }
  void apply(Model& m) const override {
    if (!Fits(m)) return;  // the sender waits for acks
    MPeer& p = m.peers[from];
    MFrame f{n, 0};
    if (piggyback) f.ack_count = static_cast<uint32_t>(std::exchange(p.pending_acks, 0));
    for (uint32_t i = 0; i < n; ++i) p.retained.push_back(retain);
    p.total_sent += n;
    m.peers[1 - from].inbox.push_back(f);
  }
  void run(const Model& m, Sut& s) const override {
    Model next = m;
    apply(next);
    FdAckState& sp = s.peers[from];
    if (sp.CanSend(n) != Fits(m)) FailWith(m, "CanSend disagrees with the model");
    if (Fits(m)) {
      if (retain) {
        std::vector<UniqueFd> fds;
        for (uint32_t i = 0; i < n; ++i) {
          fds.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
          RC_ASSERT(fds.back().valid());
          s.fd_numbers[from].push_back(fds.back().get());
        }
        sp.OnSent(std::move(fds));
      } else {
        for (uint32_t i = 0; i < n; ++i) s.fd_numbers[from].push_back(-1);
        sp.OnSentWithoutRetaining(n);
      }
      if (piggyback) {
        const uint32_t acks = sp.TakePendingAcks();
        RC_ASSERT(acks == next.peers[1 - from].inbox.back().ack_count);
      }
    }
    CheckInvariants(next, s);
  }
  void show(std::ostream& os) const override {
    os << "Send(P" << from << ", fds=" << n << (piggyback ? ", piggyback" : "")
       << (retain ? "" : ", not retained") << ")";
  }
};

// Peer `to` processes the next frame on its wire: the ack first, then the
// descriptors (what the transport does per frame header).
struct Deliver : Cmd {
  int to;
  explicit Deliver(const Model&) : to(*rc::gen::inRange(0, 2)) {}
  void checkPreconditions(const Model& m) const override { RC_PRE(!m.peers[to].inbox.empty()); }
  void apply(Model& m) const override {
    const MFrame f = m.peers[to].inbox.front();
    m.peers[to].inbox.pop_front();
    MPeer& p = m.peers[to];
    // An honest frame never acks more than is outstanding (unless a hostile
    // ack already released some: then the model rejects like the SUT must).
    if (f.ack_count > p.retained.size()) return;
    for (uint32_t i = 0; i < f.ack_count; ++i) p.retained.pop_front();
    p.total_acked += f.ack_count;
    // After a hostile overflow attempt the counter may be near u32 max.
    if (p.pending_acks + f.fd_count <= UINT32_MAX) p.pending_acks += f.fd_count;
  }
  void run(const Model& m, Sut& s) const override {
    Model next = m;
    apply(next);
    const MFrame f = m.peers[to].inbox.front();
    const bool ack_ok = f.ack_count <= m.peers[to].retained.size();
    Status ack = s.peers[to].OnAckReceived(f.ack_count);
    if (ack.ok() != ack_ok) FailWith(m, "ack of " + std::to_string(f.ack_count) + " mishandled");
    if (ack.ok()) {
      s.Release(to, f.ack_count);
      const bool fds_ok = m.peers[to].pending_acks + f.fd_count <= UINT32_MAX;
      Status fds = s.peers[to].OnFdsReceived(f.fd_count);
      if (fds.ok() != fds_ok) FailWith(m, "descriptor count " + std::to_string(f.fd_count) + " mishandled");
    }
    CheckInvariants(next, s);
  }
  void show(std::ostream& os) const override { os << "Deliver(to P" << to << ")"; }
};

// Peer `from` sends a standalone FD_ACK with everything it owes.
struct StandaloneAck : Cmd {
  int from;
  explicit StandaloneAck(const Model&) : from(*rc::gen::inRange(0, 2)) {}
  void checkPreconditions(const Model& m) const override {
    RC_PRE(m.peers[from].pending_acks > 0);
  }
  void apply(Model& m) const override {
    MFrame f{0, static_cast<uint32_t>(std::exchange(m.peers[from].pending_acks, 0))};
    m.peers[1 - from].inbox.push_back(f);
  }
  void run(const Model& m, Sut& s) const override {
    const uint32_t got = s.peers[from].TakePendingAcks();
    if (got != m.peers[from].pending_acks) FailWith(m, "TakePendingAcks returned " + std::to_string(got));
    RC_ASSERT(s.peers[from].pending_acks() == 0u);
    Model next = m;
    apply(next);
    CheckInvariants(next, s);
  }
  void show(std::ostream& os) const override { os << "StandaloneAck(from P" << from << ")"; }
};

// A compromised peer sends an ack count of its choosing to `to`.
struct HostileAck : Cmd {
  int to;
  int kind;  // 0: outstanding+1, 1: UINT32_MAX, 2: exactly outstanding, 3: random small, 4: 0
  uint32_t small;
  explicit HostileAck(const Model&)
      : to(*rc::gen::inRange(0, 2)),
        kind(*rc::gen::inRange(0, 5)),
        small(*rc::gen::inRange<uint32_t>(0, 10)) {}
  uint32_t Count(const Model& m) const {
    const uint32_t out = static_cast<uint32_t>(m.peers[to].retained.size());
    switch (kind) {
      case 0: return out + 1;
      case 1: return UINT32_MAX;
      case 2: return out;
      case 3: return small;
      default: return 0;
    }
  }
  void apply(Model& m) const override {
    MPeer& p = m.peers[to];
    const uint32_t count = Count(m);
    if (count > p.retained.size()) return;  // violation: nothing released
    if (count > 0) m.hostile = true;
    for (uint32_t i = 0; i < count; ++i) p.retained.pop_front();
    p.total_acked += count;
  }
  void run(const Model& m, Sut& s) const override {
    const uint32_t count = Count(m);
    const bool accepted = count <= m.peers[to].retained.size();
    Status st = s.peers[to].OnAckReceived(count);
    if (st.ok() != accepted) {
      FailWith(m, "ack of " + std::to_string(count) + (st.ok() ? " accepted" : " rejected") +
                      ", model says the opposite");
    }
    if (!st.ok() && st.error().code() != ErrorCode::kProtocolViolation) {
      FailWith(m, "violating ack gave " + st.error().ToString());
    }
    if (st.ok()) s.Release(to, count);
    Model next = m;
    apply(next);
    CheckInvariants(next, s);
  }
  void show(std::ostream& os) const override {
    static const char* kKinds[] = {"outstanding+1", "UINT32_MAX", "outstanding", "small", "0"};
    os << "HostileAck(to P" << to << ", " << kKinds[kind];
    if (kind == 3) os << "=" << small;
    os << ")";
  }
};

// A compromised peer declares descriptor counts that overflow the u32
// acknowledgement counter of `to`.
struct HostileFdCount : Cmd {
  int to;
  uint32_t count;
  explicit HostileFdCount(const Model&)
      : to(*rc::gen::inRange(0, 2)),
        count(*rc::gen::element<uint32_t>(UINT32_MAX, UINT32_MAX - 1, 0x80000000u, 1u)) {}
  void apply(Model& m) const override {
    MPeer& p = m.peers[to];
    if (p.pending_acks + count > UINT32_MAX) return;  // violation: unchanged
    p.pending_acks += count;
    m.hostile = true;
  }
  void run(const Model& m, Sut& s) const override {
    const bool accepted = m.peers[to].pending_acks + count <= UINT32_MAX;
    Status st = s.peers[to].OnFdsReceived(count);
    if (st.ok() != accepted) {
      FailWith(m, "descriptor count " + std::to_string(count) +
                      (st.ok() ? " accepted" : " rejected") + ", model says the opposite");
    }
    if (!st.ok() && st.error().code() != ErrorCode::kProtocolViolation) {
      FailWith(m, "overflowing count gave " + st.error().ToString());
    }
    Model next = m;
    apply(next);
    CheckInvariants(next, s);
  }
  void show(std::ostream& os) const override {
    os << "HostileFdCount(to P" << to << ", " << count << ")";
  }
};

RC_GTEST_PROP(FdAckModel, RetainedEqualsSentMinusAcknowledged, ()) {
  const size_t baseline = moat::testing::OpenFdCount();
  {
    Model initial;
    initial.peers[0].window = *rc::gen::inRange<uint32_t>(1, 9);
    initial.peers[1].window = *rc::gen::inRange<uint32_t>(1, 9);
    Sut sut;
    sut.peers.emplace_back(initial.peers[0].window);
    sut.peers.emplace_back(initial.peers[1].window);
    sut.baseline_fds = baseline;
    rc::state::check(initial, sut,
                     rc::state::gen::execOneOfWithArgs<Send, Send, Send, Deliver, Deliver, Deliver,
                                                       StandaloneAck, HostileAck, HostileFdCount>());
  }
  // Destroying the states closes everything still retained.
  RC_ASSERT(moat::testing::OpenFdCount() == baseline);
}

}  // namespace
}  // namespace moat::transport
