#include "core/system/trap.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "core/check.h"

namespace moat::system {
namespace {

// What this thread is doing for traps (issue 12 item 5c). A thread running a
// trap's handler never starts another handler inside it: two threads whose
// handlers remove each other's triggers would otherwise each wait for a
// delivery only the other could make. Instead, what the handler causes is
// remembered here and this thread does it once the handler returned and it
// gave up its trap's dispatch (as Mojo's RequestContext runs its finalizers):
//   * a CANCELLED it caused (trigger removed, handle or trap closed) is
//     delivered by this thread, as Mojo delivers it on the removing thread;
//   * a trap that got an event nobody was dispatching is dispatched.
struct Deferred {
  std::shared_ptr<Trap> trap;
  std::optional<TrapEvent> cancelled;  // else: dispatch the trap's queue
};

struct ThreadDispatchState {
  bool in_handler = false;
  std::vector<Deferred> deferred;
};

thread_local ThreadDispatchState t_dispatch;

}  // namespace

void WatcherList::Add(std::weak_ptr<Trap> trap, uint64_t trigger_id) {
  const Trap* key = trap.lock().get();
  MOAT_ASSERT(key != nullptr, "registering a watcher for a destroyed trap");
  auto next = entries_ ? std::make_shared<std::vector<Entry>>(*entries_)
                       : std::make_shared<std::vector<Entry>>();
  next->push_back(Entry{std::move(trap), key, trigger_id});
  entries_ = std::move(next);
}

void WatcherList::Remove(const Trap* trap, uint64_t trigger_id) {
  if (!entries_) return;
  for (auto it = entries_->begin(); it != entries_->end(); ++it) {
    if (it->key == trap && it->trigger_id == trigger_id) {
      if (entries_->size() == 1) {
        entries_.reset();
        return;
      }
      auto next = std::make_shared<std::vector<Entry>>(*entries_);
      next->erase(next->begin() + (it - entries_->begin()));
      entries_ = std::move(next);
      return;
    }
  }
}

void WatcherList::NotifyState(const Entries& watchers, const SignalsSnapshot& snapshot) {
  if (!watchers) return;
  for (const Entry& e : *watchers) {
    if (std::shared_ptr<Trap> trap = e.trap.lock()) trap->OnStateChanged(e.trigger_id, snapshot);
  }
}

void WatcherList::NotifyClosed(const Entries& watchers) {
  if (!watchers) return;
  for (const Entry& e : *watchers) {
    if (std::shared_ptr<Trap> trap = e.trap.lock()) trap->OnHandleClosed(e.trigger_id);
  }
}

std::shared_ptr<Trap> Trap::Create(Handler handler) {
  MOAT_ASSERT(handler != nullptr, "a trap needs an event handler");
  return std::shared_ptr<Trap>(new Trap(std::move(handler), Delivery::kAnyThread));
}

Result<std::shared_ptr<Trap>> Trap::Create(Handler handler, Delivery delivery) {
  MOAT_ASSERT(handler != nullptr, "a trap needs an event handler");
  std::shared_ptr<Trap> trap(new Trap(std::move(handler), delivery));
  if (delivery == Delivery::kPollable) {
    UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!fd.valid()) return IoError("eventfd (pollable trap)", errno);
    MutexLock lock(&trap->mu_);
    trap->event_fd_ = std::move(fd);
  }
  return trap;
}

void Trap::SyncDescriptorLocked() {
  if (!event_fd_.valid()) return;  // not pollable, or closed
  const bool want = !pending_events_.empty();
  if (want == event_fd_readable_) return;
  uint64_t value = 1;
  // The count is only ever 0 or 1: write cannot overflow it, and read of a
  // non-zero count cannot block. Either failing is a bug here.
  const ssize_t n = want ? ::write(event_fd_.get(), &value, sizeof(value))
                         : ::read(event_fd_.get(), &value, sizeof(value));
  MOAT_ASSERT(n == static_cast<ssize_t>(sizeof(value)), "pollable trap eventfd ",
              want ? "write" : "read", " failed: errno ", errno);
  event_fd_readable_ = want;
}

Result<int> Trap::descriptor() const {
  MOAT_REQUIRE(pollable(), ErrorCode::kFailedPrecondition,
               "trap descriptor: the trap was not created pollable "
               "(MOAT_CREATE_TRAP_FLAG_POLLABLE)");
  MutexLock lock(&mu_);
  MOAT_REQUIRE(!closed_, ErrorCode::kClosed, "trap descriptor: trap is closed");
  return event_fd_.get();
}

Result<size_t> Trap::Dispatch(size_t max_events) {
  MOAT_REQUIRE(pollable(), ErrorCode::kFailedPrecondition,
               "dispatch trap events: the trap was not created pollable "
               "(MOAT_CREATE_TRAP_FLAG_POLLABLE)");
  MOAT_REQUIRE(!t_dispatch.in_handler, ErrorCode::kFailedPrecondition,
               "dispatch trap events: called inside a trap handler (handlers never nest)");
  TrapEvent first;
  {
    MutexLock lock(&mu_);
    MOAT_REQUIRE(!closed_, ErrorCode::kClosed, "dispatch trap events: trap is closed");
    if (max_events == 0 || dispatching_ || !PopLocked(&first)) return size_t{0};
    dispatching_ = true;
  }
  return RunDispatch(first, max_events);
}

Trap::~Trap() {
  // Nobody else can reach us any more; unregister so the handles' watcher
  // lists do not keep dead entries.
  std::map<uintptr_t, Trigger> triggers;
  {
    MutexLock lock(&mu_);
    triggers = std::move(triggers_);
  }
  for (auto& [context, trigger] : triggers) trigger.handle->RemoveWatcher(this, trigger.id);
}

std::optional<TrapEventResult> Trap::Evaluate(const Trigger& trigger) {
  const HandleSignalsState& s = trigger.last.state;
  switch (trigger.condition) {
    case TriggerCondition::kSignalsSatisfied:
      if (s.Satisfies(trigger.signals)) return TrapEventResult::kOk;
      if (!s.CanSatisfy(trigger.signals)) return TrapEventResult::kFailedPrecondition;
      return std::nullopt;
    case TriggerCondition::kSignalsUnsatisfied:
      if (!s.SatisfiesAll(trigger.signals)) return TrapEventResult::kOk;
      return std::nullopt;
  }
  return std::nullopt;
}

void Trap::MaybeFireLocked(const Trigger& trigger) {
  if (!armed_) return;
  std::optional<TrapEventResult> result = Evaluate(trigger);
  if (!result.has_value()) return;
  armed_ = false;
  pending_events_.push_back(
      Queued{TrapEvent{trigger.context, *result, trigger.last.state}, trigger.id});
  SyncDescriptorLocked();
}

void Trap::QueueCancelledLocked(const Trigger& trigger) {
  TrapEvent cancelled{trigger.context, TrapEventResult::kCancelled, HandleSignalsState{}};
  // An open pollable trap is delivered only by Dispatch(): its CANCELLED
  // waits in the queue like any event (after those queued before it).
  if (t_dispatch.in_handler && AutoDispatchLocked()) {
    t_dispatch.deferred.push_back(Deferred{shared_from_this(), cancelled});
    return;
  }
  pending_events_.push_back(Queued{cancelled, trigger.id});
  SyncDescriptorLocked();
}

void Trap::WaitForInFlightLocked(uint64_t trigger_id) {
  // Inside a handler the wait could close a cycle (this thread's handler is
  // what the running one waits for); there, as in Mojo, the guarantee is
  // only that CANCELLED comes last. Outside any handler: once the caller's
  // removal returns, no event for the trigger is being delivered any more.
  if (t_dispatch.in_handler) return;
  while (in_flight_id_ != 0 && (trigger_id == 0 || in_flight_id_ == trigger_id)) {
    in_flight_done_.Wait(&mu_);
  }
}

Status Trap::AddTrigger(std::shared_ptr<Watchable> handle, SignalSet signals,
                        TriggerCondition condition, uintptr_t context) {
  MOAT_ASSERT(handle != nullptr, "AddTrigger with a null handle");
  MOAT_REQUIRE(signals != kSignalNone, ErrorCode::kInvalidArgument,
               "trigger signals: empty signal set");
  MOAT_REQUIRE((signals & ~kAllSignals) == 0, ErrorCode::kInvalidArgument,
               "trigger signals: unknown signal bits 0x", std::hex, (signals & ~kAllSignals));
  MOAT_REQUIRE(condition == TriggerCondition::kSignalsSatisfied ||
                   condition == TriggerCondition::kSignalsUnsatisfied,
               ErrorCode::kInvalidArgument, "trigger condition ",
               static_cast<uint32_t>(condition), " is not a known condition");
  {
    MutexLock lock(&mu_);
    MOAT_REQUIRE(!closed_, ErrorCode::kClosed, "add trigger: trap is closed");
    MOAT_REQUIRE(triggers_.find(context) == triggers_.end(), ErrorCode::kAlreadyExists,
                 "trigger context ", context, " is already used by this trap");
    const uint64_t id = next_trigger_id_++;
    // Registration under mu_ (lock order Trap -> endpoint) so that no
    // notification for this id can be lost between registering and recording.
    MOAT_ASSIGN_OR_RETURN(SignalsSnapshot snapshot, handle->AddWatcher(weak_from_this(), id));
    Trigger& t = triggers_[context];
    t.context = context;
    t.id = id;
    t.handle = std::move(handle);
    t.signals = signals;
    t.condition = condition;
    t.last = snapshot;
    context_by_id_[id] = context;
    MaybeFireLocked(t);
  }
  DispatchEvents();
  return OkStatus();
}

Status Trap::RemoveTrigger(uintptr_t context) {
  std::shared_ptr<Watchable> handle;
  uint64_t id = 0;
  {
    MutexLock lock(&mu_);
    MOAT_REQUIRE(!closed_, ErrorCode::kClosed, "remove trigger: trap is closed");
    auto it = triggers_.find(context);
    MOAT_REQUIRE(it != triggers_.end(), ErrorCode::kNotFound, "no trigger with context ",
                 context);
    handle = std::move(it->second.handle);
    id = it->second.id;
    QueueCancelledLocked(it->second);
    context_by_id_.erase(id);  // its queued events are now stale (PopLocked)
    triggers_.erase(it);
    WaitForInFlightLocked(id);
  }
  handle->RemoveWatcher(this, id);
  DispatchEvents();
  return OkStatus();
}

Status Trap::Arm(std::vector<TrapEvent>* blocking_events, size_t max_events) {
  if (blocking_events != nullptr) blocking_events->clear();
  MutexLock lock(&mu_);
  MOAT_REQUIRE(!closed_, ErrorCode::kClosed, "arm: trap is closed");
  MOAT_REQUIRE(!triggers_.empty(), ErrorCode::kNotFound, "arm: trap has no triggers");
  if (armed_) return OkStatus();
  // Start after the trigger reported last, so that a caller with room for
  // fewer events than are ready sees each of them in turn (issue 12 item 5b:
  // otherwise the lowest context would be reported forever).
  auto it = last_reported_.has_value() ? triggers_.upper_bound(*last_reported_)
                                       : triggers_.begin();
  size_t blocking = 0;
  std::optional<uintptr_t> last;
  for (size_t n = 0; n < triggers_.size(); ++n, ++it) {
    if (it == triggers_.end()) it = triggers_.begin();
    const Trigger& trigger = it->second;
    std::optional<TrapEventResult> result = Evaluate(trigger);
    if (!result.has_value()) continue;
    ++blocking;
    if (blocking_events != nullptr && blocking_events->size() < max_events) {
      blocking_events->push_back(TrapEvent{trigger.context, *result, trigger.last.state});
      last = trigger.context;
    }
  }
  if (last.has_value()) last_reported_ = last;
  MOAT_REQUIRE(blocking == 0, ErrorCode::kFailedPrecondition, "arm: ", blocking,
               " trigger(s) already satisfied or unsatisfiable");
  armed_ = true;
  return OkStatus();
}

void Trap::Close() {
  std::map<uintptr_t, Trigger> triggers;
  {
    MutexLock lock(&mu_);
    if (closed_) return;
    closed_ = true;
    armed_ = false;
    triggers = std::move(triggers_);
    triggers_.clear();
    context_by_id_.clear();  // every queued OK/FAILED_PRECONDITION is stale now
    for (const auto& [context, trigger] : triggers) QueueCancelledLocked(trigger);
    WaitForInFlightLocked(0);
    // Pollable: nobody can dispatch through a closed handle, so the
    // CANCELLED events go the ordinary way (DispatchEvents below), and the
    // descriptor is closed before Close returns.
    event_fd_.reset();
    event_fd_readable_ = false;
  }
  for (auto& [context, trigger] : triggers) trigger.handle->RemoveWatcher(this, trigger.id);
  DispatchEvents();
}

bool Trap::armed() const {
  MutexLock lock(&mu_);
  return armed_;
}

size_t Trap::trigger_count() const {
  MutexLock lock(&mu_);
  return triggers_.size();
}

void Trap::OnStateChanged(uint64_t trigger_id, const SignalsSnapshot& snapshot) {
  TrapEvent first;
  {
    MutexLock lock(&mu_);
    auto id_it = context_by_id_.find(trigger_id);
    if (id_it == context_by_id_.end()) return;  // removed meanwhile
    Trigger& t = triggers_.at(id_it->second);
    if (snapshot.sequence <= t.last.sequence) return;  // overtaken by a newer state
    t.last = snapshot;
    MaybeFireLocked(t);
    // This runs for every message that arrives: claim the dispatch here
    // rather than in a second critical section.
    if (!ClaimDispatchLocked(&first)) return;
  }
  RunDispatch(first);
}

void Trap::OnHandleClosed(uint64_t trigger_id) {
  std::shared_ptr<Watchable> handle;  // released after mu_
  {
    MutexLock lock(&mu_);
    auto id_it = context_by_id_.find(trigger_id);
    if (id_it == context_by_id_.end()) return;
    auto it = triggers_.find(id_it->second);
    handle = std::move(it->second.handle);
    QueueCancelledLocked(it->second);
    triggers_.erase(it);
    context_by_id_.erase(id_it);
    WaitForInFlightLocked(trigger_id);
  }
  DispatchEvents();
}

bool Trap::PopLocked(TrapEvent* event) {
  while (!pending_events_.empty()) {
    Queued q = pending_events_.front();
    pending_events_.pop_front();
    const bool cancelled = q.event.result == TrapEventResult::kCancelled;
    // An event of a trigger removed since it was queued is dropped: after
    // CANCELLED (and after the removal returned) nothing else may arrive.
    if (!cancelled && context_by_id_.find(q.trigger_id) == context_by_id_.end()) continue;
    in_flight_id_ = cancelled ? 0 : q.trigger_id;
    *event = q.event;
    SyncDescriptorLocked();
    return true;
  }
  SyncDescriptorLocked();
  return false;
}

bool Trap::ClaimDispatchLocked(TrapEvent* first) {
  if (dispatching_ || pending_events_.empty()) return false;
  if (!AutoDispatchLocked()) return false;  // waits for Dispatch() (descriptor readable)
  if (t_dispatch.in_handler) {
    // Never nest: this thread dispatches the trap once its handler returned.
    t_dispatch.deferred.push_back(Deferred{shared_from_this(), std::nullopt});
    return false;
  }
  if (!PopLocked(first)) return false;
  dispatching_ = true;
  return true;
}

size_t Trap::RunDispatch(TrapEvent event, size_t budget) {
  MOAT_ASSERT(!t_dispatch.in_handler, "trap handlers nested on one thread");
  size_t delivered = 0;
  for (;;) {
    t_dispatch.in_handler = true;
    handler_(event);
    t_dispatch.in_handler = false;
    ++delivered;
    MutexLock lock(&mu_);
    in_flight_id_ = 0;
    in_flight_done_.SignalAll();
    // The budget bounds Dispatch() of an open pollable trap; once the trap
    // is closed (e.g. by this handler) nobody else could deliver the rest.
    const bool spent = delivered >= budget && !AutoDispatchLocked();
    if (!t_dispatch.deferred.empty() || spent || !PopLocked(&event)) {
      // Give the dispatch back before doing what the handler deferred: a
      // deferred delivery may wait for another thread that needs this trap.
      dispatching_ = false;
      dispatch_free_.SignalAll();
      break;
    }
  }
  if (t_dispatch.deferred.empty()) return delivered;
  delivered += DrainDeferred(this);
  delivered += DispatchEvents();  // what was queued here meanwhile, unless taken already
  return delivered;
}

size_t Trap::DeliverCancelled(const TrapEvent& cancelled) {
  {
    MutexLock lock(&mu_);
    // Wait for the thread delivering this trap's events (if any) to finish
    // its current handler: handlers of one trap never overlap.
    while (dispatching_) dispatch_free_.Wait(&mu_);
    dispatching_ = true;
  }
  return RunDispatch(cancelled);
}

size_t Trap::DrainDeferred(const Trap* self) {
  size_t own = 0;
  while (!t_dispatch.deferred.empty()) {
    Deferred next = std::move(t_dispatch.deferred.front());
    t_dispatch.deferred.erase(t_dispatch.deferred.begin());
    const size_t n = next.cancelled.has_value() ? next.trap->DeliverCancelled(*next.cancelled)
                                                : next.trap->DispatchEvents();
    if (next.trap.get() == self) own += n;
  }
  return own;
}

size_t Trap::DispatchEvents() {
  TrapEvent first;
  {
    MutexLock lock(&mu_);
    if (!ClaimDispatchLocked(&first)) return 0;
  }
  return RunDispatch(first);
}

}  // namespace moat::system
