// Traps: event-driven watchers of handle signals (R14). No polling anywhere.
//
// A Trap holds triggers. Each trigger watches one handle (a Watchable, in
// practice a MessagePipeEndpoint) for a set of signals and a condition
// (signals become satisfied, or become unsatisfied), and carries an opaque
// context the embedder chooses. Semantics follow Mojo's MojoTrap:
//
//   * Arm() succeeds only if no trigger's condition is met right now.
//     Otherwise it returns kFailedPrecondition together with the "blocking
//     events": every trigger whose condition is already met (result kOk) or
//     whose signals can never be satisfied again (result kFailedPrecondition).
//     A trap without triggers cannot be armed (kNotFound).
//   * While armed, the first trigger whose condition becomes met (or becomes
//     unsatisfiable) fires: the handler runs once with that event and the
//     trap disarms. The embedder re-arms when it wants more.
//   * Removing a trigger, closing its handle, or closing the trap delivers a
//     final kCancelled event for that trigger, armed or not.
//
// Delivery: the handler is never called with any lock held (it may call back
// into the API, e.g. to re-arm or read). Events of one trap are delivered one
// at a time, in the order they happened: a thread that produces an event while
// another thread is running the handler queues it, and the running thread
// delivers it next. Guarantees (issue 12 item 5):
//   * A trigger's kCancelled is its last event. An event queued before the
//     trigger was removed (handle closed, trap closed) is dropped, never
//     delivered; a removal made outside any handler also waits for an event
//     of that trigger being delivered on another thread to finish, so once
//     it returns no other event of the trigger can reach the handler.
//     (kCancelled itself may still be delivered later, by the thread that is
//     dispatching.) A dropped event had disarmed the trap, as in Mojo.
//   * Handlers never nest across traps: an event that a handler causes for
//     another trap (or for a trap nobody is dispatching) is delivered by
//     this thread after its outermost handler returned, like Mojo's
//     RequestContext finalizers. So two handlers that remove each other's
//     triggers and wait for each other's kCancelled cannot deadlock.
//
// Lock order (see also core.h): Core handle table -> Trap::mu_ ->
// endpoint lock -> ports locks. A Watchable never calls into a Trap while
// holding its own lock: it snapshots its WatcherList under the lock and
// notifies after releasing it. Stale notifications (overtaken by a newer one
// on another thread) are recognised by the snapshot's sequence number.
//
// Pollable traps (issue 15 item 4): Create(handler, kPollable) makes a trap
// whose handler runs only on a thread that calls Dispatch(), never on the
// thread that caused the event (an IO thread, a writer). Its events wait in
// the queue, and an eventfd (descriptor()) is readable exactly while the
// queue is not empty (level-triggered; a stale event dropped at delivery can
// make it readable once for nothing). Once closed, the trap's remaining
// CANCELLED events are delivered by Close() itself as for any trap (nobody
// could dispatch them any more) and the descriptor is closed.
//
//   auto trap = Trap::Create([](const TrapEvent& e) { Wake(e.trigger_context); });
//   MOAT_TRY(trap->AddTrigger(endpoint, kSignalReadable,
//                             TriggerCondition::kSignalsSatisfied, /*context=*/7));
//   std::vector<TrapEvent> blocking;
//   Status s = trap->Arm(&blocking);   // kFailedPrecondition: read first
#ifndef MOAT_CORE_SYSTEM_TRAP_H_
#define MOAT_CORE_SYSTEM_TRAP_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "core/mutex.h"
#include "core/system/signals.h"
#include "core/unique_fd.h"

namespace moat::system {

class Trap;

enum class TriggerCondition : uint32_t {
  kSignalsSatisfied = 0,    // fire when any watched signal is satisfied
  kSignalsUnsatisfied = 1,  // fire when not all watched signals are satisfied
};

enum class TrapEventResult : uint8_t {
  kOk,                  // the trigger's condition is met
  kFailedPrecondition,  // the watched signals can never be satisfied again
  kCancelled,           // the trigger was removed or its handle/trap closed
};

struct TrapEvent {
  uintptr_t trigger_context = 0;
  TrapEventResult result = TrapEventResult::kOk;
  HandleSignalsState signals_state;
};

// A handle state published by a Watchable. `sequence` increases with every
// publication of one Watchable, so a trap can drop a snapshot that arrives
// after a newer one.
struct SignalsSnapshot {
  HandleSignalsState state;
  uint64_t sequence = 0;
};

// What a watched object offers traps.
class Watchable {
 public:
  virtual ~Watchable() = default;
  // Registers a trigger and returns the current state, atomically with the
  // registration (every later publication has a larger sequence). Fails
  // (kBusy, kClosed) if the handle is not usable.
  virtual Result<SignalsSnapshot> AddWatcher(std::weak_ptr<Trap> trap, uint64_t trigger_id) = 0;
  // Unregisters; a no-op if not registered (the handle may have closed).
  virtual void RemoveWatcher(const Trap* trap, uint64_t trigger_id) = 0;
};

// The triggers registered on one Watchable. Not thread-safe: the Watchable
// guards it with its own lock and calls Notify* after releasing that lock.
//
// The list is immutable once built: Add and Remove install a new one. A
// snapshot for notifying outside the lock is then a reference, not a copy,
// which keeps the per-message signal publication free of allocations
// (triggers change rarely; signals change on every message).
class WatcherList {
 public:
  struct Entry {
    std::weak_ptr<Trap> trap;
    const Trap* key = nullptr;
    uint64_t trigger_id = 0;
  };
  using Entries = std::shared_ptr<const std::vector<Entry>>;

  void Add(std::weak_ptr<Trap> trap, uint64_t trigger_id);
  void Remove(const Trap* trap, uint64_t trigger_id);
  bool empty() const { return entries_ == nullptr; }
  size_t size() const { return entries_ ? entries_->size() : 0; }
  Entries Snapshot() const { return entries_; }
  Entries TakeAll() { return std::move(entries_); }

  // Call with no lock held. A null list notifies nobody.
  static void NotifyState(const Entries& watchers, const SignalsSnapshot& snapshot);
  static void NotifyClosed(const Entries& watchers);

 private:
  Entries entries_;  // null when empty
};

class Trap : public std::enable_shared_from_this<Trap> {
 public:
  using Handler = std::function<void(const TrapEvent&)>;
  enum class Delivery : uint8_t {
    kAnyThread,  // the thread that caused the event delivers it (Mojo)
    kPollable,   // only Dispatch() delivers; descriptor() signals pending events
  };

  // kPollable: kIo if no eventfd could be created.
  static Result<std::shared_ptr<Trap>> Create(Handler handler, Delivery delivery);
  static std::shared_ptr<Trap> Create(Handler handler);
  ~Trap();

  // kInvalidArgument for an empty or unknown signal set or an unknown
  // condition; kAlreadyExists for a context used by another trigger of this
  // trap;
  // kClosed if the trap is closed; the handle's own error if it is not
  // usable (kBusy in transit, kClosed). If the trap is armed and the new
  // trigger's condition is already met, the trap fires at once.
  Status AddTrigger(std::shared_ptr<Watchable> handle, SignalSet signals,
                    TriggerCondition condition, uintptr_t context) ABSL_LOCKS_EXCLUDED(mu_);

  // Removes a trigger and delivers its kCancelled event. kNotFound if no
  // trigger has this context.
  Status RemoveTrigger(uintptr_t context) ABSL_LOCKS_EXCLUDED(mu_);

  // See the file comment. On kFailedPrecondition `blocking_events` (if not
  // null) receives up to `max_events` blocking events, in context order
  // starting after the trigger reported last by the previous Arm (wrapping),
  // so that repeated calls with room for one event report every ready
  // trigger in turn.
  Status Arm(std::vector<TrapEvent>* blocking_events, size_t max_events = SIZE_MAX)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Cancels every trigger (each gets its kCancelled event); later calls fail
  // kClosed. Idempotent.
  void Close() ABSL_LOCKS_EXCLUDED(mu_);

  bool armed() const ABSL_LOCKS_EXCLUDED(mu_);
  size_t trigger_count() const ABSL_LOCKS_EXCLUDED(mu_);
  bool pollable() const { return delivery_ == Delivery::kPollable; }

  // Pollable traps: the eventfd, readable while events are pending; owned by
  // the trap, closed by Close(). kFailedPrecondition for other traps,
  // kClosed once closed.
  Result<int> descriptor() const ABSL_LOCKS_EXCLUDED(mu_);

  // Pollable traps: delivers up to `max_events` pending events on this
  // thread (events the handler causes for this trap count too) and returns
  // how many were delivered. 0 if none is pending or another thread is
  // dispatching this trap (it delivers them). kFailedPrecondition for other
  // traps and inside any trap handler (handlers never nest); kClosed once
  // closed.
  Result<size_t> Dispatch(size_t max_events) ABSL_LOCKS_EXCLUDED(mu_);

  // Called by Watchables (WatcherList::Notify*), never with their lock held.
  void OnStateChanged(uint64_t trigger_id, const SignalsSnapshot& snapshot)
      ABSL_LOCKS_EXCLUDED(mu_);
  void OnHandleClosed(uint64_t trigger_id) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Trigger {
    uintptr_t context = 0;
    uint64_t id = 0;
    std::shared_ptr<Watchable> handle;
    SignalSet signals = kSignalNone;
    TriggerCondition condition = TriggerCondition::kSignalsSatisfied;
    SignalsSnapshot last;
  };

  Trap(Handler handler, Delivery delivery)
      : handler_(std::move(handler)), delivery_(delivery) {}

  // Whether the thread that queues an event may deliver it (every trap but
  // an open pollable one).
  bool AutoDispatchLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return delivery_ == Delivery::kAnyThread || closed_;
  }
  // Pollable traps: makes the eventfd readable iff events are pending.
  void SyncDescriptorLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // The event this trigger would produce now, if its condition is met.
  static std::optional<TrapEventResult> Evaluate(const Trigger& trigger);
  // Fires `trigger` if armed and its condition is met; queues the event.
  void MaybeFireLocked(const Trigger& trigger) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void QueueCancelledLocked(const Trigger& trigger) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Delivers queued events unless another thread is already doing so.
  // Returns the number of events delivered (by this thread).
  size_t DispatchEvents() ABSL_LOCKS_EXCLUDED(mu_);
  // Becomes the dispatching thread if none is and an event is queued;
  // takes that event. Then RunDispatch (without mu_) delivers it and every
  // event queued meanwhile, and gives the role back. On a thread that is
  // running a handler (of any trap) it only remembers the trap, which that
  // thread dispatches after its outermost handler returned (DrainDeferred).
  bool ClaimDispatchLocked(TrapEvent* first) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Returns the number of events delivered; stops after `budget`.
  size_t RunDispatch(TrapEvent first, size_t budget = SIZE_MAX) ABSL_LOCKS_EXCLUDED(mu_);
  // Runs what this thread's handlers deferred (see trap.cc), with no
  // dispatch held.
  // dispatch held. Returns how many events of `self` it delivered.
  static size_t DrainDeferred(const Trap* self);
  // Delivers a CANCELLED this thread caused inside a handler, once no other
  // thread is delivering this trap's events.
  size_t DeliverCancelled(const TrapEvent& cancelled) ABSL_LOCKS_EXCLUDED(mu_);
  // Takes the next event to deliver, dropping stale ones (of triggers
  // removed since they were queued), and marks it in flight.
  bool PopLocked(TrapEvent* event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Called by a removal (trigger_id, or 0 for all) outside any handler:
  // waits until no event of that trigger is being delivered on another
  // thread, so none can reach the handler after the removal returned.
  void WaitForInFlightLocked(uint64_t trigger_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Handler handler_;
  const Delivery delivery_;

  // Lock order: Core table lock -> mu_ -> endpoint locks. Never held while
  // the handler runs.
  mutable Mutex mu_;
  std::map<uintptr_t, Trigger> triggers_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<uint64_t, uintptr_t> context_by_id_ ABSL_GUARDED_BY(mu_);
  uint64_t next_trigger_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool armed_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  struct Queued {
    TrapEvent event;
    uint64_t trigger_id = 0;  // stale unless still in context_by_id_ (non-cancel)
  };
  // Bounded: at most one kOk/kFailedPrecondition per arming plus one
  // kCancelled per trigger.
  std::deque<Queued> pending_events_ ABSL_GUARDED_BY(mu_);
  bool dispatching_ ABSL_GUARDED_BY(mu_) = false;
  // The trigger whose OK/FAILED_PRECONDITION event the dispatching thread is
  // delivering (0: none, or a CANCELLED).
  uint64_t in_flight_id_ ABSL_GUARDED_BY(mu_) = 0;
  CondVar in_flight_done_;
  CondVar dispatch_free_;  // dispatching_ became false
  // Pollable traps: the eventfd (invalid once closed) and whether it holds a
  // count now (readable).
  UniqueFd event_fd_ ABSL_GUARDED_BY(mu_);
  bool event_fd_readable_ ABSL_GUARDED_BY(mu_) = false;
  // Where the next Arm starts looking for blocking events (rotation).
  std::optional<uintptr_t> last_reported_ ABSL_GUARDED_BY(mu_);
};

}  // namespace moat::system

#endif  // MOAT_CORE_SYSTEM_TRAP_H_
