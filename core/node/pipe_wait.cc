#include "core/node/pipe_wait.h"

#include <atomic>
#include <memory>

#include "core/check.h"
#include "core/mutex.h"

namespace moat::node {
namespace {

std::atomic<uint64_t> g_read_waits{0};

struct WaitState {
  Mutex mu;
  CondVar cv;
  bool fired ABSL_GUARDED_BY(mu) = false;
};

}  // namespace

Result<system::HandleSignalsState> WaitForSignals(system::Core& core, system::Handle pipe,
                                                  system::SignalSet signals,
                                                  std::chrono::nanoseconds timeout) {
  auto state = std::make_shared<WaitState>();
  MOAT_ASSIGN_OR_RETURN(system::Handle trap, core.CreateTrap([state](const system::TrapEvent&) {
    MutexLock lock(&state->mu);
    state->fired = true;
    state->cv.SignalAll();
  }));
  Status s = core.AddTrigger(trap, pipe, signals,
                             static_cast<uint32_t>(system::TriggerCondition::kSignalsSatisfied),
                             /*context=*/1);
  if (s.ok()) {
    std::vector<system::TrapEvent> blocking;
    s = core.ArmTrap(trap, &blocking);
    if (s.ok()) {
      const auto deadline = std::chrono::steady_clock::now() + timeout;
      MutexLock lock(&state->mu);
      while (!state->fired) {
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) break;
        state->cv.WaitFor(&state->mu, deadline - now);
      }
      if (!state->fired) s = Error(ErrorCode::kShouldWait, "timed out waiting for signals");
    } else if (s.error().code() == ErrorCode::kFailedPrecondition) {
      s = OkStatus();  // already satisfied, or never satisfiable again
    }
  }
  (void)core.Close(trap);
  MOAT_TRY(s);
  return core.QuerySignals(pipe);
}

Result<system::ReadResult> ReadMessageBlocking(system::Core& core, system::Handle pipe,
                                               std::chrono::nanoseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    Result<system::ReadResult> r = core.ReadMessage(pipe, nullptr, nullptr);
    if (r.ok() || r.error().code() != ErrorCode::kShouldWait) return r;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return Error(ErrorCode::kShouldWait, "timed out waiting for a message");
    // Once the peer is closed, PEER_CLOSED stays satisfied while messages it
    // sent may still be on their way: waiting for it again would return at
    // once and spin. Then only READABLE is waited for (it becomes
    // unsatisfiable, ending the wait, when no message can come any more).
    MOAT_ASSIGN_OR_RETURN(system::HandleSignalsState st, core.QuerySignals(pipe));
    const system::SignalSet wanted = (st.satisfied & system::kSignalPeerClosed) != 0
                                         ? system::kSignalReadable
                                         : system::kSignalReadable | system::kSignalPeerClosed;
    g_read_waits.fetch_add(1, std::memory_order_relaxed);
    MOAT_TRY(WaitForSignals(core, pipe, wanted, deadline - now));
  }
}

namespace testing {
uint64_t ReadMessageBlockingWaits() { return g_read_waits.load(std::memory_order_relaxed); }
}  // namespace testing

}  // namespace moat::node
