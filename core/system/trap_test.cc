#include "core/system/trap.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "core/check.h"
#include "core/mutex.h"

namespace moat::system {
namespace {

// A Watchable whose state the test sets directly, publishing like an endpoint:
// snapshot under the lock, notify after releasing it.
class FakeHandle : public Watchable {
 public:
  explicit FakeHandle(HandleSignalsState initial) : state_(initial) {}

  Result<SignalsSnapshot> AddWatcher(std::weak_ptr<Trap> trap, uint64_t id) override {
    MutexLock lock(&mu_);
    MOAT_REQUIRE(!closed_, ErrorCode::kClosed, "add watcher: handle is closed");
    watchers_.Add(std::move(trap), id);
    return SignalsSnapshot{state_, ++sequence_};
  }
  void RemoveWatcher(const Trap* trap, uint64_t id) override {
    MutexLock lock(&mu_);
    watchers_.Remove(trap, id);
  }
  void SetState(HandleSignalsState s) {
    WatcherList::Entries watchers;
    SignalsSnapshot snap;
    {
      MutexLock lock(&mu_);
      state_ = s;
      snap = SignalsSnapshot{state_, ++sequence_};
      watchers = watchers_.Snapshot();
    }
    WatcherList::NotifyState(watchers, snap);
  }
  void Close() {
    WatcherList::Entries watchers;
    {
      MutexLock lock(&mu_);
      closed_ = true;
      watchers = watchers_.TakeAll();
    }
    WatcherList::NotifyClosed(watchers);
  }
  size_t watcher_count() {
    MutexLock lock(&mu_);
    return watchers_.size();
  }

 private:
  Mutex mu_;
  HandleSignalsState state_ ABSL_GUARDED_BY(mu_);
  uint64_t sequence_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  WatcherList watchers_ ABSL_GUARDED_BY(mu_);
};

const HandleSignalsState kIdle{kSignalWritable, kAllSignals};
const HandleSignalsState kReadableState{kSignalReadable | kSignalWritable, kAllSignals};
const HandleSignalsState kPeerGone{kSignalPeerClosed, kSignalPeerClosed};

struct Recorder {
  Mutex mu;
  std::vector<TrapEvent> events ABSL_GUARDED_BY(mu);
  Trap::Handler handler() {
    return [this](const TrapEvent& e) {
      MutexLock lock(&mu);
      events.push_back(e);
    };
  }
  std::vector<TrapEvent> Take() {
    MutexLock lock(&mu);
    return std::move(events);
  }
};

TEST(TrapTest, ArmWithoutTriggersIsNotFound) {
  Recorder rec;
  auto trap = Trap::Create(rec.handler());
  Status s = trap->Arm(nullptr);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kNotFound);
}

TEST(TrapTest, FiresOnceWhenConditionBecomesMetThenDisarms) {
  Recorder rec;
  auto trap = Trap::Create(rec.handler());
  auto h = std::make_shared<FakeHandle>(kIdle);
  ASSERT_TRUE(trap->AddTrigger(h, kSignalReadable, TriggerCondition::kSignalsSatisfied, 42).ok());
  ASSERT_TRUE(trap->Arm(nullptr).ok());
  EXPECT_TRUE(trap->armed());
  EXPECT_TRUE(rec.Take().empty());

  h->SetState(kReadableState);
  auto events = rec.Take();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].trigger_context, 42u);
  EXPECT_EQ(events[0].result, TrapEventResult::kOk);
  EXPECT_EQ(events[0].signals_state, kReadableState);
  EXPECT_FALSE(trap->armed());

  // Disarmed: further changes are recorded but not delivered.
  h->SetState(kIdle);
  h->SetState(kReadableState);
  EXPECT_TRUE(rec.Take().empty());
}

TEST(TrapTest, ArmAnswersAlreadySatisfiedWithBlockingEvents) {
  Recorder rec;
  auto trap = Trap::Create(rec.handler());
  auto readable = std::make_shared<FakeHandle>(kReadableState);
  auto idle = std::make_shared<FakeHandle>(kIdle);
  auto gone = std::make_shared<FakeHandle>(kPeerGone);
  ASSERT_TRUE(trap->AddTrigger(readable, kSignalReadable, TriggerCondition::kSignalsSatisfied, 1).ok());
  ASSERT_TRUE(trap->AddTrigger(idle, kSignalReadable, TriggerCondition::kSignalsSatisfied, 2).ok());
  ASSERT_TRUE(trap->AddTrigger(gone, kSignalReadable, TriggerCondition::kSignalsSatisfied, 3).ok());
  std::vector<TrapEvent> blocking;
  Status s = trap->Arm(&blocking);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kFailedPrecondition);
  ASSERT_EQ(blocking.size(), 2u);
  EXPECT_EQ(blocking[0].trigger_context, 1u);
  EXPECT_EQ(blocking[0].result, TrapEventResult::kOk);
  EXPECT_EQ(blocking[1].trigger_context, 3u);
  EXPECT_EQ(blocking[1].result, TrapEventResult::kFailedPrecondition);
  EXPECT_FALSE(trap->armed());
  EXPECT_TRUE(rec.Take().empty()) << "Arm's answer is returned, not delivered";
}

TEST(TrapTest, UnsatisfiedCondition) {
  Recorder rec;
  auto trap = Trap::Create(rec.handler());
  auto h = std::make_shared<FakeHandle>(kIdle);
  ASSERT_TRUE(trap->AddTrigger(h, kSignalWritable, TriggerCondition::kSignalsUnsatisfied, 9).ok());
  ASSERT_TRUE(trap->Arm(nullptr).ok());
  h->SetState(HandleSignalsState{kSignalQuotaExceeded, kAllSignals});
  auto events = rec.Take();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].result, TrapEventResult::kOk);
  EXPECT_EQ(events[0].trigger_context, 9u);
}

TEST(TrapTest, BecomingUnsatisfiableFiresFailedPrecondition) {
  Recorder rec;
  auto trap = Trap::Create(rec.handler());
  auto h = std::make_shared<FakeHandle>(kIdle);
  ASSERT_TRUE(trap->AddTrigger(h, kSignalReadable, TriggerCondition::kSignalsSatisfied, 5).ok());
  ASSERT_TRUE(trap->Arm(nullptr).ok());
  h->SetState(kPeerGone);
  auto events = rec.Take();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].result, TrapEventResult::kFailedPrecondition);
}

TEST(TrapTest, AddingAMetTriggerToAnArmedTrapFiresAtOnce) {
  Recorder rec;
  auto trap = Trap::Create(rec.handler());
  auto idle = std::make_shared<FakeHandle>(kIdle);
  ASSERT_TRUE(trap->AddTrigger(idle, kSignalReadable, TriggerCondition::kSignalsSatisfied, 1).ok());
  ASSERT_TRUE(trap->Arm(nullptr).ok());
  auto readable = std::make_shared<FakeHandle>(kReadableState);
  ASSERT_TRUE(trap->AddTrigger(readable, kSignalReadable, TriggerCondition::kSignalsSatisfied, 2).ok());
  auto events = rec.Take();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].trigger_context, 2u);
  EXPECT_FALSE(trap->armed());
}

TEST(TrapTest, RemoveTriggerDeliversCancelled) {
  Recorder rec;
  auto trap = Trap::Create(rec.handler());
  auto h = std::make_shared<FakeHandle>(kIdle);
  ASSERT_TRUE(trap->AddTrigger(h, kSignalReadable, TriggerCondition::kSignalsSatisfied, 7).ok());
  EXPECT_EQ(h->watcher_count(), 1u);
  ASSERT_TRUE(trap->RemoveTrigger(7).ok());
  EXPECT_EQ(h->watcher_count(), 0u);
  auto events = rec.Take();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].result, TrapEventResult::kCancelled);
  EXPECT_EQ(events[0].trigger_context, 7u);
  EXPECT_EQ(trap->RemoveTrigger(7).error().code(), ErrorCode::kNotFound);
  // The handle's later changes no longer reach the trap.
  h->SetState(kReadableState);
  EXPECT_TRUE(rec.Take().empty());
}

TEST(TrapTest, ClosingTheHandleCancelsItsTrigger) {
  Recorder rec;
  auto trap = Trap::Create(rec.handler());
  auto h = std::make_shared<FakeHandle>(kIdle);
  ASSERT_TRUE(trap->AddTrigger(h, kSignalReadable, TriggerCondition::kSignalsSatisfied, 3).ok());
  ASSERT_TRUE(trap->Arm(nullptr).ok());
  h->Close();
  auto events = rec.Take();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].result, TrapEventResult::kCancelled);
  EXPECT_EQ(trap->trigger_count(), 0u);
  EXPECT_EQ(trap->Arm(nullptr).error().code(), ErrorCode::kNotFound);
  // A closed handle cannot get a new trigger.
  Status s = trap->AddTrigger(h, kSignalReadable, TriggerCondition::kSignalsSatisfied, 4);
  EXPECT_EQ(s.error().code(), ErrorCode::kClosed);
}

TEST(TrapTest, ClosingTheTrapCancelsEveryTriggerAndRefusesMore) {
  Recorder rec;
  auto trap = Trap::Create(rec.handler());
  auto a = std::make_shared<FakeHandle>(kIdle);
  auto b = std::make_shared<FakeHandle>(kIdle);
  ASSERT_TRUE(trap->AddTrigger(a, kSignalReadable, TriggerCondition::kSignalsSatisfied, 1).ok());
  ASSERT_TRUE(trap->AddTrigger(b, kSignalReadable, TriggerCondition::kSignalsSatisfied, 2).ok());
  trap->Close();
  auto events = rec.Take();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].result, TrapEventResult::kCancelled);
  EXPECT_EQ(events[1].result, TrapEventResult::kCancelled);
  EXPECT_EQ(a->watcher_count(), 0u);
  EXPECT_EQ(b->watcher_count(), 0u);
  EXPECT_EQ(trap->Arm(nullptr).error().code(), ErrorCode::kClosed);
  EXPECT_EQ(trap->AddTrigger(a, kSignalReadable, TriggerCondition::kSignalsSatisfied, 1)
                .error().code(),
            ErrorCode::kClosed);
  trap->Close();  // idempotent
  EXPECT_TRUE(rec.Take().empty());
}

TEST(TrapTest, InvalidTriggerArguments) {
  Recorder rec;
  auto trap = Trap::Create(rec.handler());
  auto h = std::make_shared<FakeHandle>(kIdle);
  EXPECT_EQ(trap->AddTrigger(h, 0, TriggerCondition::kSignalsSatisfied, 1).error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(trap->AddTrigger(h, 1u << 20, TriggerCondition::kSignalsSatisfied, 1).error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(trap->AddTrigger(h, kSignalReadable, static_cast<TriggerCondition>(9), 1)
                .error().code(),
            ErrorCode::kInvalidArgument);
  ASSERT_TRUE(trap->AddTrigger(h, kSignalReadable, TriggerCondition::kSignalsSatisfied, 1).ok());
  EXPECT_EQ(trap->AddTrigger(h, kSignalWritable, TriggerCondition::kSignalsSatisfied, 1)
                .error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(h->watcher_count(), 1u);
}

TEST(TrapTest, HandlerMayReenterTheTrap) {
  auto h = std::make_shared<FakeHandle>(kIdle);
  std::vector<TrapEvent> events;
  std::shared_ptr<Trap> trap;
  trap = Trap::Create([&](const TrapEvent& e) {
    events.push_back(e);
    if (e.result == TrapEventResult::kOk) {
      // Re-entering from the handler must not deadlock; the trap's answer is
      // "already satisfied" since the handle is still readable.
      EXPECT_EQ(trap->Arm(nullptr).error().code(), ErrorCode::kFailedPrecondition);
      EXPECT_TRUE(trap->RemoveTrigger(e.trigger_context).ok());
      // The cancellation is queued behind this event, not delivered inside it.
      EXPECT_EQ(events.size(), 1u);
    }
  });
  ASSERT_TRUE(trap->AddTrigger(h, kSignalReadable, TriggerCondition::kSignalsSatisfied, 1).ok());
  ASSERT_TRUE(trap->Arm(nullptr).ok());
  h->SetState(kReadableState);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].result, TrapEventResult::kOk);
  EXPECT_EQ(events[1].result, TrapEventResult::kCancelled);
}

TEST(TrapTest, ConcurrentStateChangesFireAtMostOncePerArm) {
  std::atomic<int> fired{0};
  auto trap = Trap::Create([&](const TrapEvent& e) {
    if (e.result == TrapEventResult::kOk) fired.fetch_add(1);
  });
  auto h = std::make_shared<FakeHandle>(kIdle);
  ASSERT_TRUE(trap->AddTrigger(h, kSignalReadable, TriggerCondition::kSignalsSatisfied, 1).ok());
  ASSERT_TRUE(trap->Arm(nullptr).ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) h->SetState(i % 2 ? kReadableState : kIdle);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(fired.load(), 1);
  trap->Close();
}

}  // namespace
}  // namespace moat::system
