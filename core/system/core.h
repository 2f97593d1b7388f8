// Core: the process's handle table, owning message-pipe endpoints and traps,
// over one ports::Node per process (moat's equivalent of mojo::core::Core).
//
// Handles are uint64 values (as Mojo's MojoHandle). The low kHandleIndexBits
// bits index a slot, the next bits up to bit 31 hold the slot's generation,
// which changes every time the slot is freed, and the high 32 bits are this
// Core's table tag, random and non-zero, so a handle of another Core (a C++
// NodeController's, a test's, or a value made up) fails kInvalidArgument
// instead of naming an object here (issue 15 item 1: two tables issued the
// same numbers and a handle of one wrote into a pipe of the other). A stale
// handle (closed, transferred, or fused) fails kInvalidArgument instead of
// reaching whatever object now occupies its slot; a slot whose generation
// would wrap is retired for good. Handle 0 is never issued.
//
//   Core core;                                   // or Core::ForProcess()
//   MOAT_ASSIGN_OR_RETURN(auto pipe, core.CreateMessagePipe());
//   MOAT_TRY(core.WriteMessage(pipe.first, bytes, {}, {}));
//   MOAT_ASSIGN_OR_RETURN(ReadResult m, core.ReadMessage(pipe.second, nullptr, nullptr));
//
// Lock order (the whole package):
//   Core::table_mu_        leaf: guards the table only; never held while
//                          calling an endpoint, a trap, or ports.
//   Core::observers_mu_    leaf: port name -> endpoint, for status changes.
//   Trap::mu_ -> MessagePipeEndpoint::mu_ -> ports::Node locks.
// Trap handlers and NodeDelegate callbacks run with none of these held.
#ifndef MOAT_CORE_SYSTEM_CORE_H_
#define MOAT_CORE_SYSTEM_CORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "core/error.h"
#include "core/mutex.h"
#include "core/ports/event.h"
#include "core/ports/name.h"
#include "core/ports/node.h"
#include "core/ports/node_delegate.h"
#include "core/system/message_pipe.h"
#include "core/system/quota.h"
#include "core/system/signals.h"
#include "core/system/trap.h"
#include "core/unique_fd.h"

namespace moat::system {

using Handle = uint64_t;
inline constexpr Handle kInvalidHandle = 0;
// 2^20 - 1 live handles per process; 4095 reuses per slot.
inline constexpr uint32_t kHandleIndexBits = 20;
inline constexpr uint32_t kHandleIndexMask = (1u << kHandleIndexBits) - 1;
inline constexpr uint32_t kMaxHandleGeneration = (1u << (32 - kHandleIndexBits)) - 1;

struct ReadResult {
  // The bytes, in the buffer they were received in (a large message from
  // another node is never copied on its way here).
  PayloadBytes payload;
  std::vector<Handle> handles;
  std::vector<UniqueFd> fds;
  ports::NodeName source_node;  // invalid: sent on this node
};

// What a message-context handle names: where one message came from, so the
// embedder can report it as bad (Mojo's MojoNotifyBadMessage).
struct MessageContext {
  ports::NodeName source_node;  // invalid: sent on this node
};

class Core : public ports::NodeDelegate {
 public:
  // Delivers an event to another node (the transport's job). Without one,
  // this Core has no other nodes and such events are dropped.
  using EventForwarder =
      std::function<void(const ports::NodeName&, std::unique_ptr<ports::Event>)>;

  explicit Core(EventForwarder forwarder = nullptr,
                ports::NodeName name = ports::NodeName::Random(),
                ports::NodeOptions node_options = {});
  ~Core() override;
  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;

  // The process-wide Core, shared by the C API (moat.h) and C++ code: the
  // Core installed by SetForProcess (the node's, once the process joined a
  // broker or became one), else a process-local Core made on first use.
  // Never destroyed.
  static Core& ForProcess();
  // Makes `core` (never destroyed afterwards) the process-wide Core.
  // kFailedPrecondition if one was installed already or the local Core holds
  // handles (they would silently belong to another table). Call it before
  // other threads use ForProcess.
  static Status SetForProcess(Core* core);

  // The random, non-zero tag in the high 32 bits of every handle of this Core.
  uint32_t table_tag() const { return table_tag_; }

  ports::Node& node() { return *node_; }

  Result<std::pair<Handle, Handle>> CreateMessagePipe();

  // See MessagePipeEndpoint::Write. On success (and kPeerClosed) the
  // attached handles are invalidated; `fds` are always consumed.
  Status WriteMessage(Handle pipe, std::span<const uint8_t> payload,
                      std::span<const Handle> handles, std::vector<UniqueFd> fds);

  // WriteMessage that never waits (MOAT_WRITE_MESSAGE_FLAG_NON_BLOCKING). If
  // the write would wait (the pipe is not WRITABLE: see
  // MessagePipeEndpoint::WouldWaitToWrite): kShouldWait and nothing is
  // consumed (`*fds` and the handles stay the caller's). Otherwise as
  // WriteMessage, without waiting for the peer, its node or the transport:
  // such a write may go one message past the bound that made it wait.
  Status TryWriteMessage(Handle pipe, std::span<const uint8_t> payload,
                         std::span<const Handle> handles, std::vector<UniqueFd>* fds);

  // See MessagePipeEndpoint::Read; received endpoints become new handles.
  // With `context`: on success *context is a new handle naming where the
  // message came from, for NotifyBadMessage (or Close). It is reserved before
  // the read, so a full table fails the read instead of losing the message.
  Result<ReadResult> ReadMessage(Handle pipe, const MessageSizes* capacity, MessageSizes* sizes,
                                 Handle* context = nullptr);

  // Consumes a message context: the embedder found that message bad. If it
  // came from another node, that node is reported to the delegate
  // (BadEventFrom: a NodeController disconnects it, so every pipe to it sees
  // PEER_CLOSED) with `reason`. A local message has nobody to cut off: OK.
  Status NotifyBadMessage(Handle context, std::string_view reason);

  // Closes a pipe endpoint or a trap. kBusy if the endpoint is in transit.
  Status Close(Handle handle);

  // R12: a and b (two distinct endpoints, not peers, never used) are
  // invalidated and their peers become one pipe. On failure both stay valid.
  Status FuseMessagePipes(Handle a, Handle b);

  Result<HandleSignalsState> QuerySignals(Handle pipe);
  Status SetQuota(Handle pipe, uint32_t type, uint64_t limit);
  Result<QuotaState> QueryQuota(Handle pipe, uint32_t type);

  Result<Handle> CreateTrap(Trap::Handler handler,
                            Trap::Delivery delivery = Trap::Delivery::kAnyThread);
  // Pollable traps (see Trap::descriptor, Trap::Dispatch).
  Result<int> TrapDescriptor(Handle trap) const;
  Result<size_t> DispatchTrap(Handle trap, size_t max_events);
  Status AddTrigger(Handle trap, Handle handle, SignalSet signals, uint32_t condition,
                    uintptr_t context);
  Status RemoveTrigger(Handle trap, uintptr_t context);
  // See Trap::Arm (at most `max_events` blocking events, rotating).
  Status ArmTrap(Handle trap, std::vector<TrapEvent>* blocking_events,
                 size_t max_events = SIZE_MAX);

  // Bootstrapping pipes across nodes (used by the broker/transport layer):
  // ReleaseForRemoteMerge invalidates the handle and returns its port's name,
  // leaving the port alive for a MergePorts from another node;
  // MergeWithRemotePort fuses `local`'s port with that remote port.
  Result<ports::PortName> ReleaseForRemoteMerge(Handle pipe);
  Status MergeWithRemotePort(Handle local, const ports::NodeName& node,
                             const ports::PortName& port);

  size_t handle_count() const ABSL_LOCKS_EXCLUDED(table_mu_);

  // The endpoint behind a pipe handle, for C++ embedders and tests.
  Result<std::shared_ptr<MessagePipeEndpoint>> GetEndpoint(Handle pipe) const;

  // ports::NodeDelegate.
  void ForwardEvent(const ports::NodeName& node, std::unique_ptr<ports::Event> event) override;
  void PortStatusChanged(const ports::PortRef& port) override ABSL_LOCKS_EXCLUDED(observers_mu_);

 private:
  using Object = std::variant<std::monostate, std::shared_ptr<MessagePipeEndpoint>,
                              std::shared_ptr<Trap>, std::shared_ptr<MessageContext>>;
  struct Slot {
    uint32_t generation = 1;
    Object object;
  };

  Result<Handle> AddHandle(Object object) ABSL_LOCKS_EXCLUDED(table_mu_);
  Result<Object> Lookup(Handle handle) const ABSL_LOCKS_EXCLUDED(table_mu_);
  Result<std::shared_ptr<MessagePipeEndpoint>> LookupPipe(Handle handle) const { return GetEndpoint(handle); }
  Result<std::shared_ptr<Trap>> LookupTrap(Handle handle) const;
  // Frees the slot if it still holds `object` (another thread may have won).
  void RemoveHandle(Handle handle, const Object& object) ABSL_LOCKS_EXCLUDED(table_mu_);
  Result<Handle> AdoptPort(ports::PortRef port);
  void Unobserve(const ports::PortName& name) ABSL_LOCKS_EXCLUDED(observers_mu_);
  bool IsBound(const ports::PortName& name) ABSL_LOCKS_EXCLUDED(observers_mu_);

  const EventForwarder forwarder_;
  const uint32_t table_tag_;
  std::unique_ptr<ports::Node> node_;

  // Lock order: leaf (see the file comment).
  mutable Mutex table_mu_;
  std::vector<Slot> slots_ ABSL_GUARDED_BY(table_mu_);  // slots_[0] is never used
  std::vector<uint32_t> free_slots_ ABSL_GUARDED_BY(table_mu_);
  size_t live_handles_ ABSL_GUARDED_BY(table_mu_) = 0;

  // Lock order: leaf.
  Mutex observers_mu_;
  std::unordered_map<ports::PortName, std::weak_ptr<MessagePipeEndpoint>, ports::NameHash>
      observers_ ABSL_GUARDED_BY(observers_mu_);
};

}  // namespace moat::system

#endif  // MOAT_CORE_SYSTEM_CORE_H_
