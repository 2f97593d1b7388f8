// MessagePipeEndpoint: one end of a message pipe, over a port of the
// process's ports::Node (moat's MessagePipeDispatcher).
//
// It adds to the bare port: the transit state machine (transit.h), quotas
// (quota.h), signals and trap notification (signals.h, trap.h), and the
// handle table inside each message (endpoint_serialization.h), so endpoints
// attached to a message travel as ports and arrive as new endpoints.
//
//   auto [a, b] = ...;                                  // see Core::CreateMessagePipe
//   MOAT_TRY(a->Write(bytes, /*handles=*/{}, /*fds=*/{}));
//   MessageSizes need;
//   auto m = b->Read(nullptr, &need, is_bound);          // kShouldWait if empty
//
// Threading and locks. Each endpoint has one lock, mu_. Lock order:
//   Core::table_mu_ (leaf) | Trap::mu_ -> MessagePipeEndpoint::mu_ -> ports locks.
// Calls into ports that may call back into the NodeDelegate (send, get
// message, close, merge, set ack interval) are made WITHOUT mu_ held: a
// local delivery synchronously reports the peer's status change, which takes
// the peer's mu_ and may run trap handlers, and handlers must never run under
// a lock. Only Node::GetStatus (which never calls out) is called under mu_.
// Watchers are notified after mu_ is released (Publish).
//
// A hostile message (bad handle table or endpoint record, R10) is rejected:
// Read returns the precise Error, every port and descriptor the message
// carried is closed, and the pipe is disconnected (this end's port is closed,
// so the peer observes PEER_CLOSED; this end then reports only PEER_CLOSED).
#ifndef MOAT_CORE_SYSTEM_MESSAGE_PIPE_H_
#define MOAT_CORE_SYSTEM_MESSAGE_PIPE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "core/error.h"
#include "core/mutex.h"
#include "core/ports/node.h"
#include "core/ports/port_ref.h"
#include "core/system/endpoint_serialization.h"
#include "core/system/payload_bytes.h"
#include "core/system/quota.h"
#include "core/system/signals.h"
#include "core/system/transit.h"
#include "core/system/trap.h"
#include "core/unique_fd.h"

namespace moat::system {

struct MessageSizes {
  size_t num_bytes = 0;
  size_t num_handles = 0;
  size_t num_fds = 0;
};

// A message taken off a pipe. `ports` are the attached endpoints' ports,
// validated (R10) and not yet owned by any handle: the caller wraps each in a
// new endpoint or closes it.
struct ReceivedMessage {
  PayloadBytes payload;  // in the buffer it arrived in
  std::vector<ports::PortRef> ports;
  std::vector<UniqueFd> fds;
  // The node it arrived from (invalid: sent on this node).
  ports::NodeName source_node;
};

struct QuotaState {
  uint64_t limit = kNoQuotaLimit;
  uint64_t usage = 0;
};

class MessagePipeEndpoint : public Watchable,
                            public std::enable_shared_from_this<MessagePipeEndpoint> {
 public:
  MessagePipeEndpoint(ports::Node* node, ports::PortRef port);
  ~MessagePipeEndpoint() override;

  const ports::PortRef& port() const { return port_; }

  // Sends payload + attached endpoints + descriptors. The attached endpoints
  // go through BeginTransit (kBusy if one is in transit, being read, or
  // appears twice; kInvalidArgument if one is this endpoint) and, once the
  // message is handed to ports, CompleteTransit; on failure before that,
  // CancelTransit. `fds` are consumed in every case (closed on failure).
  // kPeerClosed: the peer is gone; the message and its attachments were
  // discarded (the attachments' handles are transferred into nothing).
  // Over-limit sizes are a programmer error (MOAT_ASSERT).
  Status Write(std::span<const uint8_t> payload,
               std::span<const std::shared_ptr<MessagePipeEndpoint>> handles,
               std::vector<UniqueFd> fds) ABSL_LOCKS_EXCLUDED(mu_);

  // Whether a Write now would wait (ports::PortStatus::send_would_wait: the
  // peer is on another node and its link is unconfirmed, its unread-bytes
  // window is full, or the transport to it is above its high-water mark).
  // WRITABLE is unsatisfied while this is true.
  Result<bool> WouldWaitToWrite() ABSL_LOCKS_EXCLUDED(mu_);

  // Takes the next message. `sizes` (if not null) receives its sizes. If
  // `capacity` is not null and any size exceeds it: kResourceExhausted and the
  // message stays first in line. kShouldWait: none yet. kPeerClosed: none
  // will ever come. kBusy: in transit or another thread is reading.
  // A hostile message: its Error, and the pipe is disconnected.
  Result<ReceivedMessage> Read(const MessageSizes* capacity, MessageSizes* sizes,
                               const PortBoundCheck& is_bound) ABSL_LOCKS_EXCLUDED(mu_);

  // Closes the endpoint and its port; cancels its triggers. kBusy in transit.
  Status Close() ABSL_LOCKS_EXCLUDED(mu_);

  // Transit (R9), for the writer of a message carrying this endpoint and for
  // fusing. BeginTransit also fails kFailedPrecondition while a message
  // fetched by a too-small Read is waiting here (it would be lost).
  Status BeginTransit() ABSL_LOCKS_EXCLUDED(mu_);
  void CancelTransit() ABSL_LOCKS_EXCLUDED(mu_);
  // The handle is gone, the port lives on elsewhere (not closed).
  void CompleteTransit() ABSL_LOCKS_EXCLUDED(mu_);

  Status SetQuota(QuotaType type, uint64_t limit) ABSL_LOCKS_EXCLUDED(mu_);
  Result<QuotaState> QueryQuota(QuotaType type) ABSL_LOCKS_EXCLUDED(mu_);

  // kBusy in transit, kClosed when closed/transferred.
  Result<HandleSignalsState> QuerySignals() ABSL_LOCKS_EXCLUDED(mu_);

  // The port's status changed (called by Core's NodeDelegate, no lock held).
  void OnPortStatusChanged() ABSL_LOCKS_EXCLUDED(mu_) { Publish(); }

  // Watchable.
  Result<SignalsSnapshot> AddWatcher(std::weak_ptr<Trap> trap, uint64_t trigger_id) override
      ABSL_LOCKS_EXCLUDED(mu_);
  void RemoveWatcher(const Trap* trap, uint64_t trigger_id) override ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // A message fetched by a Read whose buffers were too small.
  struct Pending {
    std::unique_ptr<ports::UserMessage> message;
    ParsedSystemMessage parsed;  // spans into *message
    std::vector<ports::PortRef> ports;
  };

  HandleSignalsState ComputeSignalsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  QuotaUsage UsageLocked(const ports::PortStatus& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Recomputes signals and notifies watchers after releasing mu_.
  void Publish() ABSL_LOCKS_EXCLUDED(mu_);
  // Hands `p` to the reader if `capacity` allows (else kResourceExhausted,
  // `p` untouched); `sizes` gets its sizes either way.
  Status TakeLocked(Pending& p, const MessageSizes* capacity, MessageSizes* sizes,
                    ReceivedMessage* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Validates a fetched message (R10). On error closes what it carries.
  Result<Pending> Accept(std::unique_ptr<ports::UserMessage> message,
                         const PortBoundCheck& is_bound);
  // Rejects a hostile message: closes our port so the peer is cut off.
  void Disconnect(const Error& why) ABSL_LOCKS_EXCLUDED(mu_);
  void ClosePorts(const std::vector<ports::PortName>& names);

  ports::Node* const node_;
  const ports::PortRef port_;

  // Lock order: Trap::mu_ -> mu_ -> ports locks (only GetStatus under mu_).
  Mutex mu_;
  TransitState transit_ ABSL_GUARDED_BY(mu_);
  QuotaSet quotas_ ABSL_GUARDED_BY(mu_);
  WatcherList watchers_ ABSL_GUARDED_BY(mu_);
  uint64_t signals_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  // The state the last publication sent to every watcher (reset when a
  // watcher joins with a state of its own), so repeats are not sent again.
  std::optional<HandleSignalsState> published_ ABSL_GUARDED_BY(mu_);
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<Pending> pending_ ABSL_GUARDED_BY(mu_);
  // Set when a hostile message disconnected the pipe.
  std::optional<std::string> disconnected_ ABSL_GUARDED_BY(mu_);
};

}  // namespace moat::system

#endif  // MOAT_CORE_SYSTEM_MESSAGE_PIPE_H_
