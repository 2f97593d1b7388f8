// The C API from C++: the cases a C test cannot express well (death tests for
// sending-side programmer errors, transit through the API, thread use).
#include "core/system/moat.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
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

}  // namespace
