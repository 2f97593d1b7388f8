#include "core/system/trap.h"

#include <gtest/gtest.h>

#include <algorithm>

#include <atomic>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <poll.h>
#include <fcntl.h>

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
  // Mojo's answer for a context already in use (issue 12 item 6).
  EXPECT_EQ(trap->AddTrigger(h, kSignalWritable, TriggerCondition::kSignalsSatisfied, 1)
                .error().code(),
            ErrorCode::kAlreadyExists);
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

// Issue 12 item 5a. The outer handler runs outside any ports delivery (it is
// fired by AddTrigger on an armed trap), re-arms, makes trigger 2's handle
// ready (its event is queued behind the running handler) and then removes
// trigger 2. Once RemoveTrigger returned, trigger 2 must get nothing but its
// CANCELLED: the queued OK event is stale and must be dropped.
TEST(TrapTest, NoEventAfterRemoveTriggerReturnedEvenIfQueuedBefore) {
  auto h1 = std::make_shared<FakeHandle>(kReadableState);
  auto h2 = std::make_shared<FakeHandle>(kIdle);
  std::vector<TrapEvent> events;
  bool removed = false;
  int late_events = 0;
  std::shared_ptr<Trap> trap;
  trap = Trap::Create([&](const TrapEvent& e) {
    events.push_back(e);
    if (e.trigger_context == 2 && removed && e.result != TrapEventResult::kCancelled) {
      ++late_events;
    }
    if (e.trigger_context == 1 && e.result == TrapEventResult::kOk) {
      h1->SetState(kIdle);
      ASSERT_TRUE(trap->Arm(nullptr).ok());
      h2->SetState(kReadableState);  // fires trigger 2: queued behind us
      ASSERT_TRUE(trap->RemoveTrigger(2).ok());
      removed = true;
    }
  });
  ASSERT_TRUE(trap->AddTrigger(h2, kSignalReadable, TriggerCondition::kSignalsSatisfied, 2).ok());
  ASSERT_TRUE(trap->Arm(nullptr).ok());
  ASSERT_TRUE(trap->AddTrigger(h1, kSignalReadable, TriggerCondition::kSignalsSatisfied, 1).ok());
  EXPECT_EQ(late_events, 0) << "an OK event reached trigger 2 after RemoveTrigger returned";
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].trigger_context, 1u);
  EXPECT_EQ(events[1].trigger_context, 2u);
  EXPECT_EQ(events[1].result, TrapEventResult::kCancelled);
  // The dropped event had disarmed the trap (as in Mojo): arming again
  // reports what is ready.
  EXPECT_FALSE(trap->armed());
  trap->Close();
}

// The same through the handle's closure and the trap's closure.
TEST(TrapTest, NoEventAfterHandleOrTrapClosedEvenIfQueuedBefore) {
  for (bool close_trap : {false, true}) {
    auto h1 = std::make_shared<FakeHandle>(kReadableState);
    auto h2 = std::make_shared<FakeHandle>(kIdle);
    bool closed = false;
    int late_events = 0;
    int cancelled = 0;
    std::shared_ptr<Trap> trap;
    trap = Trap::Create([&](const TrapEvent& e) {
      if (e.result == TrapEventResult::kCancelled) {
        ++cancelled;
        return;
      }
      if (closed) ++late_events;
      if (e.trigger_context == 1) {
        h1->SetState(kIdle);
        ASSERT_TRUE(trap->Arm(nullptr).ok());
        h2->SetState(kReadableState);
        if (close_trap) {
          trap->Close();
        } else {
          h2->Close();
        }
        closed = true;
      }
    });
    ASSERT_TRUE(trap->AddTrigger(h2, kSignalReadable, TriggerCondition::kSignalsSatisfied, 2).ok());
    ASSERT_TRUE(trap->Arm(nullptr).ok());
    ASSERT_TRUE(trap->AddTrigger(h1, kSignalReadable, TriggerCondition::kSignalsSatisfied, 1).ok());
    EXPECT_EQ(late_events, 0) << (close_trap ? "trap" : "handle") << " closed";
    EXPECT_EQ(cancelled, close_trap ? 2 : 1);
    trap->Close();
  }
}

// Across threads: while one thread runs the handler for trigger 1, another
// removes trigger 2 whose event is queued. When RemoveTrigger returns, no OK
// for trigger 2 may still come.
TEST(TrapTest, RemoveTriggerFromAnotherThreadDropsItsQueuedEvent) {
  auto h1 = std::make_shared<FakeHandle>(kIdle);
  auto h2 = std::make_shared<FakeHandle>(kIdle);
  std::atomic<bool> in_handler{false};
  std::atomic<bool> release{false};
  std::atomic<bool> removed{false};
  std::atomic<int> late_events{0};
  auto trap = Trap::Create([&](const TrapEvent& e) {
    if (e.result == TrapEventResult::kCancelled) return;
    if (e.trigger_context == 2 && removed.load()) late_events.fetch_add(1);
    if (e.trigger_context == 1) {
      in_handler.store(true);
      while (!release.load()) std::this_thread::yield();
    }
  });
  ASSERT_TRUE(trap->AddTrigger(h1, kSignalReadable, TriggerCondition::kSignalsSatisfied, 1).ok());
  ASSERT_TRUE(trap->AddTrigger(h2, kSignalReadable, TriggerCondition::kSignalsSatisfied, 2).ok());
  ASSERT_TRUE(trap->Arm(nullptr).ok());
  std::thread dispatcher([&] { h1->SetState(kReadableState); });
  while (!in_handler.load()) std::this_thread::yield();
  // Trigger 2's event is queued behind the running handler (re-armed from
  // here: the trap is not armed while its only event runs).
  h1->SetState(kIdle);
  ASSERT_TRUE(trap->Arm(nullptr).ok());
  h2->SetState(kReadableState);
  ASSERT_TRUE(trap->RemoveTrigger(2).ok());
  removed.store(true);
  release.store(true);
  dispatcher.join();
  EXPECT_EQ(late_events.load(), 0);
  trap->Close();
}

// Issue 12 item 5b: with room for one blocking event, Arm rotates among the
// ready triggers so that none starves.
TEST(TrapTest, ArmRotatesAmongReadyTriggers) {
  Recorder rec;
  auto trap = Trap::Create(rec.handler());
  constexpr int kTriggers = 200;
  std::vector<std::shared_ptr<FakeHandle>> handles;
  for (int i = 0; i < kTriggers; ++i) {
    handles.push_back(std::make_shared<FakeHandle>(kReadableState));
    ASSERT_TRUE(trap->AddTrigger(handles.back(), kSignalReadable,
                                 TriggerCondition::kSignalsSatisfied, i)
                    .ok());
  }
  std::map<uintptr_t, int> reported;
  std::vector<TrapEvent> blocking;
  for (int arm = 0; arm < 100 * kTriggers; ++arm) {
    Status s = trap->Arm(&blocking, /*max_events=*/1);
    ASSERT_EQ(s.error().code(), ErrorCode::kFailedPrecondition);
    ASSERT_EQ(blocking.size(), 1u);
    ++reported[blocking[0].trigger_context];
  }
  ASSERT_EQ(reported.size(), static_cast<size_t>(kTriggers));
  for (const auto& [context, count] : reported) EXPECT_EQ(count, 100) << context;
  // Unlimited: every ready trigger, in rotated order (all distinct).
  ASSERT_FALSE(trap->Arm(&blocking).ok());
  EXPECT_EQ(blocking.size(), static_cast<size_t>(kTriggers));
  std::set<uintptr_t> distinct;
  for (const TrapEvent& e : blocking) distinct.insert(e.trigger_context);
  EXPECT_EQ(distinct.size(), static_cast<size_t>(kTriggers));
  trap->Close();
}

// Issue 12 item 5c (Mojo's TriggersRemoveEachOtherWithinEventHandlers): each
// of two traps' handlers removes the other trap's trigger and then waits for
// the other side. If the removal ran the other trap's CANCELLED nested in the
// running handler, thread 1 would hold trap B's dispatch while waiting for
// trap A's CANCELLED, which only thread 1 can deliver: deadlock. Handlers of
// two traps must never nest on one thread. (Timed waits: a deadlock fails
// instead of hanging.)
TEST(TrapTest, HandlersOfTwoTrapsRemovingEachOthersTriggersDoNotDeadlock) {
  struct Flag {
    Mutex mu;
    CondVar cv;
    bool set ABSL_GUARDED_BY(mu) = false;
    void Set() {
      MutexLock lock(&mu);
      set = true;
      cv.SignalAll();
    }
    bool Wait() {
      MutexLock lock(&mu);
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (!set) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        cv.WaitFor(&mu, std::chrono::milliseconds(50));
      }
      return true;
    }
  };
  Flag a_notified, b_notified, a_cancelled, b_cancelled, b_done;
  std::atomic<int> timeouts{0};
  auto ha = std::make_shared<FakeHandle>(kIdle);
  auto hb = std::make_shared<FakeHandle>(kIdle);
  std::shared_ptr<Trap> trap_a, trap_b;
  trap_a = Trap::Create([&](const TrapEvent& e) {
    if (e.result == TrapEventResult::kCancelled) {
      a_cancelled.Set();
      if (!b_cancelled.Wait()) timeouts.fetch_add(1);
      return;
    }
    a_notified.Set();
    if (!b_notified.Wait()) timeouts.fetch_add(1);
    // Let B's handler finish and give its dispatch back, the order in which
    // a nested delivery deadlocks.
    if (!b_done.Wait()) timeouts.fetch_add(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_TRUE(trap_b->RemoveTrigger(2).ok());
    trap_b->Close();
  });
  trap_b = Trap::Create([&](const TrapEvent& e) {
    if (e.result == TrapEventResult::kCancelled) {
      b_cancelled.Set();
      if (!a_cancelled.Wait()) timeouts.fetch_add(1);
      return;
    }
    b_notified.Set();
    if (!a_notified.Wait()) timeouts.fetch_add(1);
    EXPECT_TRUE(trap_a->RemoveTrigger(1).ok());
    trap_a->Close();
    b_done.Set();
  });
  ASSERT_TRUE(trap_a->AddTrigger(ha, kSignalReadable, TriggerCondition::kSignalsSatisfied, 1).ok());
  ASSERT_TRUE(trap_a->Arm(nullptr).ok());
  ASSERT_TRUE(trap_b->AddTrigger(hb, kSignalReadable, TriggerCondition::kSignalsSatisfied, 2).ok());
  ASSERT_TRUE(trap_b->Arm(nullptr).ok());
  std::thread runner([&] { ha->SetState(kReadableState); });
  if (!a_notified.Wait()) timeouts.fetch_add(1);
  hb->SetState(kReadableState);
  if (!a_cancelled.Wait()) timeouts.fetch_add(1);
  if (!b_cancelled.Wait()) timeouts.fetch_add(1);
  runner.join();
  EXPECT_EQ(timeouts.load(), 0) << "the two handlers deadlocked";
}

// The same rule on one thread, deterministically: trap B's CANCELLED, caused
// by trap A's handler, runs after A's handler returned, not inside it.
TEST(TrapTest, EventsCausedInAHandlerForAnotherTrapRunAfterItReturns) {
  auto ha = std::make_shared<FakeHandle>(kIdle);
  auto hb = std::make_shared<FakeHandle>(kIdle);
  int depth = 0;
  int max_depth = 0;
  std::vector<std::string> order;
  std::shared_ptr<Trap> trap_a, trap_b;
  trap_b = Trap::Create([&](const TrapEvent& e) {
    max_depth = std::max(max_depth, ++depth);
    order.push_back(e.result == TrapEventResult::kCancelled ? "b-cancel" : "b");
    --depth;
  });
  trap_a = Trap::Create([&](const TrapEvent& e) {
    max_depth = std::max(max_depth, ++depth);
    if (e.result == TrapEventResult::kOk) {
      order.push_back("a");
      EXPECT_TRUE(trap_b->RemoveTrigger(2).ok());
      hb->SetState(kReadableState);  // nothing: B's trigger is gone
      order.push_back("a-end");
    }
    --depth;
  });
  ASSERT_TRUE(trap_b->AddTrigger(hb, kSignalReadable, TriggerCondition::kSignalsSatisfied, 2).ok());
  ASSERT_TRUE(trap_a->AddTrigger(ha, kSignalReadable, TriggerCondition::kSignalsSatisfied, 1).ok());
  ASSERT_TRUE(trap_a->Arm(nullptr).ok());
  ha->SetState(kReadableState);
  EXPECT_EQ(max_depth, 1) << "trap B's handler ran inside trap A's";
  EXPECT_EQ(order, (std::vector<std::string>{"a", "a-end", "b-cancel"}));
  trap_a->Close();
  trap_b->Close();
}


// ---- Pollable traps (issue 15 item 4) --------------------------------------

bool Readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

std::shared_ptr<Trap> MakePollable(Trap::Handler handler) {
  auto trap = Trap::Create(std::move(handler), Trap::Delivery::kPollable);
  MOAT_ASSERT(trap.ok(), trap.error().ToString());
  return *trap;
}

TEST(PollableTrapTest, HandlerRunsOnlyOnTheDispatchingThread) {
  Mutex mu;
  std::vector<std::thread::id> threads;
  auto trap = MakePollable([&](const TrapEvent&) {
    MutexLock lock(&mu);
    threads.push_back(std::this_thread::get_id());
  });
  auto h = std::make_shared<FakeHandle>(kIdle);
  ASSERT_TRUE(trap->AddTrigger(h, kSignalReadable, TriggerCondition::kSignalsSatisfied, 1).ok());
  ASSERT_TRUE(trap->Arm(nullptr).ok());
  Result<int> fd = trap->descriptor();
  ASSERT_TRUE(fd.ok());
  EXPECT_FALSE(Readable(*fd));
  // The event is caused on another thread (as an IO thread would): it is
  // queued there, not delivered.
  std::thread([&] { h->SetState(kReadableState); }).join();
  {
    MutexLock lock(&mu);
    EXPECT_TRUE(threads.empty());
  }
  EXPECT_TRUE(Readable(*fd));
  EXPECT_TRUE(Readable(*fd)) << "level-triggered: readable until dispatched";
  Result<size_t> n = trap->Dispatch(SIZE_MAX);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1u);
  EXPECT_FALSE(Readable(*fd));
  MutexLock lock(&mu);
  ASSERT_EQ(threads.size(), 1u);
  EXPECT_EQ(threads[0], std::this_thread::get_id());
}

TEST(PollableTrapTest, DispatchIsBoundedAndTheRestKeepsTheDescriptorReadable) {
  Recorder rec;
  auto trap = MakePollable(rec.handler());
  auto a = std::make_shared<FakeHandle>(kIdle);
  auto b = std::make_shared<FakeHandle>(kIdle);
  ASSERT_TRUE(trap->AddTrigger(a, kSignalReadable, TriggerCondition::kSignalsSatisfied, 1).ok());
  ASSERT_TRUE(trap->AddTrigger(b, kSignalReadable, TriggerCondition::kSignalsSatisfied, 2).ok());
  const int fd = *trap->descriptor();
  // Removals outside a dispatch queue their CANCELLED, as any event.
  ASSERT_TRUE(trap->RemoveTrigger(1).ok());
  ASSERT_TRUE(trap->RemoveTrigger(2).ok());
  EXPECT_TRUE(rec.Take().empty());
  EXPECT_TRUE(Readable(fd));
  EXPECT_EQ(*trap->Dispatch(1), 1u);
  EXPECT_TRUE(Readable(fd));
  EXPECT_EQ(*trap->Dispatch(10), 1u);
  EXPECT_FALSE(Readable(fd));
  EXPECT_EQ(*trap->Dispatch(10), 0u);
  auto events = rec.Take();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].trigger_context, 1u);
  EXPECT_EQ(events[0].result, TrapEventResult::kCancelled);
  EXPECT_EQ(events[1].trigger_context, 2u);
}

TEST(PollableTrapTest, StaleEventIsDroppedAndCancelledStaysLast) {
  Recorder rec;
  auto trap = MakePollable(rec.handler());
  auto h = std::make_shared<FakeHandle>(kIdle);
  ASSERT_TRUE(trap->AddTrigger(h, kSignalReadable, TriggerCondition::kSignalsSatisfied, 5).ok());
  ASSERT_TRUE(trap->Arm(nullptr).ok());
  h->SetState(kReadableState);  // queued OK
  ASSERT_TRUE(trap->RemoveTrigger(5).ok());  // OK now stale, CANCELLED queued
  EXPECT_EQ(*trap->Dispatch(SIZE_MAX), 1u);
  auto events = rec.Take();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].result, TrapEventResult::kCancelled);
  EXPECT_FALSE(Readable(*trap->descriptor()));
}

TEST(PollableTrapTest, HandlerRemovingItsTriggerGetsCancelledInTheSameDispatch) {
  std::vector<TrapEvent> events;
  std::shared_ptr<Trap> trap;
  trap = MakePollable([&](const TrapEvent& e) {
    events.push_back(e);
    if (e.result == TrapEventResult::kOk) ASSERT_TRUE(trap->RemoveTrigger(3).ok());
  });
  auto h = std::make_shared<FakeHandle>(kIdle);
  ASSERT_TRUE(trap->AddTrigger(h, kSignalReadable, TriggerCondition::kSignalsSatisfied, 3).ok());
  ASSERT_TRUE(trap->Arm(nullptr).ok());
  h->SetState(kReadableState);
  EXPECT_TRUE(events.empty());
  EXPECT_EQ(*trap->Dispatch(SIZE_MAX), 2u);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].result, TrapEventResult::kOk);
  EXPECT_EQ(events[1].result, TrapEventResult::kCancelled);
  trap->Close();
  trap.reset();
}

TEST(PollableTrapTest, CloseDeliversPendingCancelledAndClosesTheDescriptor) {
  Recorder rec;
  auto trap = MakePollable(rec.handler());
  auto h = std::make_shared<FakeHandle>(kIdle);
  ASSERT_TRUE(trap->AddTrigger(h, kSignalReadable, TriggerCondition::kSignalsSatisfied, 9).ok());
  const int fd = *trap->descriptor();
  trap->Close();
  auto events = rec.Take();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].result, TrapEventResult::kCancelled);
  EXPECT_EQ(trap->descriptor().error().code(), ErrorCode::kClosed);
  EXPECT_EQ(trap->Dispatch(1).error().code(), ErrorCode::kClosed);
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1) << "the eventfd is closed by Close()";
}

TEST(PollableTrapTest, DispatchIsRefusedForOrdinaryTrapsAndInsideHandlers) {
  Recorder rec;
  auto ordinary = Trap::Create(rec.handler());
  EXPECT_EQ(ordinary->Dispatch(1).error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(ordinary->descriptor().error().code(), ErrorCode::kFailedPrecondition);

  std::optional<ErrorCode> inside;
  auto other = MakePollable([&](const TrapEvent&) {});
  auto h = std::make_shared<FakeHandle>(kIdle);
  ASSERT_TRUE(other->AddTrigger(h, kSignalReadable, TriggerCondition::kSignalsSatisfied, 1).ok());
  ASSERT_TRUE(other->RemoveTrigger(1).ok());  // `other` has an event pending
  // A handler calling Dispatch of another pollable trap: refused, never nested.
  auto nesting = MakePollable([&](const TrapEvent&) {
    Result<size_t> n = other->Dispatch(1);
    inside = n.ok() ? std::nullopt : std::optional<ErrorCode>(n.error().code());
  });
  ASSERT_TRUE(nesting->AddTrigger(h, kSignalReadable, TriggerCondition::kSignalsSatisfied, 1).ok());
  ASSERT_TRUE(nesting->RemoveTrigger(1).ok());
  EXPECT_EQ(*nesting->Dispatch(1), 1u);
  EXPECT_EQ(inside, ErrorCode::kFailedPrecondition);
  EXPECT_EQ(*other->Dispatch(1), 1u) << "the refused dispatch left the event pending";
}


TEST(PollableTrapTest, HandlerClosingTheTrapGetsEveryCancelledDespiteTheBudget) {
  std::vector<TrapEvent> events;
  std::shared_ptr<Trap> trap;
  trap = MakePollable([&](const TrapEvent& e) {
    events.push_back(e);
    if (events.size() == 1) trap->Close();
  });
  auto a = std::make_shared<FakeHandle>(kIdle);
  auto b = std::make_shared<FakeHandle>(kIdle);
  auto c = std::make_shared<FakeHandle>(kIdle);
  ASSERT_TRUE(trap->AddTrigger(a, kSignalReadable, TriggerCondition::kSignalsSatisfied, 1).ok());
  ASSERT_TRUE(trap->AddTrigger(b, kSignalReadable, TriggerCondition::kSignalsSatisfied, 2).ok());
  ASSERT_TRUE(trap->AddTrigger(c, kSignalReadable, TriggerCondition::kSignalsSatisfied, 3).ok());
  ASSERT_TRUE(trap->RemoveTrigger(1).ok());  // one pending CANCELLED
  // Budget 1: the handler closes the trap; the CANCELLED of 2 and 3 can only
  // come from this call (a closed trap cannot be dispatched any more).
  EXPECT_EQ(*trap->Dispatch(1), 3u);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[1].trigger_context, 2u);
  EXPECT_EQ(events[1].result, TrapEventResult::kCancelled);
  EXPECT_EQ(events[2].trigger_context, 3u);
  trap.reset();
}


TEST(PollableTrapTest, CancelledQueuedBeforeAHandlerClosedTheTrapIsNotStranded) {
  std::vector<TrapEvent> events;
  std::shared_ptr<Trap> trap;
  trap = MakePollable([&](const TrapEvent& e) {
    events.push_back(e);
    if (events.size() == 1) trap->Close();
  });
  auto a = std::make_shared<FakeHandle>(kIdle);
  auto b = std::make_shared<FakeHandle>(kIdle);
  ASSERT_TRUE(trap->AddTrigger(a, kSignalReadable, TriggerCondition::kSignalsSatisfied, 1).ok());
  ASSERT_TRUE(trap->AddTrigger(b, kSignalReadable, TriggerCondition::kSignalsSatisfied, 2).ok());
  ASSERT_TRUE(trap->RemoveTrigger(1).ok());
  ASSERT_TRUE(trap->RemoveTrigger(2).ok());  // two CANCELLED queued, no trigger left
  // Budget 1, but the handler closes the trap: the second CANCELLED can only
  // come from this call.
  EXPECT_EQ(*trap->Dispatch(1), 2u);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].trigger_context, 2u);
  EXPECT_EQ(events[1].result, TrapEventResult::kCancelled);
  trap.reset();
}

}  // namespace
}  // namespace moat::system
