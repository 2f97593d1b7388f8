// R9-R13, R22, R24, R31 (issue 11): ports against a compromised node.
//
// System under test: core/ports/testing/adversary.h. Honest ports::Nodes 0
// (the broker) and 1 (a child) and an attacker, node 2, which runs a real
// node (so it legitimately holds, reads, writes and forwards pipe ends) and
// forges: it learns every port name it ever sees and sends well-formed events
// of every type with names, control and message sequence numbers and port
// descriptors of its choosing, once or in floods of 40 or 300.
//
// Commands: honest pipes (on one node or across both, the moving end carried
// over the honest bootstrap pipe), send, read, close, read-ack intervals;
// hand an end to the attacker, pass one through it to an honest node, let the
// attacker make a pipe and give an end away, let it write/read/close what it
// holds; deliver events on a chosen link (cross-link reordering), pump; forge;
// lose the attacker.
//
// The model: a pipe is clean while both ends are on honest nodes and its ring
// does not pass the attacker (a pipe the attacker held becomes clean again
// once its ends are back on honest nodes, entangled directly; what it held
// from the attacker's tenure is dropped then). Properties, after every step
// (Adversary::CheckStep) and at the end (Adversary::Finish):
//   blame      no honest node is blamed for a protocol violation;
//   integrity  a clean pipe delivers exactly what its ends sent, in order,
//              and is never closed, merged or moved by the attacker; no honest
//              end is ever taken from its holder;
//   closure    a port told "peer closed after L" holds no message after L;
//   buffered / retired / parked / ooo-bytes
//              per-port memory stays under limits/ (out-of-order bytes under
//              the harness's budget until limits/ has one);
//   liveness   after the attacker is lost and the network is quiet, clean
//              pipes still carry messages both ways and every other honest
//              end reports PEER_CLOSED;
//   leak       once every honest end is closed no port is left.
//
// Known-open checks (issue 11 classes not fixed on this branch) are listed in
// KnownOpenChecks(); ClosedClasses runs everything else, and one DISABLED_
// test per open check shows its counterexample:
//   bazel test //property_tests:ports_adversary_model_test \
//     --test_arg=--gtest_also_run_disabled_tests --test_output=all
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>

#include <cstdint>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "core/ports/testing/adversary.h"

namespace moat::ports::testing {
namespace {

struct Model {};  // the specification lives in Adversary's bookkeeping

struct Step : rc::state::Command<Model, Adversary> {
  Op op;

  Step() {
    op.kind = *rc::gen::weightedElement<OpKind>({
        {3, OpKind::kCreatePipe},
        {6, OpKind::kSend},
        {5, OpKind::kRead},
        {2, OpKind::kClose},
        {3, OpKind::kGiveToAttacker},
        {3, OpKind::kPassThrough},
        {2, OpKind::kAttackerReturn},
        {2, OpKind::kAttackerPipe},
        {3, OpKind::kAttackerUse},
        {5, OpKind::kDeliver},
        {2, OpKind::kPump},
        {1, OpKind::kAckInterval},
        {16, OpKind::kForge},
        {1, OpKind::kLoseAttacker},
    });
    op.a = *rc::gen::inRange<uint32_t>(0, 32);
    op.b = *rc::gen::inRange<uint32_t>(0, 32);
    if (op.kind == OpKind::kForge) {
      ForgeSpec& f = op.f;
      f.type = *rc::gen::inRange<uint32_t>(0, kMaxEventType + 1);
      f.to = *rc::gen::inRange<uint32_t>(0, 2);
      f.port = *rc::gen::inRange<uint32_t>(0, 64);
      f.from = *rc::gen::inRange<uint32_t>(0, 64);
      f.cseq = *rc::gen::weightedElement<uint32_t>({{8, 0}, {3, 1}, {1, 2}, {1, 3}, {1, 4}});
      f.seq = *rc::gen::inRange<uint32_t>(0, 9);
      f.len = *rc::gen::weightedElement<uint32_t>({{4, 0}, {1, 1}, {1, 2}});
      f.nports = *rc::gen::inRange<uint32_t>(0, 3);
      f.node_a = *rc::gen::inRange<uint32_t>(0, 4);
      f.port_a = *rc::gen::inRange<uint32_t>(0, 64);
      f.node_b = *rc::gen::inRange<uint32_t>(0, 4);
      f.port_b = *rc::gen::inRange<uint32_t>(0, 64);
      f.seq2 = *rc::gen::inRange<uint32_t>(0, 48);
      f.flags = *rc::gen::weightedElement<uint32_t>({{4, 0}, {2, 1}, {1, 2}, {1, 3}});
      f.repeat = *rc::gen::weightedElement<uint32_t>({{6, 0}, {2, 2}, {2, 3}});
    }
  }

  void apply(Model&) const override {}
  void run(const Model&, Adversary& adv) const override {
    adv.Apply(op);
    if (auto failure = adv.CheckStep()) RC_FAIL(*failure + "\n  state: " + adv.Describe());
  }
  void show(std::ostream& os) const override { os << op; }
};

// stop_on_disabled: see Adversary::Options.
bool RunModel(const std::set<Check>& enabled, bool stop_on_disabled = true) {
  return rc::check([enabled, stop_on_disabled] {
    Model model;
    auto commands = *rc::state::gen::commands(model, rc::state::gen::execOneOfWithArgs<Step>());
    Adversary adv(Adversary::Options{enabled, stop_on_disabled});
    rc::state::runAll(commands, model, adv);
    if (auto failure = adv.Finish()) RC_FAIL(*failure + "\n  state: " + adv.Describe());
  });
}

// Every check whose issue-11 class is fixed (and MOAT_ADVERSARY_CHECKS, if set).
TEST(PortsAdversaryModel, ClosedClasses) { EXPECT_TRUE(RunModel(DefaultChecks())); }

// Each known-open check alone (see KnownOpenChecks); rename to drop DISABLED_
// and remove it from KnownOpenChecks once its fix has landed.
TEST(PortsAdversaryModel, DISABLED_Blame) { EXPECT_TRUE(RunModel({Check::kBlame}, false)); }
TEST(PortsAdversaryModel, DISABLED_Integrity) { EXPECT_TRUE(RunModel({Check::kIntegrity}, false)); }
TEST(PortsAdversaryModel, DISABLED_Closure) { EXPECT_TRUE(RunModel({Check::kClosure}, false)); }
TEST(PortsAdversaryModel, DISABLED_Buffered) { EXPECT_TRUE(RunModel({Check::kBuffered}, false)); }
TEST(PortsAdversaryModel, DISABLED_Retired) { EXPECT_TRUE(RunModel({Check::kRetired}, false)); }
TEST(PortsAdversaryModel, DISABLED_Parked) { EXPECT_TRUE(RunModel({Check::kParked}, false)); }
TEST(PortsAdversaryModel, DISABLED_OooBytes) { EXPECT_TRUE(RunModel({Check::kOooBytes}, false)); }
TEST(PortsAdversaryModel, DISABLED_Liveness) { EXPECT_TRUE(RunModel({Check::kLiveness}, false)); }
TEST(PortsAdversaryModel, DISABLED_Leak) { EXPECT_TRUE(RunModel({Check::kLeak}, false)); }

// The harness itself: without forgeries nothing may fail (else the checks
// would be reporting the harness, not the attacker).
TEST(PortsAdversaryModel, HonestAttackerPassesEveryCheck) {
  std::set<Check> all;
  for (uint32_t i = 0; i < kCheckCount; ++i) all.insert(static_cast<Check>(i));
  EXPECT_TRUE(rc::check([all] {
    const auto kind = rc::gen::element(OpKind::kCreatePipe, OpKind::kSend, OpKind::kRead,
                                       OpKind::kClose, OpKind::kGiveToAttacker,
                                       OpKind::kPassThrough, OpKind::kAttackerReturn,
                                       OpKind::kAttackerPipe, OpKind::kAttackerUse,
                                       OpKind::kDeliver, OpKind::kPump, OpKind::kAckInterval,
                                       OpKind::kLoseAttacker);
    const auto ops = *rc::gen::container<std::vector<std::tuple<OpKind, uint32_t, uint32_t>>>(
        rc::gen::tuple(kind, rc::gen::inRange<uint32_t>(0, 32),
                       rc::gen::inRange<uint32_t>(0, 32)));
    Adversary adv(Adversary::Options{all});
    for (const auto& [k, a, b] : ops) {
      Op op;
      op.kind = k;
      op.a = a;
      op.b = b;
      adv.Apply(op);
      if (auto failure = adv.CheckStep()) {
        std::ostringstream os;
        os << op;
        RC_FAIL(*failure + " after " + os.str());
      }
    }
    if (auto failure = adv.Finish()) RC_FAIL(*failure);
  }));
}

}  // namespace
}  // namespace moat::ports::testing
