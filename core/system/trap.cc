#include "core/system/trap.h"

#include <utility>

#include "core/check.h"

namespace moat::system {

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
  return std::shared_ptr<Trap>(new Trap(std::move(handler)));
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
  pending_events_.push_back(TrapEvent{trigger.context, *result, trigger.last.state});
}

void Trap::QueueCancelledLocked(const Trigger& trigger) {
  pending_events_.push_back(
      TrapEvent{trigger.context, TrapEventResult::kCancelled, HandleSignalsState{}});
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
    MOAT_REQUIRE(triggers_.find(context) == triggers_.end(), ErrorCode::kInvalidArgument,
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
    context_by_id_.erase(id);
    triggers_.erase(it);
  }
  handle->RemoveWatcher(this, id);
  DispatchEvents();
  return OkStatus();
}

Status Trap::Arm(std::vector<TrapEvent>* blocking_events) {
  if (blocking_events != nullptr) blocking_events->clear();
  MutexLock lock(&mu_);
  MOAT_REQUIRE(!closed_, ErrorCode::kClosed, "arm: trap is closed");
  MOAT_REQUIRE(!triggers_.empty(), ErrorCode::kNotFound, "arm: trap has no triggers");
  if (armed_) return OkStatus();
  size_t blocking = 0;
  for (const auto& [context, trigger] : triggers_) {
    std::optional<TrapEventResult> result = Evaluate(trigger);
    if (!result.has_value()) continue;
    ++blocking;
    if (blocking_events != nullptr) {
      blocking_events->push_back(TrapEvent{context, *result, trigger.last.state});
    }
  }
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
    context_by_id_.clear();
    for (const auto& [context, trigger] : triggers) QueueCancelledLocked(trigger);
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
  }
  DispatchEvents();
}

bool Trap::ClaimDispatchLocked(TrapEvent* first) {
  if (dispatching_ || pending_events_.empty()) return false;
  dispatching_ = true;
  *first = pending_events_.front();
  pending_events_.pop_front();
  return true;
}

void Trap::RunDispatch(TrapEvent event) {
  for (;;) {
    handler_(event);
    MutexLock lock(&mu_);
    if (pending_events_.empty()) {
      dispatching_ = false;
      return;
    }
    event = pending_events_.front();
    pending_events_.pop_front();
  }
}

void Trap::DispatchEvents() {
  TrapEvent first;
  {
    MutexLock lock(&mu_);
    if (!ClaimDispatchLocked(&first)) return;
  }
  RunDispatch(first);
}

}  // namespace moat::system
