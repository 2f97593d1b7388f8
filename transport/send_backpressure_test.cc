// The send side's bounds (issue 14 step 2, issue 15 item 3; TRP-17): a
// sender that may wait is held at the high-water mark, not at the 128 MiB
// hard cap; a peer that takes nothing fails the connection after the stall
// timeout instead of holding the sender forever; and WouldWaitToSend is
// answered by one on_send_space once the queue has drained.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <thread>
#include <vector>

#include "core/mutex.h"
#include "limits/limits.h"
#include "transport/testing/event_recorder.h"
#include "transport/transport.h"

namespace moat::transport {
namespace {

using testing::DisconnectRecorder;

constexpr size_t kChunk = 64 * 1024;
constexpr size_t kChunks = 64;  // 4 MiB: well past the high-water mark

struct Pair {
  std::unique_ptr<Transport> a, b;
};

// B takes at most 256 KiB off the socket until someone receives: a peer
// that stops reading.
Pair MakePair(TransportOptions a_options, TransportOptions b_options) {
  b_options.limits =
      limits::ConnectionLimits::Defaults().Tightened({.max_unprocessed_bytes = 256 * 1024});
  auto paired = Transport::CreatePaired(std::move(a_options));
  EXPECT_TRUE(paired.ok()) << paired.error().ToString();
  auto b = std::move(paired->handle).CreateTransport(std::move(b_options));
  EXPECT_TRUE(b.ok()) << b.error().ToString();
  return {std::move(paired->transport), std::move(*b)};
}

TEST(SendBackpressureTest, AWaitingSenderIsHeldAtTheHighWaterMark) {
  DisconnectRecorder rec_a, rec_b;
  Pair p = MakePair(rec_a.Options(), rec_b.Options());
  std::atomic<size_t> max_queued{0};
  std::atomic<size_t> sent{0};
  std::thread sender([&] {
    for (size_t i = 0; i < kChunks; ++i) {
      ASSERT_TRUE(p.a->Send(std::vector<uint8_t>(kChunk, static_cast<uint8_t>(i))).ok());
      // A sender returns only with the queue at or below the mark (plus an
      // acknowledgement frame the IO thread may have added).
      max_queued = std::max(max_queued.load(), p.a->stats().send_queue_bytes);
      ++sent;
    }
  });
  for (size_t i = 0; i < kChunks; ++i) {
    auto m = p.b->Receive(std::chrono::seconds(60));
    ASSERT_TRUE(m.ok()) << m.error().ToString();
    ASSERT_EQ(m->payload.size(), kChunk);
    EXPECT_EQ(m->payload[0], static_cast<uint8_t>(i));
  }
  sender.join();
  EXPECT_EQ(sent.load(), kChunks);
  EXPECT_LE(max_queued.load(), limits::SEND_HIGH_WATER_BYTES + 64);
}

// A's peer is a raw socket nobody reads: the peer process is stopped. A
// waiting sender gives up after 100 ms.
std::unique_ptr<Transport> TransportToSilentPeer(DisconnectRecorder& rec, UniqueFd* silent) {
  TransportOptions options = rec.Options();
  options.send_stall_timeout = std::chrono::milliseconds(100);
  int sv[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  silent->reset(sv[1]);
  auto t = TransportHandle(UniqueFd(sv[0])).CreateTransport(std::move(options));
  EXPECT_TRUE(t.ok()) << t.error().ToString();
  return t.ok() ? std::move(*t) : nullptr;
}

TEST(SendBackpressureTest, APeerThatTakesNothingFailsTheConnectionAtTheStallTimeout) {
  DisconnectRecorder rec;
  UniqueFd silent;
  auto a = TransportToSilentPeer(rec, &silent);
  Status s = OkStatus();
  size_t sent = 0;
  while (sent < kChunks && (s = a->Send(std::vector<uint8_t>(kChunk, 1))).ok()) ++sent;
  ASSERT_FALSE(s.ok()) << "4 MiB queued for a peer that reads nothing";
  EXPECT_EQ(s.error().code(), ErrorCode::kPeerClosed) << s.error().ToString();
  const Error why = rec.WaitForFirst();
  EXPECT_EQ(why.code(), ErrorCode::kDeadlineExceeded) << why.ToString();
  EXPECT_NE(why.ToString().find("took no byte"), std::string::npos) << why.ToString();
}

TEST(SendBackpressureTest, ABorrowedFrameToAPeerThatTakesNothingEndsAtTheStallTimeout) {
  DisconnectRecorder rec;
  UniqueFd silent;
  auto a = TransportToSilentPeer(rec, &silent);
  // Borrowed bytes: the sender finishes the frame from its own buffer.
  const std::vector<uint8_t> lent(8 << 20, 2);
  Status s = a->Send(std::span<const uint8_t>(lent));
  ASSERT_FALSE(s.ok());
  const Error why = rec.WaitForFirst();
  EXPECT_EQ(why.code(), ErrorCode::kDeadlineExceeded) << why.ToString();
  EXPECT_NE(why.ToString().find("in the middle of a"), std::string::npos) << why.ToString();
}

TEST(SendBackpressureTest, WouldWaitToSendIsAnsweredByOneSendSpaceNotice) {
  DisconnectRecorder rec_a, rec_b;
  Mutex mu;
  CondVar cv;
  int notices = 0;
  TransportOptions a_options = rec_a.Options();
  a_options.on_send_space = [&] {
    MutexLock lock(&mu);
    ++notices;
    cv.SignalAll();
  };
  Pair p = MakePair(std::move(a_options), rec_b.Options());
  EXPECT_FALSE(p.a->WouldWaitToSend());
  // Never waits, so the queue can pass the mark (up to the hard cap).
  for (size_t i = 0; i < kChunks; ++i) {
    ASSERT_TRUE(p.a->SendWithoutWaiting(std::vector<uint8_t>(kChunk, 3)).ok());
  }
  EXPECT_GT(p.a->stats().send_queue_bytes, limits::SEND_HIGH_WATER_BYTES);
  EXPECT_TRUE(p.a->WouldWaitToSend());
  {
    MutexLock lock(&mu);
    EXPECT_EQ(notices, 0);
  }
  for (size_t i = 0; i < kChunks; ++i) ASSERT_TRUE(p.b->Receive(std::chrono::seconds(60)).ok());
  {
    MutexLock lock(&mu);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (notices == 0 && std::chrono::steady_clock::now() < deadline) {
      cv.WaitFor(&mu, std::chrono::milliseconds(100));
    }
    EXPECT_EQ(notices, 1);
  }
  EXPECT_FALSE(p.a->WouldWaitToSend());
}

}  // namespace
}  // namespace moat::transport
