// The C API from C++: the cases a C test cannot express well (death tests for
// sending-side programmer errors, transit through the API, thread use).
#include "core/system/moat.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "core/system/core.h"

namespace {

TEST(MoatApiDeathTest, TooManyDescriptorsIsAProgrammerError) {
  MoatHandle a, b;
  ASSERT_EQ(MoatCreateMessagePipe(nullptr, &a, &b), MOAT_RESULT_OK);
  std::vector<int> fds(129, 0);
  EXPECT_DEATH(MoatWriteMessage(a, nullptr, 0, nullptr, 0, fds.data(), 129, nullptr),
               "exceed MAX_MESSAGE_FD_COUNT 128");
}

TEST(MoatApiDeathTest, InvalidDescriptorIsAProgrammerError) {
  MoatHandle a, b;
  ASSERT_EQ(MoatCreateMessagePipe(nullptr, &a, &b), MOAT_RESULT_OK);
  int fds[1] = {-1};
  EXPECT_DEATH(MoatWriteMessage(a, nullptr, 0, nullptr, 0, fds, 1, nullptr),
               "is not an open descriptor");
}

TEST(MoatApiDeathTest, OverLimitPayloadIsAProgrammerError) {
  MoatHandle a, b;
  ASSERT_EQ(MoatCreateMessagePipe(nullptr, &a, &b), MOAT_RESULT_OK);
  static const char byte = 0;
  EXPECT_DEATH(MoatWriteMessage(a, &byte, (64u << 20) + 1, nullptr, 0, nullptr, 0, nullptr),
               "exceed MAX_MESSAGE_PAYLOAD_SIZE");
}

TEST(MoatApiTest, DescriptorsAreConsumedEvenOnFailure) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  int fds[1] = {p[1]};
  EXPECT_EQ(MoatWriteMessage(MOAT_HANDLE_INVALID, nullptr, 0, nullptr, 0, fds, 1, nullptr),
            MOAT_RESULT_INVALID_ARGUMENT);
  EXPECT_EQ(::fcntl(p[1], F_GETFD), -1) << "the descriptor was not closed";
  ::close(p[0]);
}

TEST(MoatApiTest, HandleInTransitIsBusy) {
  MoatHandle a, b;
  ASSERT_EQ(MoatCreateMessagePipe(nullptr, &a, &b), MOAT_RESULT_OK);
  auto ep = moat::system::Core::ForProcess().GetEndpoint(a);
  ASSERT_TRUE(ep.ok());
  ASSERT_TRUE((*ep)->BeginTransit().ok());
  EXPECT_EQ(MoatWriteMessage(a, "x", 1, nullptr, 0, nullptr, 0, nullptr), MOAT_RESULT_BUSY);
  EXPECT_EQ(MoatClose(a), MOAT_RESULT_BUSY);
  EXPECT_NE(std::strstr(MoatGetLastErrorMessage(), "in transit"), nullptr);
  (*ep)->CancelTransit();
  EXPECT_EQ(MoatClose(a), MOAT_RESULT_OK);
  EXPECT_EQ(MoatClose(b), MOAT_RESULT_OK);
}

std::atomic<int> g_ready{0};
void OnReadable(const MoatTrapEvent* e) {
  if (e->result == MOAT_RESULT_OK) g_ready.fetch_add(1);
}

// Writers on several threads, one reader driven by a trap: every message
// arrives exactly once. Run under TSan for the locking.
TEST(MoatApiTest, ConcurrentWritersAndTrapDrivenReader) {
  MoatHandle a, b, trap;
  ASSERT_EQ(MoatCreateMessagePipe(nullptr, &a, &b), MOAT_RESULT_OK);
  ASSERT_EQ(MoatCreateTrap(OnReadable, nullptr, &trap), MOAT_RESULT_OK);
  ASSERT_EQ(MoatAddTrigger(trap, b, MOAT_HANDLE_SIGNAL_READABLE,
                           MOAT_TRIGGER_CONDITION_SIGNALS_SATISFIED, 1, nullptr),
            MOAT_RESULT_OK);
  constexpr int kThreads = 4, kPerThread = 200;
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([a] {
      for (int i = 0; i < kPerThread; ++i) {
        ASSERT_EQ(MoatWriteMessage(a, &i, sizeof(i), nullptr, 0, nullptr, 0, nullptr),
                  MOAT_RESULT_OK);
      }
    });
  }
  int received = 0;
  while (received < kThreads * kPerThread) {
    int value;
    uint32_t n = sizeof(value);
    MoatResult r = MoatReadMessage(b, nullptr, &value, &n, nullptr, nullptr, nullptr, nullptr);
    if (r == MOAT_RESULT_OK) {
      ++received;
      continue;
    }
    ASSERT_EQ(r, MOAT_RESULT_SHOULD_WAIT);
    // Event-driven wait: arm, and if nothing is readable yet, yield until the trap fires.
    int before = g_ready.load();
    if (MoatArmTrap(trap, nullptr, nullptr, nullptr) == MOAT_RESULT_OK) {
      // Bounded so that a lost wakeup fails with a diagnosis instead of hanging.
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (g_ready.load() == before) {
        if (std::chrono::steady_clock::now() > deadline) {
          MoatHandleSignalsState st{sizeof(st), 0, 0};
          MoatQueryHandleSignalsState(b, &st);
          FAIL() << "lost wakeup: trap armed, no event; received " << received
                 << " satisfied=" << st.satisfied_signals;
        }
        std::this_thread::yield();
      }
    }
  }
  for (auto& w : writers) w.join();
  EXPECT_EQ(received, kThreads * kPerThread);
  EXPECT_EQ(MoatClose(trap), MOAT_RESULT_OK);
  EXPECT_EQ(MoatClose(a), MOAT_RESULT_OK);
  EXPECT_EQ(MoatClose(b), MOAT_RESULT_OK);
}

// Issue 12 item 5b (Mojo's ArmFailureCirculation, scaled up): 200 ready
// triggers, 20,000 arms with room for one blocking event: every trigger is
// reported, each equally often.
void IgnoreEvent(const MoatTrapEvent*) {}

TEST(MoatApiTest, ArmWithRoomForOneEventRotatesAmongReadyTriggers) {
  constexpr uint32_t kTriggers = 200;
  constexpr int kArms = 20000;
  std::vector<MoatHandle> ends;
  MoatHandle trap;
  ASSERT_EQ(MoatCreateTrap(IgnoreEvent, nullptr, &trap), MOAT_RESULT_OK);
  for (uint32_t i = 0; i < kTriggers / 2; ++i) {
    MoatHandle a, b;
    ASSERT_EQ(MoatCreateMessagePipe(nullptr, &a, &b), MOAT_RESULT_OK);
    ASSERT_EQ(MoatWriteMessage(a, "hey", 3, nullptr, 0, nullptr, 0, nullptr), MOAT_RESULT_OK);
    ASSERT_EQ(MoatWriteMessage(b, "hay", 3, nullptr, 0, nullptr, 0, nullptr), MOAT_RESULT_OK);
    ends.push_back(a);
    ends.push_back(b);
  }
  for (uint32_t i = 0; i < kTriggers; ++i) {
    ASSERT_EQ(MoatAddTrigger(trap, ends[i], MOAT_HANDLE_SIGNAL_READABLE,
                             MOAT_TRIGGER_CONDITION_SIGNALS_SATISFIED, i, nullptr),
              MOAT_RESULT_OK);
  }
  std::vector<int> reported(kTriggers, 0);
  for (int arm = 0; arm < kArms; ++arm) {
    uint32_t num = 1;
    MoatTrapEvent event{};
    event.struct_size = sizeof(event);
    ASSERT_EQ(MoatArmTrap(trap, nullptr, &num, &event), MOAT_RESULT_FAILED_PRECONDITION);
    ASSERT_EQ(num, 1u);
    ASSERT_EQ(event.result, MOAT_RESULT_OK);
    ASSERT_LT(event.trigger_context, kTriggers);
    ++reported[event.trigger_context];
  }
  int never = 0;
  for (uint32_t i = 0; i < kTriggers; ++i) never += reported[i] == 0;
  EXPECT_EQ(never, 0) << "triggers never reported (trigger 0 reported " << reported[0]
                      << " times)";
  for (uint32_t i = 0; i < kTriggers; ++i) EXPECT_EQ(reported[i], kArms / int{kTriggers}) << i;
  EXPECT_EQ(MoatClose(trap), MOAT_RESULT_OK);
  for (MoatHandle h : ends) EXPECT_EQ(MoatClose(h), MOAT_RESULT_OK);
}

// Issue 12 item 5c: Mojo's TriggersRemoveEachOtherWithinEventHandlers over
// the C API. Two traps, each watching one end of a pipe; each handler removes
// the other trap's trigger, and each CANCELLED handler waits for the other's.
// Timed waits turn a deadlock into a failure.
struct Flag {
  std::mutex mu;
  std::condition_variable cv;
  bool set = false;
  void Set() {
    std::lock_guard<std::mutex> lock(mu);
    set = true;
    cv.notify_all();
  }
  bool Wait() {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(10), [&] { return set; });
  }
};

struct RemoveEachOther {
  MoatHandle a = 0, b = 0, a_trap = 0, b_trap = 0;
  Flag a_notified, b_notified, a_cancelled, b_cancelled, b_done;
  std::atomic<int> timeouts{0};
  std::atomic<int> failures{0};
};
RemoveEachOther* g_reo = nullptr;

void Expect(bool ok) {
  if (!ok) g_reo->failures.fetch_add(1);
}
void WaitOrCount(Flag& f) {
  if (!f.Wait()) g_reo->timeouts.fetch_add(1);
}

void OnA(const MoatTrapEvent* e) {
  RemoveEachOther& t = *g_reo;
  if (e->result == MOAT_RESULT_CANCELLED) {
    t.a_cancelled.Set();
    WaitOrCount(t.b_cancelled);
    return;
  }
  char buf[8];
  uint32_t n = sizeof(buf);
  Expect(MoatReadMessage(t.a, nullptr, buf, &n, nullptr, nullptr, nullptr, nullptr) ==
         MOAT_RESULT_OK);
  t.a_notified.Set();
  WaitOrCount(t.b_notified);
  // B's handler finished and gave its trap back: the order in which a
  // nested delivery of B's CANCELLED here deadlocks.
  WaitOrCount(t.b_done);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  Expect(MoatRemoveTrigger(t.b_trap, 2, nullptr) == MOAT_RESULT_OK);
  Expect(MoatClose(t.b_trap) == MOAT_RESULT_OK);
}

void OnB(const MoatTrapEvent* e) {
  RemoveEachOther& t = *g_reo;
  if (e->result == MOAT_RESULT_CANCELLED) {
    t.b_cancelled.Set();
    WaitOrCount(t.a_cancelled);
    return;
  }
  char buf[8];
  uint32_t n = sizeof(buf);
  Expect(MoatReadMessage(t.b, nullptr, buf, &n, nullptr, nullptr, nullptr, nullptr) ==
         MOAT_RESULT_OK);
  t.b_notified.Set();
  WaitOrCount(t.a_notified);
  Expect(MoatRemoveTrigger(t.a_trap, 1, nullptr) == MOAT_RESULT_OK);
  Expect(MoatClose(t.a_trap) == MOAT_RESULT_OK);
  t.b_done.Set();
}

TEST(MoatApiTest, TriggersRemoveEachOtherWithinEventHandlers) {
  RemoveEachOther t;
  g_reo = &t;
  ASSERT_EQ(MoatCreateMessagePipe(nullptr, &t.a, &t.b), MOAT_RESULT_OK);
  ASSERT_EQ(MoatCreateTrap(OnA, nullptr, &t.a_trap), MOAT_RESULT_OK);
  ASSERT_EQ(MoatCreateTrap(OnB, nullptr, &t.b_trap), MOAT_RESULT_OK);
  ASSERT_EQ(MoatAddTrigger(t.a_trap, t.a, MOAT_HANDLE_SIGNAL_READABLE,
                           MOAT_TRIGGER_CONDITION_SIGNALS_SATISFIED, 1, nullptr),
            MOAT_RESULT_OK);
  ASSERT_EQ(MoatArmTrap(t.a_trap, nullptr, nullptr, nullptr), MOAT_RESULT_OK);
  ASSERT_EQ(MoatAddTrigger(t.b_trap, t.b, MOAT_HANDLE_SIGNAL_READABLE,
                           MOAT_TRIGGER_CONDITION_SIGNALS_SATISFIED, 2, nullptr),
            MOAT_RESULT_OK);
  ASSERT_EQ(MoatArmTrap(t.b_trap, nullptr, nullptr, nullptr), MOAT_RESULT_OK);
  std::thread runner([&] {
    Expect(MoatWriteMessage(t.b, "hey a", 5, nullptr, 0, nullptr, 0, nullptr) == MOAT_RESULT_OK);
  });
  WaitOrCount(t.a_notified);
  EXPECT_EQ(MoatWriteMessage(t.a, "hey b", 5, nullptr, 0, nullptr, 0, nullptr), MOAT_RESULT_OK);
  WaitOrCount(t.a_cancelled);
  WaitOrCount(t.b_cancelled);
  runner.join();
  EXPECT_EQ(t.timeouts.load(), 0) << "the handlers deadlocked";
  EXPECT_EQ(t.failures.load(), 0);
  EXPECT_EQ(MoatClose(t.a), MOAT_RESULT_OK);
  EXPECT_EQ(MoatClose(t.b), MOAT_RESULT_OK);
  g_reo = nullptr;
}


// ---- Pollable traps: dispatch on the embedder's thread (issue 15 item 4) ----

std::atomic<int> g_poll_events{0};
std::atomic<bool> g_poll_wrong_thread{false};
std::thread::id g_poll_loop_thread;

void OnPollableEvent(const MoatTrapEvent* event) {
  if (std::this_thread::get_id() != g_poll_loop_thread) g_poll_wrong_thread = true;
  if (event->result == MOAT_RESULT_OK) g_poll_events.fetch_add(1);
}

TEST(MoatApiTest, PollableTrapDeliversOnlyInTheEmbeddersEpollLoop) {
  g_poll_loop_thread = std::this_thread::get_id();
  MoatHandle a, b, trap;
  ASSERT_EQ(MoatCreateMessagePipe(nullptr, &a, &b), MOAT_RESULT_OK);
  MoatCreateTrapOptions options = {sizeof(options), MOAT_CREATE_TRAP_FLAG_POLLABLE};
  ASSERT_EQ(MoatCreateTrap(&OnPollableEvent, &options, &trap), MOAT_RESULT_OK);
  ASSERT_EQ(MoatAddTrigger(trap, b, MOAT_HANDLE_SIGNAL_READABLE,
                           MOAT_TRIGGER_CONDITION_SIGNALS_SATISFIED, 1, nullptr),
            MOAT_RESULT_OK);
  int fd = -1;
  ASSERT_EQ(MoatGetTrapDescriptor(trap, &fd), MOAT_RESULT_OK);
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  ASSERT_GE(ep, 0);
  epoll_event ev{};
  ev.events = EPOLLIN;  // level-triggered
  ASSERT_EQ(::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);

  constexpr int kMessages = 50;
  uint32_t no_events = 0;
  // Armed before the writer starts, so at least the first message is an event.
  ASSERT_EQ(MoatArmTrap(trap, nullptr, &no_events, nullptr), MOAT_RESULT_OK);
  std::thread writer([&] {
    for (int i = 0; i < kMessages; ++i) {
      ASSERT_EQ(MoatWriteMessage(a, "x", 1, nullptr, 0, nullptr, 0, nullptr), MOAT_RESULT_OK);
    }
  });
  int read = 0;
  bool armed = true;
  int dispatched = 0;
  while (read < kMessages) {
    if (armed) {
      epoll_event out{};
      ASSERT_EQ(::epoll_wait(ep, &out, 1, 10000), 1) << "no event within 10 s";
      uint32_t n = 0;
      ASSERT_EQ(MoatDispatchTrapEvents(trap, nullptr, 16, &n), MOAT_RESULT_OK);
      dispatched += static_cast<int>(n);
    }
    char byte;
    uint32_t nb = 1, nh = 0, nf = 0;
    while (MoatReadMessage(b, nullptr, &byte, &nb, nullptr, &nh, nullptr, &nf) == MOAT_RESULT_OK) {
      ++read;
      nb = 1;
    }
    // FAILED_PRECONDITION: more arrived meanwhile, read again.
    if (read < kMessages) armed = MoatArmTrap(trap, nullptr, &no_events, nullptr) == MOAT_RESULT_OK;
  }
  writer.join();
  EXPECT_GE(g_poll_events.load(), 1);
  EXPECT_EQ(dispatched, g_poll_events.load());
  EXPECT_FALSE(g_poll_wrong_thread.load()) << "a handler ran off the epoll thread";
  // Nothing pending: the descriptor is quiet (level-triggered, drained).
  epoll_event out{};
  EXPECT_EQ(::epoll_wait(ep, &out, 1, 0), 0);

  // Ordinary traps have no descriptor; unknown flags are refused.
  MoatHandle ordinary;
  ASSERT_EQ(MoatCreateTrap(&OnPollableEvent, nullptr, &ordinary), MOAT_RESULT_OK);
  int none = -1;
  EXPECT_EQ(MoatGetTrapDescriptor(ordinary, &none), MOAT_RESULT_FAILED_PRECONDITION);
  EXPECT_EQ(MoatDispatchTrapEvents(ordinary, nullptr, 1, nullptr), MOAT_RESULT_FAILED_PRECONDITION);
  MoatCreateTrapOptions unknown = {sizeof(unknown), 2};
  MoatHandle refused;
  EXPECT_EQ(MoatCreateTrap(&OnPollableEvent, &unknown, &refused), MOAT_RESULT_UNIMPLEMENTED);

  ASSERT_EQ(::epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr), 0);
  ::close(ep);
  EXPECT_EQ(MoatClose(trap), MOAT_RESULT_OK);
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1) << "MoatClose closes the trap's descriptor";
  EXPECT_EQ(MoatClose(ordinary), MOAT_RESULT_OK);
  EXPECT_EQ(MoatClose(a), MOAT_RESULT_OK);
  EXPECT_EQ(MoatClose(b), MOAT_RESULT_OK);
}

}  // namespace
