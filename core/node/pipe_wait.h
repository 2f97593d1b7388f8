// Blocking helpers over traps for programs that want a simple "wait for the
// next message" on a message pipe (tests, the demo, child processes). They
// create a trap per call; event-driven code should use traps directly.
//
//   MOAT_ASSIGN_OR_RETURN(system::ReadResult m,
//                         ReadMessageBlocking(core, pipe, std::chrono::seconds(5)));
#ifndef MOAT_CORE_NODE_PIPE_WAIT_H_
#define MOAT_CORE_NODE_PIPE_WAIT_H_

#include <chrono>

#include "core/error.h"
#include "core/system/core.h"
#include "core/system/signals.h"

namespace moat::node {

// Waits until `pipe` satisfies any of `signals` or none of them can ever be
// satisfied again, or `timeout` passes (kShouldWait). Returns the state.
Result<system::HandleSignalsState> WaitForSignals(system::Core& core, system::Handle pipe,
                                                  system::SignalSet signals,
                                                  std::chrono::nanoseconds timeout);

// The next message on `pipe`, waiting up to `timeout` (kShouldWait).
// kPeerClosed once no message will ever come.
Result<system::ReadResult> ReadMessageBlocking(system::Core& core, system::Handle pipe,
                                               std::chrono::nanoseconds timeout);

namespace testing {
// Times ReadMessageBlocking has waited for signals (every process, every
// call): a test can tell a wait from a spin without timing anything.
uint64_t ReadMessageBlockingWaits();
}  // namespace testing

}  // namespace moat::node

#endif  // MOAT_CORE_NODE_PIPE_WAIT_H_
