// R29/R9: stateful model of the transit state machine (core/system/transit.h).
//
// The system under test is a set of moat::system::TransitState objects, one
// per local handle, spread over three "places" (processes). Handles are
// attached to messages under construction (BeginTransit), and each message is
// then either sent (CompleteTransit on every attached handle, and the port
// reappears as a fresh handle at the destination) or aborted (CancelTransit).
// Several messages are built at once and their steps interleave with ordinary
// operations and closes on any handle: the interleavings stand for several
// threads' worth of call sequences on one endpoint lock.
//
// The model is a deliberately naive table of handle states. After every step:
//   * every handle's SUT state equals the model's;
//   * every operation's result (ok / kBusy / kClosed, and the operation name
//     in the reason) equals the model's;
//   * a port is usable in at most one place at a time, and a port that was
//     never closed is reachable (open or in transit) in exactly one place.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>

#include <array>
#include <map>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/system/transit.h"

namespace moat::system {
namespace {

constexpr int kPlaces = 3;
constexpr int kMessages = 3;
constexpr size_t kMaxHandles = 14;

enum class MState { kOpen, kInTransit, kTransferred, kClosed };

const char* Name(MState s) {
  switch (s) {
    case MState::kOpen: return "open";
    case MState::kInTransit: return "in-transit";
    case MState::kTransferred: return "transferred";
    case MState::kClosed: return "closed";
  }
  return "?";
}

HandleState ToReal(MState s) {
  switch (s) {
    case MState::kOpen: return HandleState::kOpen;
    case MState::kInTransit: return HandleState::kInTransit;
    case MState::kTransferred: return HandleState::kTransferred;
    case MState::kClosed: return HandleState::kClosed;
  }
  return HandleState::kClosed;
}

struct MHandle {
  int port = 0;
  int place = 0;
  MState state = MState::kOpen;
};

struct Model {
  std::vector<MHandle> handles;
  // Handles attached to each message under construction, in attach order.
  std::array<std::vector<size_t>, kMessages> messages;
  int next_port = 0;
};

std::ostream& operator<<(std::ostream& os, const Model& m) {
  os << "handles{";
  for (size_t i = 0; i < m.handles.size(); ++i) {
    os << " h" << i << "=port" << m.handles[i].port << "@" << m.handles[i].place << ":"
       << Name(m.handles[i].state);
  }
  os << " } messages{";
  for (int i = 0; i < kMessages; ++i) {
    os << " m" << i << "=[";
    for (size_t h : m.messages[i]) os << " h" << h;
    os << " ]";
  }
  return os << " }";
}

// Fails the property with the model state appended, so a shrunk
// counterexample shows where the handles were.
[[noreturn]] void FailWith(const Model& m, const std::string& why) {
  std::ostringstream os;
  os << why << "\n  model after the step: " << m;
  RC_FAIL(os.str());
  __builtin_unreachable();
}

struct Sut {
  std::vector<TransitState> handles;
  std::vector<int> port_of;  // harness bookkeeping, mirrors the model
};

// Expected result of CheckUsable / BeginTransit / Close in a given state.
std::optional<ErrorCode> ExpectedUsable(MState s) {
  switch (s) {
    case MState::kOpen: return std::nullopt;
    case MState::kInTransit: return ErrorCode::kBusy;
    case MState::kTransferred:
    case MState::kClosed: return ErrorCode::kClosed;
  }
  return ErrorCode::kClosed;
}

std::string CodeName(std::optional<ErrorCode> c) {
  return c ? std::string(ErrorCodeName(*c)) : std::string("OK");
}

void CheckStatus(const Status& s, std::optional<ErrorCode> expected, const std::string& what) {
  std::optional<ErrorCode> got;
  if (!s.ok()) got = s.error().code();
  if (got != expected) {
    RC_FAIL(what + " returned " + CodeName(got) + " but the model expects " + CodeName(expected) +
            (s.ok() ? std::string() : " (" + s.error().ToString() + ")"));
  }
}

// Checks the SUT against the model and the global "one usable place" rule.
void CheckInvariants(const Model& m, const Sut& sut) {
  RC_ASSERT(sut.handles.size() == m.handles.size());
  std::map<int, int> usable_per_port;
  std::map<int, int> alive_per_port;  // open or in transit
  std::map<int, bool> closed_port;
  for (size_t i = 0; i < m.handles.size(); ++i) {
    const HandleState real = sut.handles[i].state();
    if (real != ToReal(m.handles[i].state)) {
      FailWith(m, "h" + std::to_string(i) + " is " + std::string(HandleStateName(real)) +
                      " but the model says " + Name(m.handles[i].state));
    }
    RC_ASSERT(sut.handles[i].usable() == (m.handles[i].state == MState::kOpen));
    const int port = sut.port_of[i];
    if (sut.handles[i].usable()) ++usable_per_port[port];
    if (real == HandleState::kOpen || real == HandleState::kInTransit) ++alive_per_port[port];
    if (real == HandleState::kClosed) closed_port[port] = true;
  }
  for (const auto& [port, n] : usable_per_port) {
    if (n > 1) {
      FailWith(m, "port" + std::to_string(port) + " usable in " + std::to_string(n) + " places");
    }
  }
  for (int port = 0; port < m.next_port; ++port) {
    const int alive = alive_per_port[port];
    if (closed_port[port]) {
      RC_ASSERT(alive == 0);
    } else if (alive != 1) {
      FailWith(m, "port" + std::to_string(port) + " reachable in " + std::to_string(alive) +
                      " places (expected exactly 1)");
    }
  }
}

using Cmd = rc::state::Command<Model, Sut>;

// A new message pipe end appears at `place` (CreateMessagePipe).
struct NewHandle : Cmd {
  int place;
  explicit NewHandle(const Model&) : place(*rc::gen::inRange(0, kPlaces)) {}
  void checkPreconditions(const Model& m) const override {
    RC_PRE(m.handles.size() < kMaxHandles);
  }
  void apply(Model& m) const override {
    m.handles.push_back({m.next_port++, place, MState::kOpen});
  }
  void run(const Model& m, Sut& sut) const override {
    sut.handles.emplace_back();
    sut.port_of.push_back(m.next_port);
    Model next = m;
    apply(next);
    CheckInvariants(next, sut);
  }
  void show(std::ostream& os) const override { os << "NewHandle(place=" << place << ")"; }
};

size_t PickHandle(const Model& m) {
  RC_PRE(!m.handles.empty());
  return *rc::gen::inRange<size_t>(0, m.handles.size());
}

// Attach handle h to message msg: BeginTransit.
struct Attach : Cmd {
  int msg;
  size_t h;
  explicit Attach(const Model& m)
      : msg(*rc::gen::inRange(0, kMessages)), h(PickHandle(m)) {}
  void checkPreconditions(const Model& m) const override { RC_PRE(h < m.handles.size()); }
  void apply(Model& m) const override {
    if (m.handles[h].state == MState::kOpen) {
      m.handles[h].state = MState::kInTransit;
      m.messages[msg].push_back(h);
    }
  }
  void run(const Model& m, Sut& sut) const override {
    Status s = sut.handles[h].BeginTransit();
    CheckStatus(s, ExpectedUsable(m.handles[h].state), "BeginTransit");
    Model next = m;
    apply(next);
    CheckInvariants(next, sut);
  }
  void show(std::ostream& os) const override { os << "Attach(m" << msg << ", h" << h << ")"; }
};

// The message was sent: every attached handle completes its transit and the
// port reappears as a new handle at the destination.
struct Send : Cmd {
  int msg;
  int dest;
  explicit Send(const Model&)
      : msg(*rc::gen::inRange(0, kMessages)), dest(*rc::gen::inRange(0, kPlaces)) {}
  void checkPreconditions(const Model& m) const override {
    RC_PRE(!m.messages[msg].empty());
  }
  void apply(Model& m) const override {
    for (size_t h : m.messages[msg]) {
      m.handles[h].state = MState::kTransferred;
      m.handles.push_back({m.handles[h].port, dest, MState::kOpen});
    }
    m.messages[msg].clear();
  }
  void run(const Model& m, Sut& sut) const override {
    for (size_t h : m.messages[msg]) {
      sut.handles[h].CompleteTransit();
      sut.handles.emplace_back();
      sut.port_of.push_back(sut.port_of[h]);
    }
    Model next = m;
    apply(next);
    CheckInvariants(next, sut);
  }
  void show(std::ostream& os) const override { os << "Send(m" << msg << " -> place " << dest << ")"; }
};

// Sending failed: every attached handle is usable again.
struct Abort : Cmd {
  int msg;
  explicit Abort(const Model&) : msg(*rc::gen::inRange(0, kMessages)) {}
  void checkPreconditions(const Model& m) const override { RC_PRE(!m.messages[msg].empty()); }
  void apply(Model& m) const override {
    for (size_t h : m.messages[msg]) m.handles[h].state = MState::kOpen;
    m.messages[msg].clear();
  }
  void run(const Model& m, Sut& sut) const override {
    for (size_t h : m.messages[msg]) sut.handles[h].CancelTransit();
    Model next = m;
    apply(next);
    CheckInvariants(next, sut);
  }
  void show(std::ostream& os) const override { os << "Abort(m" << msg << ")"; }
};

struct Close : Cmd {
  size_t h;
  explicit Close(const Model& m) : h(PickHandle(m)) {}
  void checkPreconditions(const Model& m) const override { RC_PRE(h < m.handles.size()); }
  void apply(Model& m) const override {
    if (m.handles[h].state == MState::kOpen) m.handles[h].state = MState::kClosed;
  }
  void run(const Model& m, Sut& sut) const override {
    CheckStatus(sut.handles[h].Close(), ExpectedUsable(m.handles[h].state), "Close");
    Model next = m;
    apply(next);
    CheckInvariants(next, sut);
  }
  void show(std::ostream& os) const override { os << "Close(h" << h << ")"; }
};

constexpr std::array<const char*, 6> kOps = {"write", "read", "arm trap", "set quota", "fuse",
                                             "query signals"};

// Any other operation (write, read, ...): CheckUsable.
struct Use : Cmd {
  size_t h;
  size_t op;
  explicit Use(const Model& m)
      : h(PickHandle(m)), op(*rc::gen::inRange<size_t>(0, kOps.size())) {}
  void checkPreconditions(const Model& m) const override { RC_PRE(h < m.handles.size()); }
  void apply(Model&) const override {}
  void run(const Model& m, Sut& sut) const override {
    Status s = sut.handles[h].CheckUsable(kOps[op]);
    CheckStatus(s, ExpectedUsable(m.handles[h].state), kOps[op]);
    if (!s.ok()) {
      // The refusal names the refused operation (R9: a clear "busy" result).
      RC_ASSERT(s.error().reason().find(kOps[op]) == 0);
      if (m.handles[h].state == MState::kInTransit) {
        RC_ASSERT(s.error().reason().find("in transit") != std::string::npos);
      }
    }
    CheckInvariants(m, sut);
  }
  void show(std::ostream& os) const override { os << "Use(h" << h << ", \"" << kOps[op] << "\")"; }
};

RC_GTEST_PROP(TransitModel, EveryInterleavingMatchesTheModel, ()) {
  Model initial;
  Sut sut;
  rc::state::check(initial, sut,
                   rc::state::gen::execOneOfWithArgs<NewHandle, NewHandle, Attach, Attach, Send,
                                                     Abort, Close, Use, Use>());
}

}  // namespace
}  // namespace moat::system
