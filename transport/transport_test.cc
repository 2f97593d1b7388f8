// In-process tests of Transport: two endpoints of one socketpair in this
// process (cross-process behaviour is in transport_process_test.cc, hostile
// peers in transport_hostile_test.cc).
#include "transport/transport.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "core/deferred_close.h"
#include "core/testing/fd_count.h"
#include "transport/testing/event_recorder.h"

namespace moat::transport {
namespace {

using limits::ConnectionLimits;
using testing::DisconnectRecorder;
using namespace std::chrono_literals;

// Hang guard for Receive(): generous, never a timing assertion.
constexpr auto kGuard = std::chrono::seconds(60);

std::vector<uint8_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }
std::string Str(const std::vector<uint8_t>& b) { return {b.begin(), b.end()}; }

struct Pair {
  std::unique_ptr<Transport> a;
  std::unique_ptr<Transport> b;
};

Pair MakePair(TransportOptions a_options = {}, TransportOptions b_options = {}) {
  auto paired = Transport::CreatePaired(std::move(a_options));
  EXPECT_TRUE(paired.ok()) << paired.error().ToString();
  auto b = std::move(paired->handle).CreateTransport(std::move(b_options));
  EXPECT_TRUE(b.ok()) << b.error().ToString();
  return Pair{std::move(paired->transport), std::move(*b)};
}

TEST(TransportTest, MessagesBothWays) {
  Pair p = MakePair();
  ASSERT_TRUE(p.a->Send(Bytes("ping")).ok());
  auto got = p.b->Receive(kGuard);
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(Str(got->payload), "ping");
  ASSERT_TRUE(p.b->Send(Bytes("pong")).ok());
  got = p.a->Receive(kGuard);
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(Str(got->payload), "pong");
}

TEST(TransportTest, EmptyAndLargeMessagesArriveIntact) {
  Pair p = MakePair();
  std::vector<uint8_t> large(8 * limits::MiB);
  for (size_t i = 0; i < large.size(); ++i) large[i] = static_cast<uint8_t>(i * 7 + (i >> 13));
  std::thread sender([&] {
    EXPECT_TRUE(p.a->Send(std::vector<uint8_t>{}).ok());
    EXPECT_TRUE(p.a->Send(large).ok());  // far more than the socket buffer: partial writes
    EXPECT_TRUE(p.a->Send(Bytes("after")).ok());
  });
  auto empty = p.b->Receive(kGuard);
  ASSERT_TRUE(empty.ok()) << empty.error().ToString();
  EXPECT_TRUE(empty->payload.empty());
  auto big = p.b->Receive(kGuard);
  ASSERT_TRUE(big.ok()) << big.error().ToString();
  EXPECT_EQ(big->payload, large);
  auto after = p.b->Receive(kGuard);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(Str(after->payload), "after");
  sender.join();
}

// Frames queued while the peer is not reading go out several per sendmsg()
// once it reads (FlushLocked gathers them), intact and in order. Before
// batching every queued frame cost its own sendmsg().
TEST(TransportTest, QueuedFramesAreWrittenSeveralPerSyscall) {
  auto paired = Transport::CreatePaired();
  ASSERT_TRUE(paired.ok()) << paired.error().ToString();
  Transport& t = *paired->transport;
  auto raw = std::move(paired->handle).TakeSocketForSending();
  ASSERT_TRUE(raw.ok()) << raw.error().ToString();
  constexpr size_t kSize = 1024;
  constexpr size_t kQueued = 64;
  size_t sent = 0;
  // The peer reads nothing: the socket fills, then frames queue.
  while (t.stats().send_queue_frames < kQueued) {
    ASSERT_LT(sent, 100000u) << "frames never queued";
    ASSERT_TRUE(t.Send(std::vector<uint8_t>(kSize, static_cast<uint8_t>(sent))).ok());
    ++sent;
  }
  const Transport::Stats before = t.stats();
  StreamReassembler reader;
  size_t got = 0;
  std::vector<uint8_t> buf(64 * 1024);
  while (got < sent) {
    const ssize_t n = ::read(raw->get(), buf.data(), buf.size());
    ASSERT_GT(n, 0) << "stream ended after " << got << " of " << sent << " frames";
    ASSERT_TRUE(reader.Append(std::span(buf.data(), static_cast<size_t>(n))).ok());
    while (true) {
      auto frame = reader.Next();
      ASSERT_TRUE(frame.ok()) << frame.error().ToString();
      if (!frame->has_value()) break;
      ASSERT_EQ((*frame)->payload.size(), kSize);
      EXPECT_EQ((*frame)->payload[0], static_cast<uint8_t>(got)) << "frame " << got;
      EXPECT_EQ((*frame)->payload[kSize - 1], static_cast<uint8_t>(got)) << "frame " << got;
      ++got;
    }
  }
  const Transport::Stats after = t.stats();
  EXPECT_EQ(after.send_queue_frames, 0u);
  const uint64_t writes = after.queue_writes - before.queue_writes;
  std::printf("[measure] %zu queued %zu-byte frames flushed with %llu sendmsg() calls\n",
              before.send_queue_frames, kSize, static_cast<unsigned long long>(writes));
  EXPECT_LE(writes, before.send_queue_frames / 4);
}

// Batched writes keep each frame's descriptors on that frame: a frame with
// descriptors starts its own sendmsg(), the frames without ride along.
TEST(TransportTest, BatchedFramesKeepTheirDescriptors) {
  const ConnectionLimits tight = ConnectionLimits::Defaults().Tightened(
      {.max_unprocessed_bytes = 128 * limits::KiB, .max_unprocessed_fds = 8});
  TransportOptions ao, bo;
  ao.limits = bo.limits = tight;
  Pair p = MakePair(ao, bo);
  constexpr int kFrames = 400;
  std::atomic<bool> done{false};
  std::thread sender([&] {
    for (int i = 0; i < kFrames; ++i) {
      std::vector<UniqueFd> fds;
      if (i % 7 == 3) fds.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
      if (i % 29 == 5) fds.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
      std::vector<uint8_t> payload(3000, static_cast<uint8_t>(i));
      EXPECT_TRUE(p.a->Send(std::move(payload), std::move(fds)).ok());
    }
    done = true;
  });
  // Receive only once frames have queued behind the (now full) socket.
  while (!done && p.a->stats().send_queue_frames < 8 && p.a->stats().queue_writes == 0) {
    std::this_thread::sleep_for(1ms);
  }
  for (int i = 0; i < kFrames; ++i) {
    auto m = p.b->Receive(kGuard);
    ASSERT_TRUE(m.ok()) << i << ": " << m.error().ToString();
    ASSERT_EQ(m->payload.size(), 3000u) << i;
    EXPECT_EQ(m->payload[0], static_cast<uint8_t>(i));
    const size_t want = (i % 7 == 3 ? 1 : 0) + (i % 29 == 5 ? 1 : 0);
    EXPECT_EQ(m->fds.size(), want) << "frame " << i;
    for (UniqueFd& fd : m->fds) EXPECT_TRUE(fd.valid());
  }
  sender.join();
  EXPECT_GT(p.a->stats().queue_writes, 0u) << "no frame was ever queued: the test tested nothing";
}

TEST(TransportTest, DescriptorsArriveUsableAndCloseOnExec) {
  const size_t before = moat::testing::OpenFdCount();
  {
    Pair p = MakePair();
    int pipe_fds[2];
    ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
    UniqueFd read_end(pipe_fds[0]);
    std::vector<UniqueFd> fds;
    fds.emplace_back(pipe_fds[1]);
    ASSERT_TRUE(p.a->Send(Bytes("here is a pipe"), std::move(fds)).ok());
    auto got = p.b->Receive(kGuard);
    ASSERT_TRUE(got.ok()) << got.error().ToString();
    ASSERT_EQ(got->fds.size(), 1u);
    EXPECT_EQ(::fcntl(got->fds[0].get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    ASSERT_EQ(::write(got->fds[0].get(), "x", 1), 1);
    char c = 0;
    ASSERT_EQ(::read(read_end.get(), &c, 1), 1);
    EXPECT_EQ(c, 'x');
  }
  WaitForDeferredCloses();
  EXPECT_EQ(moat::testing::OpenFdCount(), before);
}

TEST(TransportTest, HandlerModeDeliversInOrderOnIoThread) {
  Mutex mu;
  CondVar cv;
  std::vector<std::string> got;
  TransportOptions b_options;
  b_options.on_message = [&](MessageView& m) {
    MutexLock lock(&mu);
    got.emplace_back(m.payload.begin(), m.payload.end());
    cv.SignalAll();
  };
  Pair p = MakePair({}, std::move(b_options));
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(p.a->Send(Bytes(std::to_string(i))).ok());
  {
    MutexLock lock(&mu);
    while (got.size() < 200) cv.WaitFor(&mu, 100ms);
  }
  for (int i = 0; i < 200; ++i) EXPECT_EQ(got[i], std::to_string(i));
}

TEST(TransportTest, ReceiveTimesOutWithShouldWait) {
  Pair p = MakePair();
  auto got = p.b->Receive(1ms);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), ErrorCode::kShouldWait);
}

// Untimed Receive() on both ends: each thread sleeps in recvmsg() itself and
// reads its own reply (the IO threads' input stays parked between turns).
// Nothing is lost, reordered or left unacknowledged.
TEST(TransportTest, UntimedReceivePingPongBothEnds) {
  const size_t before = moat::testing::OpenFdCount();
  {
    Pair p = MakePair();
    constexpr int kRounds = 2000;
    std::thread echo([&] {
      for (int i = 0; i < kRounds; ++i) {
        auto m = p.b->Receive();
        if (!m.ok() || !p.b->Send(m->payload, std::move(m->fds)).ok()) {
          ADD_FAILURE() << "echo failed at round " << i;
          p.b.reset();  // unblocks the other end with kPeerClosed
          return;
        }
      }
    });
    for (int i = 0; i < kRounds; ++i) {
      std::vector<UniqueFd> fds;
      if (i % 7 == 0) fds.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
      ASSERT_TRUE(p.a->Send(Bytes(std::to_string(i)), std::move(fds)).ok());
      auto r = p.a->Receive();
      ASSERT_TRUE(r.ok()) << r.error().ToString();
      ASSERT_EQ(Str(r->payload), std::to_string(i));
      ASSERT_EQ(r->fds.size(), i % 7 == 0 ? 1u : 0u);
    }
    echo.join();
    EXPECT_LE(p.a->stats().retained_fds, 1u);
  }
  WaitForDeferredCloses();
  EXPECT_EQ(moat::testing::OpenFdCount(), before);
}

// A thread asleep in an untimed Receive() (inside recvmsg) wakes with the
// peer's close, and the close is reported once.
TEST(TransportTest, UntimedReceiveWakesOnPeerClose) {
  DisconnectRecorder rec;
  Pair p = MakePair(rec.Options());
  std::thread closer([&] {
    std::this_thread::sleep_for(20ms);  // likely (not necessarily) after a blocks
    p.b.reset();
  });
  auto got = p.a->Receive();
  closer.join();
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), ErrorCode::kPeerClosed);
  EXPECT_EQ(rec.WaitForFirst().code(), ErrorCode::kPeerClosed);
  p.a.reset();
  EXPECT_EQ(rec.count(), 1u);
}

// After a Receive() the IO thread leaves the input parked only while more
// Receive() calls come: once they stop, it reads ahead again and reports a
// peer close, with nobody calling Receive(). (If the input stayed parked,
// WaitForFirst() would report a hang.)
TEST(TransportTest, IoThreadReadsAgainWhenReceiveCallsStop) {
  for (const bool timed : {false, true}) {
    DisconnectRecorder rec;
    Pair p = MakePair(rec.Options());
    ASSERT_TRUE(p.b->Send(Bytes("first")).ok());
    auto first = timed ? p.a->Receive(kGuard) : p.a->Receive();
    ASSERT_TRUE(first.ok()) << first.error().ToString();
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(p.b->Send(Bytes(std::to_string(i))).ok());
    p.b.reset();
    EXPECT_EQ(rec.WaitForFirst().code(), ErrorCode::kPeerClosed);
    EXPECT_EQ(p.a->stats().queued_messages, 10u);
    for (int i = 0; i < 10; ++i) {
      auto m = p.a->Receive();
      ASSERT_TRUE(m.ok()) << m.error().ToString();
      EXPECT_EQ(Str(m->payload), std::to_string(i));
    }
    EXPECT_EQ(p.a->Receive().error().code(), ErrorCode::kPeerClosed);
  }
}

TEST(TransportTest, OrderingUnderConcurrentSenders) {
  Pair p = MakePair();
  constexpr int kThreads = 4;
  constexpr int kPerThread = 500;
  std::vector<std::thread> senders;
  for (int t = 0; t < kThreads; ++t) {
    senders.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string s = std::to_string(t) + ":" + std::to_string(i) + std::string(i % 97, 'z');
        if (i % 50 == 0) s += std::string(300 * limits::KiB, 'L');  // overflows the socket
        std::vector<uint8_t> bytes = Bytes(s);
        // Odd threads lend their bytes (span path), even threads give them away.
        ASSERT_TRUE((t % 2 ? p.a->Send(bytes) : p.a->Send(std::move(bytes))).ok());
      }
    });
  }
  std::vector<int> next(kThreads, 0);
  for (int n = 0; n < kThreads * kPerThread; ++n) {
    auto got = p.b->Receive(kGuard);
    ASSERT_TRUE(got.ok()) << got.error().ToString();
    std::string s = Str(got->payload.size() > 64 ? std::vector<uint8_t>(got->payload.begin(), got->payload.begin() + 64) : got->payload);
    const int t = std::stoi(s.substr(0, s.find(':')));
    const int i = std::stoi(s.substr(s.find(':') + 1));
    ASSERT_EQ(i, next[t]) << "thread " << t << " out of order";
    ++next[t];
  }
  for (auto& s : senders) s.join();
}

TEST(TransportTest, PeerCloseGivesOneDisconnectAndSendFails) {
  DisconnectRecorder rec;
  Pair p = MakePair(rec.Options());
  ASSERT_TRUE(p.b->Send(Bytes("last words")).ok());
  p.b.reset();
  // Messages sent before the close are still delivered, then the error.
  auto got = p.a->Receive(kGuard);
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(Str(got->payload), "last words");
  auto end = p.a->Receive(kGuard);
  ASSERT_FALSE(end.ok());
  EXPECT_EQ(end.error().code(), ErrorCode::kPeerClosed);
  Error e = rec.WaitForFirst();
  EXPECT_EQ(e.code(), ErrorCode::kPeerClosed);
  EXPECT_EQ(e.reason(), "peer closed the connection");
  Status s = p.a->Send(Bytes("anyone?"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kPeerClosed);
  EXPECT_FALSE(p.a->is_connected());
  p.a.reset();
  EXPECT_EQ(rec.count(), 1u);
}

TEST(TransportTest, SendToClosedPeerIsEpipeNotSigpipe) {
  DisconnectRecorder rec;
  auto paired = Transport::CreatePaired(rec.Options());
  ASSERT_TRUE(paired.ok());
  { TransportHandle drop = std::move(paired->handle); }  // peer socket closed, no transport
  // Either the direct write sees EPIPE or the IO thread saw EOF first; both
  // are kPeerClosed and neither raises SIGPIPE (the test would die).
  Status s = paired->transport->Send(Bytes("x"));
  while (s.ok()) s = paired->transport->Send(Bytes("x"));
  EXPECT_EQ(s.error().code(), ErrorCode::kPeerClosed);
  rec.WaitForFirst();
  paired->transport.reset();
  EXPECT_EQ(rec.count(), 1u);
}

TEST(TransportTest, PeerCredentialsAreOurs) {
  Pair p = MakePair();
  auto creds = p.a->peer_credentials();
  ASSERT_TRUE(creds.ok()) << creds.error().ToString();
  EXPECT_EQ(creds->pid, ::getpid());
  EXPECT_EQ(creds->uid, ::getuid());
  EXPECT_EQ(creds->gid, ::getgid());
}

TEST(TransportTest, HandleRejectsNonSocketDescriptor) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  UniqueFd keep(pipe_fds[1]);
  auto t = TransportHandle(UniqueFd(pipe_fds[0])).CreateTransport();
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(t.error().reason(), "transport descriptor is not a socket");
}

// R8 beyond LibIPC: with a huge backlog of descriptors the sender waits for
// acknowledgements instead of tripping the receiver's unprocessed-fd limit.
TEST(TransportTest, ThousandQueuedDescriptorsNeverTripReceiverLimit) {
  const size_t before = moat::testing::OpenFdCount();
  {
    const ConnectionLimits tight = ConnectionLimits::Defaults().Tightened(
        {.max_message_fd_count = 4, .max_unprocessed_fds = 8});
    DisconnectRecorder rec_a, rec_b;
    Pair p = MakePair(rec_a.Options(tight), rec_b.Options(tight));
    constexpr int kMessages = 1000;
    for (int i = 0; i < kMessages; ++i) {
      std::vector<UniqueFd> fds;
      fds.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
      ASSERT_TRUE(p.a->Send(Bytes(std::to_string(i)), std::move(fds)).ok());
      EXPECT_LE(p.a->stats().retained_fds, 8u);
    }
    EXPECT_GT(p.a->stats().send_queue_frames, 0u) << "the window never made the sender wait";
    for (int i = 0; i < kMessages; ++i) {
      auto got = p.b->Receive(kGuard);
      ASSERT_TRUE(got.ok()) << got.error().ToString();
      ASSERT_EQ(Str(got->payload), std::to_string(i));
      ASSERT_EQ(got->fds.size(), 1u);
      EXPECT_LE(p.a->stats().retained_fds, 8u);
    }
    EXPECT_TRUE(p.a->is_connected());
    EXPECT_TRUE(p.b->is_connected());
    EXPECT_EQ(rec_a.count() + rec_b.count(), 0u);
  }
  WaitForDeferredCloses();
  EXPECT_EQ(moat::testing::OpenFdCount(), before);
}

// Backpressure: an owner that does not read stops the transport reading; the
// peer's sends queue on its side (bounded too) and nothing is lost.
TEST(TransportTest, SlowOwnerBackpressureBoundsMemoryAndLosesNothing) {
  const ConnectionLimits tight =
      ConnectionLimits::Defaults().Tightened({.max_unprocessed_bytes = 256 * limits::KiB});
  Pair p = MakePair(TransportOptions{.limits = tight}, TransportOptions{.limits = tight});
  constexpr int kMessages = 200;
  const std::vector<uint8_t> chunk(16 * limits::KiB, 0xAB);
  std::atomic<bool> done{false};
  std::thread sender([&] {
    for (int i = 0; i < kMessages; ++i) {
      std::vector<uint8_t> m = chunk;
      m[0] = static_cast<uint8_t>(i);
      ASSERT_TRUE(p.a->Send(std::move(m)).ok());
    }
    done = true;
  });
  // The sender cannot finish while we do not read: 200 x 16 KiB is far more
  // than both sides' bounds plus the socket buffers.
  while (!p.b->stats().reading_paused) std::this_thread::yield();
  Transport::Stats s = p.b->stats();
  EXPECT_LE(s.queued_bytes, tight.max_unprocessed_bytes);
  EXPECT_FALSE(done.load());
  for (int i = 0; i < kMessages; ++i) {
    auto got = p.b->Receive(kGuard);
    ASSERT_TRUE(got.ok()) << got.error().ToString();
    ASSERT_EQ(got->payload.size(), chunk.size());
    ASSERT_EQ(got->payload[0], static_cast<uint8_t>(i));
  }
  sender.join();
}

// R20/R21: release a live transport with local state; it moves with the
// handle, the old endpoint reports nothing, the peer sees no EOF.
TEST(TransportTest, ReleaseForTransferMovesQueuedStateWithoutPeerEof) {
  const ConnectionLimits tight =
      ConnectionLimits::Defaults().Tightened({.max_unprocessed_bytes = 64 * limits::KiB});
  DisconnectRecorder rec_a, rec_b_old, rec_b_new;
  TransportOptions b_options = rec_b_old.Options();
  // B queues 1.28 MiB for a peer that does not read: above the default
  // high-water mark, where B's sender would wait.
  b_options.send_high_water_bytes = 4 * limits::MiB;
  Pair p = MakePair(rec_a.Options(tight), std::move(b_options));

  // Received but undelivered on B.
  ASSERT_TRUE(p.a->Send(Bytes("one")).ok());
  ASSERT_TRUE(p.a->Send(Bytes("two")).ok());
  while (p.b->stats().queued_messages < 2) std::this_thread::yield();

  // Unsent on B: A does not read, so B's sends pile up in B's queue.
  const std::vector<uint8_t> big(32 * limits::KiB, 0x5A);
  constexpr int kQueued = 40;
  for (int i = 0; i < kQueued; ++i) {
    std::vector<uint8_t> m = big;
    m[0] = static_cast<uint8_t>(i);
    ASSERT_TRUE(p.b->Send(std::move(m)).ok());
  }
  ASSERT_GT(p.b->stats().send_queue_frames, 0u);

  auto handle = p.b->ReleaseForTransfer();
  ASSERT_TRUE(handle.ok()) << handle.error().ToString();
  EXPECT_TRUE(handle->has_handoff_state());
  EXPECT_EQ(p.b->Send(Bytes("x")).error().code(), ErrorCode::kClosed);
  p.b.reset();
  EXPECT_EQ(rec_b_old.count(), 0u);

  auto b2 = std::move(*handle).CreateTransport(rec_b_new.Options());
  ASSERT_TRUE(b2.ok()) << b2.error().ToString();
  auto m1 = (*b2)->Receive(kGuard);
  ASSERT_TRUE(m1.ok());
  EXPECT_EQ(Str(m1->payload), "one");
  ASSERT_TRUE(p.a->Send(Bytes("three")).ok());
  auto m2 = (*b2)->Receive(kGuard);
  ASSERT_TRUE(m2.ok());
  EXPECT_EQ(Str(m2->payload), "two");
  auto m3 = (*b2)->Receive(kGuard);
  ASSERT_TRUE(m3.ok());
  EXPECT_EQ(Str(m3->payload), "three");

  for (int i = 0; i < kQueued; ++i) {
    auto got = p.a->Receive(kGuard);
    ASSERT_TRUE(got.ok()) << got.error().ToString();
    ASSERT_EQ(got->payload.size(), big.size());
    ASSERT_EQ(got->payload[0], static_cast<uint8_t>(i));
  }
  EXPECT_TRUE(p.a->is_connected());
  EXPECT_EQ(rec_a.count(), 0u);
  EXPECT_EQ(rec_b_new.count(), 0u);
}

TEST(TransportTest, ReleasedHandleCarriesPendingDisconnect) {
  DisconnectRecorder rec_old, rec_new;
  auto paired = Transport::CreatePaired(rec_old.Options());
  ASSERT_TRUE(paired.ok());
  { TransportHandle drop = std::move(paired->handle); }
  rec_old.WaitForFirst();
  auto handle = paired->transport->ReleaseForTransfer();
  ASSERT_TRUE(handle.ok());
  auto again = std::move(*handle).CreateTransport(rec_new.Options());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(rec_new.WaitForFirst().code(), ErrorCode::kPeerClosed);
  EXPECT_EQ((*again)->Receive(kGuard).error().code(), ErrorCode::kPeerClosed);
}

TEST(TransportTest, FreshHandleCanBeSentAndBecomeATransport) {
  Pair p = MakePair();
  auto inner = Transport::CreatePaired();
  ASSERT_TRUE(inner.ok());
  auto socket = std::move(inner->handle).TakeSocketForSending();
  ASSERT_TRUE(socket.ok());
  std::vector<UniqueFd> fds;
  fds.push_back(std::move(*socket));
  ASSERT_TRUE(p.a->Send(Bytes("a transport for you"), std::move(fds)).ok());
  auto got = p.b->Receive(kGuard);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->fds.size(), 1u);
  auto far = TransportHandle(std::move(got->fds[0])).CreateTransport();
  ASSERT_TRUE(far.ok()) << far.error().ToString();
  ASSERT_TRUE(inner->transport->Send(Bytes("through the passed pipe")).ok());
  auto m = (*far)->Receive(kGuard);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(Str(m->payload), "through the passed pipe");
}

TEST(TransportTest, HandleWithStateRefusesToCrossProcesses) {
  Pair p = MakePair();
  ASSERT_TRUE(p.a->Send(Bytes("pending")).ok());
  while (p.b->stats().queued_messages < 1) std::this_thread::yield();
  auto handle = p.b->ReleaseForTransfer();
  ASSERT_TRUE(handle.ok());
  auto socket = std::move(*handle).TakeSocketForSending();
  ASSERT_FALSE(socket.ok());
  EXPECT_EQ(socket.error().code(), ErrorCode::kFailedPrecondition);
}

TEST(TransportDeathTest, OverLimitSendIsAProgrammerError) {
  const ConnectionLimits tight =
      ConnectionLimits::Defaults().Tightened({.max_message_payload_size = 16});
  EXPECT_DEATH(
      {
        Pair p = MakePair(TransportOptions{.limits = tight});
        (void)p.a->Send(std::vector<uint8_t>(17));
      },
      "exceeds MAX_MESSAGE_PAYLOAD_SIZE 16");
  EXPECT_DEATH(
      {
        Pair p = MakePair();
        std::vector<UniqueFd> fds;
        fds.emplace_back();
        (void)p.a->Send(Bytes("x"), std::move(fds));
      },
      "invalid descriptor");
}

}  // namespace
}  // namespace moat::transport
