// TransitState: the life cycle of a local handle that may be attached to a
// message and sent away (R9).
//
// Attaching a handle to a message is a two-phase operation: BeginTransit()
// locks the handle against every other use while the message is built; then
// either CompleteTransit() (the message was sent: the handle is gone from this
// process, but the port behind it lives on at the receiver, so the port must
// NOT be closed) or CancelTransit() (sending failed: the handle is usable
// again). A handle is therefore never usable in two places.
//
// States and transitions (every other call fails, see each method):
//
//   kOpen ──BeginTransit──> kInTransit ──CancelTransit──> kOpen
//                           kInTransit ──CompleteTransit─> kTransferred  (terminal)
//   kOpen ──Close─────────> kClosed                                       (terminal)
//
// TransitState has no lock of its own: it is a member of the object it
// describes and is guarded by that object's lock.
//
//   MOAT_TRY(transit_.CheckUsable("write"));   // kBusy while in transit
//   MOAT_TRY(transit_.BeginTransit());
//   if (!sent) transit_.CancelTransit(); else transit_.CompleteTransit();
#ifndef MOAT_CORE_SYSTEM_TRANSIT_H_
#define MOAT_CORE_SYSTEM_TRANSIT_H_

#include <cstdint>
#include <string_view>

#include "core/error.h"

namespace moat::system {

enum class HandleState : uint8_t {
  kOpen,         // usable
  kInTransit,    // attached to a message being sent: every operation is kBusy
  kTransferred,  // sent away; the port moved, the local handle is gone
  kClosed,       // closed locally; the port is closed
};

std::string_view HandleStateName(HandleState state);

class TransitState {
 public:
  HandleState state() const { return state_; }
  bool usable() const { return state_ == HandleState::kOpen; }

  // Ok when open. In transit: kBusy "<operation>: handle is in transit".
  // Closed or transferred: kClosed. `operation` names the refused call.
  Status CheckUsable(std::string_view operation) const;

  // kOpen -> kInTransit. Fails kBusy if already in transit (the same handle
  // attached twice) and kClosed if closed or transferred.
  Status BeginTransit();

  // kInTransit -> kOpen. Calling it in any other state is a bug (MOAT_ASSERT).
  void CancelTransit();

  // kInTransit -> kTransferred. Calling it in any other state is a bug.
  void CompleteTransit();

  // kOpen -> kClosed. kBusy while in transit (the message owns the handle
  // now), kClosed if already closed or transferred.
  Status Close();

 private:
  HandleState state_ = HandleState::kOpen;
};

}  // namespace moat::system

#endif  // MOAT_CORE_SYSTEM_TRANSIT_H_
