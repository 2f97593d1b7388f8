// Property (issue 11; core/ports/testing/adversary.h): honest ports::Nodes
// 0 (broker) and 1 (child) and a compromised node 2 run a fuzzer-chosen
// script of honest pipe operations, hand-overs to and through the attacker,
// cross-link event deliveries and forged events (every type, names the
// attacker learned, chosen control/message sequence numbers, descriptors,
// floods; each forged event round-tripped through the real codec). After
// every step: no honest node is blamed; clean pipes deliver exactly what
// their ends sent and are never closed, merged or moved by the attacker; a
// closed peer's last sequence number is respected; per-port buffered,
// retired, parked and out-of-order memory stays bounded. At the end, with
// the attacker lost: every honest end works or reports PEER_CLOSED, and once
// all are closed no port is left.
//
// Checks whose fix has not landed are skipped (KnownOpenChecks());
// MOAT_ADVERSARY_CHECKS=all (or a comma list: blame,integrity,closure,
// buffered,retired,parked,ooo-bytes,liveness,leak) enables them, e.g. to
// measure how fast each open class is found.
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>

#include "core/ports/testing/adversary.h"
#include "fuzz/fuzz_harness.h"

namespace {

using moat::ports::testing::Adversary;
using moat::ports::testing::ForgeSpec;
using moat::ports::testing::Op;
using moat::ports::testing::OpKind;

constexpr int kMaxSteps = 48;

// One byte per choice (read from the end, see moat::fuzz::Input): kind, a, b,
// and for a forgery 15 more (ForgeSpec's fields in declaration order).
Op ReadOp(moat::fuzz::Input& in) {
  Op op;
  op.kind = static_cast<OpKind>(in.Integral<uint8_t>() % moat::ports::testing::kOpKindCount);
  op.a = in.Integral<uint8_t>();
  op.b = in.Integral<uint8_t>();
  if (op.kind == OpKind::kForge) {
    ForgeSpec& f = op.f;
    for (uint32_t* field : {&f.type, &f.to, &f.port, &f.from, &f.cseq, &f.seq, &f.len, &f.nports,
                            &f.node_a, &f.port_a, &f.node_b, &f.port_b, &f.seq2, &f.flags,
                            &f.repeat}) {
      *field = in.Integral<uint8_t>();
    }
  }
  return op;
}

std::string Report(const std::string& failure, const std::string& trail) {
  return failure + "\n  steps:" + trail;
}

}  // namespace

MOAT_FUZZ_COVERS("ports_event")
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moat::fuzz::Input in(data, size);
  const bool selected = std::getenv("MOAT_ADVERSARY_CHECKS") != nullptr;
  Adversary adv(Adversary::Options{moat::ports::testing::DefaultChecks(),
                                   /*stop_on_disabled=*/!selected});
  std::ostringstream trail;
  for (int step = 0; step < kMaxSteps && !in.empty() && !adv.stopped(); ++step) {
    const Op op = ReadOp(in);
    trail << "\n    " << op;
    adv.Apply(op);
    if (auto failure = adv.CheckStep()) {
      MOAT_FUZZ_CHECK(false, Report(*failure, trail.str()).c_str());
    }
  }
  if (auto failure = adv.Finish()) MOAT_FUZZ_CHECK(false, Report(*failure, trail.str()).c_str());
  return 0;
}
