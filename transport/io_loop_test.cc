// IoLoop: many transports on one IO thread (issue 15 item 4). The whole
// transport suites also run on a shared loop (*_on_shared_loop targets);
// these tests cover what only a shared loop has: fairness between peers,
// one transport destroyed while the loop serves it or from another
// transport's handler, and sends from the loop thread never waiting.
#include "transport/io_loop.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "core/internal/little_endian.h"
#include "core/mutex.h"
#include "transport/testing/raw_peer.h"
#include "transport/transport.h"

namespace moat::transport {
namespace {

using testing::RawFrame;
using testing::SendRaw;
using testing::WriteAll;

constexpr auto kHangGuard = std::chrono::seconds(60);

std::shared_ptr<IoLoop> NewLoop(IoLoop::Options options = {}) {
  auto loop = IoLoop::Create(options);
  EXPECT_TRUE(loop.ok());
  return *loop;
}

std::vector<uint8_t> SeqPayload(uint64_t seq) {
  std::vector<uint8_t> p(8);
  ::moat::internal::StoreLE64(p.data(), seq);
  return p;
}
uint64_t Seq(std::span<const uint8_t> p) {
  return p.size() == 8 ? ::moat::internal::LoadLE64(p.data()) : UINT64_MAX;
}

// A latch the loop thread can wait on (inside a handler) until the test opens it.
class Gate {
 public:
  void Enter() {
    MutexLock lock(&mu_);
    entered_ = true;
    cv_.SignalAll();
    while (!open_) cv_.Wait(&mu_);
  }
  void WaitEntered() {
    MutexLock lock(&mu_);
    while (!entered_) ASSERT_TRUE(cv_.WaitFor(&mu_, kHangGuard)) << "handler never ran";
  }
  void Open() {
    MutexLock lock(&mu_);
    open_ = true;
    cv_.SignalAll();
  }

 private:
  Mutex mu_;
  CondVar cv_;
  bool entered_ ABSL_GUARDED_BY(mu_) = false;
  bool open_ ABSL_GUARDED_BY(mu_) = false;
};

// Waits (hang guard only) until pred() holds, polling under no lock.
template <typename Pred>
bool Eventually(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + kHangGuard;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// A raw socketpair: `fd` is ours (the peer's end), the handle becomes the
// transport under test.
struct RawPair {
  UniqueFd fd;
  TransportHandle handle;
};
RawPair NewRawPair() {
  int sv[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  return RawPair{UniqueFd(sv[0]), TransportHandle(UniqueFd(sv[1]))};
}

TEST(IoLoopTest, ManyTransportsOnOneLoopAllDeliverInOrder) {
  constexpr int kTransports = 8;
  constexpr uint64_t kMessages = 2000;
  auto loop = NewLoop();
  struct Sink {
    std::atomic<uint64_t> next{0};
    std::atomic<bool> in_order{true};
    std::atomic<std::thread::id> thread{};
  };
  std::vector<Sink> sinks(kTransports);
  std::vector<std::unique_ptr<Transport>> ours;
  std::vector<std::unique_ptr<Transport>> peers;
  for (int i = 0; i < kTransports; ++i) {
    TransportOptions options;
    options.io_loop = loop;
    Sink* sink = &sinks[i];
    options.on_message = [sink](MessageView& m) {
      if (Seq(m.payload) != sink->next) sink->in_order = false;
      ++sink->next;
      sink->thread = std::this_thread::get_id();
    };
    auto pair = Transport::CreatePaired(std::move(options));
    ASSERT_TRUE(pair.ok());
    auto peer = std::move(pair->handle).CreateTransport();  // its own IO thread
    ASSERT_TRUE(peer.ok());
    ours.push_back(std::move(pair->transport));
    peers.push_back(std::move(*peer));
  }
  EXPECT_EQ(loop->stats().transports, static_cast<size_t>(kTransports));
  // All peers send at once, interleaved.
  std::vector<std::thread> senders;
  for (int i = 0; i < kTransports; ++i) {
    senders.emplace_back([&, i] {
      for (uint64_t s = 0; s < kMessages; ++s) ASSERT_TRUE(peers[i]->Send(SeqPayload(s)).ok());
    });
  }
  for (auto& t : senders) t.join();
  for (int i = 0; i < kTransports; ++i) {
    ASSERT_TRUE(Eventually([&] { return sinks[i].next == kMessages; })) << "transport " << i;
    EXPECT_TRUE(sinks[i].in_order) << "transport " << i;
  }
  // One thread served them all, and it is not ours.
  for (int i = 1; i < kTransports; ++i) EXPECT_EQ(sinks[i].thread.load(), sinks[0].thread.load());
  EXPECT_NE(sinks[0].thread.load(), std::this_thread::get_id());
  ours.clear();
  EXPECT_EQ(loop->stats().transports, 0u);
}

// TRP-16. Transport A's peer floods (small frames, a blocking writer that
// never stops on its own); B's peer sends one message. While a third
// transport's handler holds the loop, A's socket is filled and then B's
// message written, so the next round has A ready first, then B. Each turn
// reads at most read_budget_bytes of A, so B's message is delivered after at
// most two of A's turns: A delivered at most 2 * (budget / frame + 1) frames
// by then, and the flood is still going on. Without the budget A's first
// turn reads 16 x 256 KiB (kMaxReadsPerWake) before B is served.
class IoLoopFairnessTest : public ::testing::TestWithParam<size_t> {};

TEST_P(IoLoopFairnessTest, FloodingPeerDoesNotStarveAQuietOne) {
  const size_t budget = GetParam();
  constexpr size_t kFrame = kFrameHeaderSize + 8;
  auto loop = NewLoop({.read_budget_bytes = budget});
  Gate hold;
  std::atomic<uint64_t> a_count{0};
  std::atomic<bool> a_in_order{true};
  std::atomic<uint64_t> a_at_b{UINT64_MAX};
  std::atomic<bool> flood_done{false};
  std::atomic<bool> flood_ongoing_at_b{false};

  RawPair z_raw = NewRawPair();
  RawPair a_raw = NewRawPair();
  RawPair b_raw = NewRawPair();
  // As much as the kernel lets the flood keep in A's socket.
  const int big = 4 << 20;
  ::setsockopt(a_raw.fd.get(), SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));

  TransportOptions z_options;
  z_options.io_loop = loop;
  z_options.on_message = [&](MessageView&) { hold.Enter(); };
  TransportOptions a_options;
  a_options.io_loop = loop;
  a_options.on_message = [&](MessageView& m) {
    if (Seq(m.payload) != a_count) a_in_order = false;
    ++a_count;
  };
  TransportOptions b_options;
  b_options.io_loop = loop;
  b_options.on_message = [&](MessageView&) {
    a_at_b = a_count.load();
    flood_ongoing_at_b = !flood_done;
  };
  auto z = std::move(z_raw.handle).CreateTransport(std::move(z_options));
  auto a = std::move(a_raw.handle).CreateTransport(std::move(a_options));
  auto b = std::move(b_raw.handle).CreateTransport(std::move(b_options));
  ASSERT_TRUE(z.ok() && a.ok() && b.ok());

  ASSERT_TRUE(SendRaw(z_raw.fd.get(), RawFrame("hold")));
  hold.WaitEntered();  // the loop thread is inside Z's handler now

  // The flood: 8 MiB of frames. Fill A's socket until the kernel refuses
  // more (deterministic: the socket is full), then keep writing, blocking.
  constexpr uint64_t kFlood = (16u << 20) / kFrame;
  std::vector<uint8_t> flood;
  flood.reserve(kFlood * kFrame);
  for (uint64_t s = 0; s < kFlood; ++s) {
    std::vector<uint8_t> f = RawFrame(SeqPayload(s));
    flood.insert(flood.end(), f.begin(), f.end());
  }
  size_t written = 0;
  while (written < flood.size()) {
    const ssize_t n = ::send(a_raw.fd.get(), flood.data() + written, flood.size() - written,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ASSERT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK) << std::strerror(errno);
      break;
    }
    written += static_cast<size_t>(n);
  }
  ASSERT_LT(written, flood.size()) << "the socket took the whole flood";
  std::thread flooder([&] {
    std::vector<uint8_t> rest(flood.begin() + static_cast<std::ptrdiff_t>(written), flood.end());
    EXPECT_TRUE(WriteAll(a_raw.fd.get(), rest));
    flood_done = true;
  });
  ASSERT_TRUE(SendRaw(b_raw.fd.get(), RawFrame(SeqPayload(0))));
  hold.Open();

  ASSERT_TRUE(Eventually([&] { return a_at_b != UINT64_MAX; })) << "B was starved";
  const uint64_t bound = 2 * (budget / kFrame + 1);
  std::printf("budget %zu: A delivered %llu frames before B's one (bound %llu), socket held %zu\n",
              budget, static_cast<unsigned long long>(a_at_b.load()),
              static_cast<unsigned long long>(bound), written);
  EXPECT_LE(a_at_b.load(), bound);
  EXPECT_TRUE(flood_ongoing_at_b);
  // Nothing of the flood is lost or reordered; the budget did cut turns.
  ASSERT_TRUE(Eventually([&] { return a_count == kFlood; }));
  EXPECT_TRUE(a_in_order);
  EXPECT_GT(loop->stats().budget_exhausted, 0u);
  flooder.join();
}

INSTANTIATE_TEST_SUITE_P(Budgets, IoLoopFairnessTest,
                         ::testing::Values(size_t{4096}, limits::IO_LOOP_READ_BUDGET_BYTES));

TEST(IoLoopTest, DestroyedFromAnotherThreadWhileTheLoopRunsItsHandler) {
  auto loop = NewLoop();
  Gate gate;
  std::atomic<bool> handler_returned{false};
  RawPair raw = NewRawPair();
  TransportOptions options;
  options.io_loop = loop;
  options.on_message = [&](MessageView&) {
    gate.Enter();
    handler_returned = true;
  };
  auto t = std::move(raw.handle).CreateTransport(std::move(options));
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(SendRaw(raw.fd.get(), RawFrame("x")));
  gate.WaitEntered();
  std::atomic<bool> destroyed{false};
  std::thread destroyer([&] {
    t->reset();  // waits until the loop has left the handler
    // The handler returned before the transport was freed.
    EXPECT_TRUE(handler_returned);
    destroyed = true;
  });
  EXPECT_FALSE(destroyed);
  gate.Open();
  destroyer.join();
  EXPECT_TRUE(destroyed);
  EXPECT_EQ(loop->stats().transports, 0u);

  // The loop serves others as before.
  std::atomic<int> got{0};
  RawPair raw2 = NewRawPair();
  TransportOptions options2;
  options2.io_loop = loop;
  options2.on_message = [&](MessageView&) { ++got; };
  auto t2 = std::move(raw2.handle).CreateTransport(std::move(options2));
  ASSERT_TRUE(t2.ok());
  ASSERT_TRUE(SendRaw(raw2.fd.get(), RawFrame("y")));
  ASSERT_TRUE(Eventually([&] { return got == 1; }));
}

// X's handler destroys Y, another transport of the same loop, on the loop
// thread, while Y has input ready in the same round of events: Y's turn is
// skipped (never run on freed memory: ASan), nothing is reported for it.
TEST(IoLoopTest, DestroyedFromAnotherTransportsHandlerOnTheLoopThread) {
  auto loop = NewLoop();
  Gate hold;
  RawPair z_raw = NewRawPair();
  RawPair x_raw = NewRawPair();
  RawPair y_raw = NewRawPair();
  std::unique_ptr<Transport> y;
  std::atomic<int> y_messages{0};
  std::atomic<int> y_disconnects{0};
  std::atomic<bool> x_done{false};
  std::atomic<int> x_messages{0};

  TransportOptions z_options;  // holds the loop while X and Y get input
  z_options.io_loop = loop;
  z_options.on_message = [&](MessageView&) { hold.Enter(); };
  TransportOptions x_options;
  x_options.io_loop = loop;
  x_options.on_message = [&](MessageView&) {
    if (x_messages++ == 0) {
      y.reset();  // on the loop thread, not inside Y's turn
      x_done = true;
    }
  };
  TransportOptions y_options;
  y_options.io_loop = loop;
  y_options.on_message = [&](MessageView&) { ++y_messages; };
  y_options.on_disconnect = [&](const Error&) { ++y_disconnects; };
  auto z = std::move(z_raw.handle).CreateTransport(std::move(z_options));
  auto x = std::move(x_raw.handle).CreateTransport(std::move(x_options));
  auto yt = std::move(y_raw.handle).CreateTransport(std::move(y_options));
  ASSERT_TRUE(z.ok() && x.ok() && yt.ok());
  y = std::move(*yt);

  ASSERT_TRUE(SendRaw(z_raw.fd.get(), RawFrame("hold")));
  hold.WaitEntered();
  // Both become ready while the loop is busy: the next round has X and Y.
  ASSERT_TRUE(SendRaw(x_raw.fd.get(), RawFrame("destroy y")));
  std::vector<uint8_t> many;
  for (int i = 0; i < 100; ++i) {
    auto f = RawFrame("to y");
    many.insert(many.end(), f.begin(), f.end());
  }
  ASSERT_TRUE(SendRaw(y_raw.fd.get(), many));
  hold.Open();
  ASSERT_TRUE(Eventually([&] { return x_done.load(); }));
  EXPECT_EQ(loop->stats().transports, 2u);
  EXPECT_EQ(y_disconnects, 0);  // local destruction is not a disconnect
  // Y saw none or some of its messages (if its turn came first), never more.
  EXPECT_LE(y_messages, 100);
  // The loop goes on serving X.
  ASSERT_TRUE(SendRaw(x_raw.fd.get(), RawFrame("again")));
  ASSERT_TRUE(Eventually([&] { return x_messages == 2; }));
}

TEST(IoLoopTest, DisconnectReportedExactlyOncePerTransport) {
  constexpr int kTransports = 16;
  auto loop = NewLoop();
  std::vector<std::atomic<int>> reports(kTransports);
  std::vector<std::unique_ptr<Transport>> ours;
  std::vector<UniqueFd> peers;
  for (int i = 0; i < kTransports; ++i) {
    RawPair raw = NewRawPair();
    TransportOptions options;
    options.io_loop = loop;
    options.on_message = [](MessageView&) {};
    options.on_disconnect = [&reports, i](const Error&) { ++reports[i]; };
    auto t = std::move(raw.handle).CreateTransport(std::move(options));
    ASSERT_TRUE(t.ok());
    ours.push_back(std::move(*t));
    peers.push_back(std::move(raw.fd));
  }
  // Half close cleanly, half break the protocol: one event each.
  for (int i = 0; i < kTransports; ++i) {
    if (i % 2 == 1) ASSERT_TRUE(SendRaw(peers[i].get(), testing::RawHeader(0x7777, 0, 0, 0)));
    peers[i].reset();
  }
  for (int i = 0; i < kTransports; ++i) {
    ASSERT_TRUE(Eventually([&] { return reports[i] >= 1; })) << "transport " << i;
  }
  // Sends on each fail now; the loop has nothing more to report.
  for (int i = 0; i < kTransports; ++i) EXPECT_FALSE(ours[i]->Send(SeqPayload(1)).ok());
  ours.clear();
  for (int i = 0; i < kTransports; ++i) EXPECT_EQ(reports[i], 1) << "transport " << i;
}

// NOD-6 on the shared loop: a handler on the loop thread sending to another
// transport whose peer does not read gets kResourceExhausted when that
// queue is full instead of waiting (which would stall every transport).
TEST(IoLoopTest, SendFromTheLoopThreadNeverWaits) {
  auto loop = NewLoop();
  const auto tight =
      limits::ConnectionLimits::Defaults().Tightened({.max_unprocessed_bytes = 256 * 1024});
  RawPair stuck_raw = NewRawPair();  // never read
  TransportOptions stuck_options;
  stuck_options.io_loop = loop;
  stuck_options.limits = tight;
  stuck_options.on_message = [](MessageView&) {};
  auto stuck = std::move(stuck_raw.handle).CreateTransport(std::move(stuck_options));
  ASSERT_TRUE(stuck.ok());

  std::atomic<bool> refused{false};
  std::atomic<int> sent{0};
  RawPair relay_raw = NewRawPair();
  TransportOptions relay_options;
  relay_options.io_loop = loop;
  relay_options.on_message = [&](MessageView&) {
    const std::vector<uint8_t> chunk(16 * 1024, 0xab);
    for (int i = 0; i < 1000 && !refused; ++i) {
      Status s = (*stuck)->Send(std::span<const uint8_t>(chunk));
      if (!s.ok()) {
        EXPECT_EQ(s.error().code(), ErrorCode::kResourceExhausted) << s.error().ToString();
        refused = true;
      } else {
        ++sent;
      }
    }
  };
  auto relay = std::move(relay_raw.handle).CreateTransport(std::move(relay_options));
  ASSERT_TRUE(relay.ok());
  ASSERT_TRUE(SendRaw(relay_raw.fd.get(), RawFrame("relay")));
  ASSERT_TRUE(Eventually([&] { return refused.load(); }));
  EXPECT_GT(sent, 0);
}

// As on a private IO thread: a transport's own handler cannot destroy it
// (its turn is still running); another transport's handler, or any other
// thread, can (tests above).
TEST(IoLoopDeathTest, DestroyingATransportFromItsOwnHandlerIsAProgrammerError) {
  // Re-executed, not forked: this process has other threads (closer).
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        auto loop = NewLoop();
        RawPair raw = NewRawPair();
        std::unique_ptr<Transport> t;
        Gate never;
        TransportOptions options;
        options.io_loop = loop;
        options.on_message = [&](MessageView&) {
          t.reset();
          never.Enter();
        };
        auto created = std::move(raw.handle).CreateTransport(std::move(options));
        t = std::move(*created);
        (void)SendRaw(raw.fd.get(), RawFrame("x"));
        never.WaitEntered();
      },
      "destroyed from its own IO thread");
}

TEST(IoLoopPoolTest, HandsOutItsLoopsRoundRobin) {
  auto pool = IoLoopPool::Create(2);
  ASSERT_TRUE(pool.ok());
  std::shared_ptr<IoLoop> a = (*pool)->Next();
  std::shared_ptr<IoLoop> b = (*pool)->Next();
  EXPECT_NE(a, b);
  EXPECT_EQ((*pool)->Next(), a);
  EXPECT_EQ((*pool)->Next(), b);
  EXPECT_EQ((*pool)->size(), 2u);
}

}  // namespace
}  // namespace moat::transport
