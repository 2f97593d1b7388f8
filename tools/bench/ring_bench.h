// The ring_* information rows of `moat bench`: transport/ring alone (a sealed
// memfd ring per direction, socket doorbell) between two processes, against
// the same raw socketpair baseline as every other row.
//
//   RingPair rings = RingPair::Create();       // before fork
//   child:  RingEchoChild(rings, exchange);     // [[noreturn]]
//   parent: double v = RingTimeExchange(rings, exchange);
#ifndef MOAT_TOOLS_BENCH_RING_BENCH_H_
#define MOAT_TOOLS_BENCH_RING_BENCH_H_

#include "tools/bench/raw_io.h"

namespace moat::tools {

// Setup made before fork: the child inherits the descriptors.
struct RingSetup {
  int to_child_memfd = -1, to_parent_memfd = -1;
  int to_child_bell_parent = -1, to_child_bell_child = -1;
  int to_parent_bell_parent = -1, to_parent_bell_child = -1;
  int spin = 0;  // pause iterations before a reader or writer sleeps
};

// Ring capacity of the bench: 1 MiB per direction.
RingSetup MakeRingSetup(int spin);

[[noreturn]] void RingEchoChild(const RingSetup& setup, const raw::Exchange& exchange);

// us per round trip, or MiB/s for throughput; closes the parent's ends.
double RingTimeExchange(const RingSetup& setup, const raw::Exchange& exchange);

}  // namespace moat::tools

#endif  // MOAT_TOOLS_BENCH_RING_BENCH_H_
