// Seeds for ports_adversary_fuzzer: op scripts in its byte layout (one byte
// per choice, read from the end: see fuzz/ports_adversary_fuzzer.cc ReadOp).
// Generic scripts, not attacks: honest traffic, hand-overs to and through the
// attacker, and one plausible forgery of every event type.
#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "corpus/seed_registry.h"

namespace moat::ports::testing {
namespace {

// OpKind values (core/ports/testing/adversary.h).
enum : uint8_t {
  kCreatePipe = 0, kSend, kRead, kClose, kGiveToAttacker, kPassThrough, kAttackerReturn,
  kAttackerPipe, kAttackerUse, kDeliver, kPump, kAckInterval, kForge, kLoseAttacker,
};

class Script {
 public:
  Script& Op(uint8_t kind, uint8_t a = 0, uint8_t b = 0) {
    bytes_.insert(bytes_.end(), {kind, a, b});
    return *this;
  }
  // ForgeSpec fields in order: type, to, port, from, cseq, seq, len, nports,
  // node_a, port_a, node_b, port_b, seq2, flags, repeat.
  Script& Forge(std::initializer_list<uint8_t> spec) {
    Op(kForge);
    bytes_.insert(bytes_.end(), spec);
    for (size_t i = spec.size(); i < 15; ++i) bytes_.push_back(0);
    return *this;
  }
  std::vector<uint8_t> Bytes() const {
    std::vector<uint8_t> out = bytes_;
    std::reverse(out.begin(), out.end());  // Input reads choices from the end
    return out;
  }

 private:
  std::vector<uint8_t> bytes_;
};

void Seeds(corpus::SeedSink& sink) {
  sink.Add("honest_traffic", Script()
                                 .Op(kCreatePipe, 0, 1)
                                 .Op(kCreatePipe, 1, 1)
                                 .Op(kSend, 3, 0)
                                 .Op(kSend, 4, 1)
                                 .Op(kDeliver, 0, 3)
                                 .Op(kRead, 4)
                                 .Op(kRead, 3)
                                 .Op(kClose, 5)
                                 .Op(kPump)
                                 .Bytes());
  sink.Add("hand_overs", Script()
                             .Op(kCreatePipe, 0, 0)
                             .Op(kPassThrough, 3, 1)
                             .Op(kSend, 3)
                             .Op(kGiveToAttacker, 4)
                             .Op(kAttackerPipe, 1)
                             .Op(kAttackerUse, 4, 0)
                             .Op(kAttackerUse, 4, 1)
                             .Op(kAttackerReturn, 3, 0)
                             .Op(kPump)
                             .Bytes());
  Script each;
  each.Op(kAttackerPipe, 1).Op(kAttackerUse, 2, 0).Op(kPump);
  for (uint8_t type = 0; type <= 8; ++type) {
    each.Forge({type, 1, 0, 0, /*cseq own link*/ 0, /*seq*/ 1, 0, 1, 2, 0, 0, 0});
    each.Op(kDeliver, 0, 1);
  }
  sink.Add("forge_every_type", each.Bytes());
  sink.Add("flood", Script()
                        .Op(kAttackerPipe, 0)
                        .Forge({/*read ack request*/ 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                /*x40*/ 2})
                        .Op(kPump)
                        .Op(kLoseAttacker)
                        .Bytes());
}
MOAT_REGISTER_SEEDS(ports_adversary_fuzzer, Seeds);

}  // namespace
}  // namespace moat::ports::testing
