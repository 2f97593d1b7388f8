// Hostile-peer cases about what a peer can make us hold or wait for, rather
// than what it can make us parse (issue 13): a descriptor whose close()
// blocks (TRP-12), state left behind by a disconnected peer (TRP-13), the
// descriptor and byte budgets counted over everything held (TRP-14, TRP-15),
// truncation hidden by a reset (FRM-7). Memory bounds are asserted with the
// allocator's own numbers (transport/testing/heap_usage.h), not only with the
// transport's accounting.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "core/deferred_close.h"
#include "core/frame.h"
#include "core/internal/little_endian.h"
#include "core/mutex.h"
#include "core/testing/fd_count.h"
#include "core/testing/lingering_socket.h"
#include "transport/testing/event_recorder.h"
#include "transport/testing/raw_peer.h"
#include "transport/testing/heap_usage.h"
#include "transport/transport.h"

namespace moat::transport {
namespace {

using limits::ConnectionLimits;
using limits::KiB;
using limits::MiB;
using testing::DisconnectRecorder;
using testing::OpenDevNull;
using testing::RawFrame;
using testing::RawHeader;
using testing::SendRaw;
using testing::WriteAll;
using Clock = std::chrono::steady_clock;

using moat::testing::LingeringSocket;
using moat::testing::RunWithin;
// A lingering close blocks for testing::kLingerSeconds (120 s); a guard that
// expires resets the connection, so a regression fails in kGuard, not in minutes.
constexpr auto kGuard = moat::testing::kLingerGuard;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

class HostileResourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WaitForDeferredCloses();
    baseline_fds_ = moat::testing::OpenFdCount();
  }

  void Start(ConnectionLimits limits = ConnectionLimits::Defaults(),
             std::function<void(MessageView&)> on_message = nullptr) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    raw_.reset(sv[0]);
    TransportOptions options = recorder_.Options(limits);
    options.on_message = std::move(on_message);
    auto t = TransportHandle(UniqueFd(sv[1])).CreateTransport(std::move(options));
    ASSERT_TRUE(t.ok()) << t.error().ToString();
    transport_ = std::move(*t);
    // Its socket and eventfd, and with a private IO thread its epoll set
    // (on a shared IoLoop the loop's epoll set is not the transport's).
    transport_fds_ = moat::testing::OpenFdCount() - baseline_fds_ - 1;
  }

  // Sends `frame` with the weapon attached to its first part and the rest
  // separately: the victim cannot finish the frame (and drop the weapon)
  // before the attacker has dropped its own copy, so the victim's close is
  // the last one, the one that lingers.
  void SendWeaponInTwoParts(const std::vector<uint8_t>& frame, LingeringSocket* weapon) {
    const std::vector<uint8_t> first(frame.begin(), frame.begin() + kFrameHeaderSize);
    const std::vector<uint8_t> rest(frame.begin() + kFrameHeaderSize, frame.end());
    ASSERT_FALSE(rest.empty());
    ASSERT_TRUE(SendRaw(raw_.get(), first, {weapon->weapon.release()}));
    ASSERT_TRUE(SendRaw(raw_.get(), rest));
  }

  double DestroyTransportWithin(LingeringSocket* weapon) {
    return RunWithin("~Transport", weapon, [&] { transport_.reset(); });
  }

  // Tears down and checks that every descriptor is closed. The closer thread
  // must not be stuck on a weapon either (it disarms lingering first).
  void Finish(std::initializer_list<LingeringSocket*> weapons = {}) {
    if (transport_) transport_.reset();
    raw_.reset();
    for (LingeringSocket* w : weapons) {
      RunWithin("the closer thread", w, [] { WaitForDeferredCloses(); });
    }
    for (LingeringSocket* w : weapons) w->receiver.reset();
    WaitForDeferredCloses();
    EXPECT_EQ(moat::testing::OpenFdCount(), baseline_fds_);
  }

  size_t baseline_fds_ = 0;
  size_t transport_fds_ = 0;  // descriptors the live transport itself holds
  DisconnectRecorder recorder_;
  UniqueFd raw_;
  std::unique_ptr<Transport> transport_;
};

// ---- TRP-12: close() of a peer's descriptor never blocks a moat thread ----

// A handled message whose descriptor the handler did not take: closing the
// rest must not stall the IO thread (the next message is handled at once).
TEST_F(HostileResourceTest, LingeringDescriptorAfterHandledMessageDoesNotStallIoThread) {
  Mutex mu;
  CondVar cv;
  std::vector<std::string> handled;
  Start(ConnectionLimits::Defaults(), [&](MessageView& m) {
    MutexLock lock(&mu);
    handled.emplace_back(m.payload.begin(), m.payload.end());
    cv.SignalAll();
  });
  LingeringSocket weapon = LingeringSocket::Make();
  SendWeaponInTwoParts(RawFrame("linger", 1), &weapon);
  {
    // Handled alone (not in one read with the next frame): its descriptor
    // is dropped before the next frame is read.
    MutexLock lock(&mu);
    while (handled.empty()) cv.Wait(&mu);
  }
  const Clock::time_point start = Clock::now();
  ASSERT_TRUE(SendRaw(raw_.get(), RawFrame("next")));
  bool got_next = false;
  {
    MutexLock lock(&mu);
    while (handled.size() < 2 && Clock::now() - start < kGuard) {
      cv.WaitFor(&mu, std::chrono::milliseconds(50));
    }
    got_next = handled.size() == 2;
  }
  const double seconds = SecondsSince(start);
  std::printf("[measure] IO thread stalled %.3f s by a lingering close after a handled message\n",
              seconds);
  EXPECT_TRUE(got_next) << "the IO thread was stuck in close() for " << seconds << " s";
  if (!got_next) weapon.Disarm();
  EXPECT_TRUE(transport_->is_connected());
  EXPECT_EQ(recorder_.count(), 0u);
  Finish({&weapon});
}

// The rejection path: descriptors of a receive that breaks a limit are
// closed, and the disconnect is still reported at once.
TEST_F(HostileResourceTest, LingeringDescriptorOnRejectionDoesNotDelayDisconnect) {
  Start(ConnectionLimits::Defaults().Tightened(
      {.max_unprocessed_bytes = 4096, .max_unprocessed_fds = 1}));
  // Fill the receive budget so the victim stops reading: the weapon then
  // waits in the socket until the attacker has dropped its own copy.
  for (int i = 0; i < 4 && !transport_->stats().reading_paused; ++i) {
    ASSERT_TRUE(SendRaw(raw_.get(), RawFrame(std::string(1500, 'q'))));
    while (transport_->stats().queued_messages < static_cast<size_t>(i + 1) &&
           !transport_->stats().reading_paused) {
      std::this_thread::yield();
    }
  }
  ASSERT_TRUE(transport_->stats().reading_paused);
  LingeringSocket weapon = LingeringSocket::Make();
  std::vector<int> fds = OpenDevNull(1);
  fds.push_back(weapon.weapon.release());
  // Two descriptors against MAX_UNPROCESSED_FDS 1: rejected when read.
  ASSERT_TRUE(SendRaw(raw_.get(), std::vector<uint8_t>(3, 0x4D), fds));
  const Clock::time_point start = Clock::now();
  ASSERT_TRUE(transport_->Receive(kGuard).ok());  // reading resumes
  std::optional<Error> e = recorder_.WaitFor(kGuard);
  const double seconds = SecondsSince(start);
  std::printf("[measure] disconnect delayed %.3f s by a lingering close on rejection\n", seconds);
  EXPECT_TRUE(e.has_value()) << "no disconnect within the guard: stuck in close()";
  if (!e) {
    weapon.Disarm();
    e = recorder_.WaitForFirst();
  }
  EXPECT_EQ(e->code(), ErrorCode::kLimitExceeded) << e->ToString();
  Finish({&weapon});
}

// A queued (never received) message holding the descriptor: ~Transport.
TEST_F(HostileResourceTest, LingeringDescriptorInReceiveQueueDoesNotBlockDestructor) {
  Start();
  LingeringSocket weapon = LingeringSocket::Make();
  SendWeaponInTwoParts(RawFrame("queued", 1), &weapon);
  ASSERT_TRUE(SendRaw(raw_.get(), RawFrame("probe")));
  while (transport_->stats().queued_messages < 2) std::this_thread::yield();
  const double seconds = DestroyTransportWithin(&weapon);
  std::printf("[measure] ~Transport blocked %.3f s by a lingering queued descriptor\n", seconds);
  Finish({&weapon});
}

// A descriptor in the reassembler (its frame incomplete) when the peer dies.
TEST_F(HostileResourceTest, LingeringDescriptorInIncompleteFrameDoesNotBlock) {
  Start();
  LingeringSocket weapon = LingeringSocket::Make();
  ASSERT_TRUE(SendRaw(raw_.get(), RawFrame("half", 2), {weapon.weapon.release()}));
  raw_.reset();
  const Clock::time_point start = Clock::now();
  std::optional<Error> e = recorder_.WaitFor(kGuard);
  EXPECT_TRUE(e.has_value()) << "no disconnect within the guard: stuck in close()";
  if (!e) {
    weapon.Disarm();
    e = recorder_.WaitForFirst();
  }
  EXPECT_EQ(e->code(), ErrorCode::kIncomplete) << e->ToString();
  const double seconds = SecondsSince(start) + DestroyTransportWithin(&weapon);
  std::printf("[measure] disconnect + ~Transport blocked %.3f s by a lingering buffered descriptor\n",
              seconds);
  Finish({&weapon});
}

// fd-ack: a descriptor we sent (which may itself have come from a peer, as in
// a relay) is retained until the peer acknowledges it; the acknowledgement
// is read on the IO thread, which then drops it.
TEST_F(HostileResourceTest, LingeringRetainedDescriptorReleasedByAckDoesNotStallIoThread) {
  Start();
  LingeringSocket weapon = LingeringSocket::Make();
  std::vector<UniqueFd> fds;
  fds.push_back(std::move(weapon.weapon));
  ASSERT_TRUE(transport_->Send(std::vector<uint8_t>{1}, std::move(fds)).ok());
  // The attacker receives the frame and drops its copy of the descriptor:
  // the transport's retained copy is now the last one.
  {
    std::vector<uint8_t> buf(64);
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    iovec iov{buf.data(), buf.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ASSERT_EQ(::recvmsg(raw_.get(), &msg, MSG_CMSG_CLOEXEC), 25);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    ASSERT_NE(c, nullptr);
    int fd;
    std::memcpy(&fd, CMSG_DATA(c), sizeof(int));
    ::close(fd);
  }
  ASSERT_EQ(transport_->stats().retained_fds, 1u);
  std::vector<uint8_t> ack_then_message = RawHeader(2, 0, 0, 1);
  const std::vector<uint8_t> message = RawFrame("after the ack");
  ack_then_message.insert(ack_then_message.end(), message.begin(), message.end());
  ASSERT_TRUE(SendRaw(raw_.get(), ack_then_message));
  std::optional<Result<Message>> m;
  const double seconds =
      RunWithin("Receive()", &weapon, [&] { m.emplace(transport_->Receive(kGuard)); });
  std::printf("[measure] reader stalled %.3f s by a lingering retained descriptor (fd-ack)\n",
              seconds);
  EXPECT_TRUE(m->ok());
  // And the disconnect path, which drops whatever is still retained.
  std::vector<UniqueFd> more;
  LingeringSocket second = LingeringSocket::Make();
  more.push_back(std::move(second.weapon));
  ASSERT_TRUE(transport_->Send(std::vector<uint8_t>{2}, std::move(more)).ok());
  const Clock::time_point cut = Clock::now();
  raw_.reset();  // the peer never read the descriptor: dropping it is ours to do
  std::optional<Error> e = recorder_.WaitFor(kGuard);
  std::printf("[measure] disconnect delayed %.3f s by a lingering retained descriptor\n",
              SecondsSince(cut));
  EXPECT_TRUE(e.has_value()) << "no disconnect within the guard: stuck in close()";
  if (!e) second.Disarm();
  Finish({&weapon, &second});
}

// ---- TRP-13: a disconnected peer leaves nothing behind ----

// An unfinished frame holding descriptors and megabytes of payload when the
// peer dies: all of it is released at the disconnect, while the Transport
// object (which its owner may keep for a long time) still lives.
TEST_F(HostileResourceTest, DisconnectFreesReassemblerDescriptorsAndMemoryAtOnce) {
  const ConnectionLimits limits = ConnectionLimits::Defaults().Tightened(
      {.max_message_payload_size = 8 * MiB, .max_unprocessed_bytes = 16 * MiB});
  Start(limits);
  const size_t heap_before = moat::testing::HeapBytesInUse();
  // A frame declaring 8 MiB and 128 descriptors; 2 x 60 descriptors and 6 MiB arrive.
  std::vector<uint8_t> head = RawHeader(1, 8 * MiB, 128, 0);
  head.resize(head.size() + 1000, 'p');
  ASSERT_TRUE(SendRaw(raw_.get(), head, OpenDevNull(60)));
  ASSERT_TRUE(SendRaw(raw_.get(), std::vector<uint8_t>(1000, 'p'), OpenDevNull(60)));
  ASSERT_TRUE(WriteAll(raw_.get(), std::vector<uint8_t>(6 * MiB, 'p')));
  const size_t fds_while_held = moat::testing::OpenFdCount();
  raw_.reset();
  const Error e = recorder_.WaitForFirst();
  EXPECT_EQ(e.code(), ErrorCode::kIncomplete) << e.ToString();
  WaitForDeferredCloses();
  const size_t fds_after = moat::testing::OpenFdCount();
  const long long heap_after = moat::testing::HeapGrowthSince(heap_before);
  std::printf("[measure] after disconnect, transport alive: %zu descriptors held (%zu before "
              "the disconnect), heap +%lld bytes\n",
              fds_after - std::min(fds_after, baseline_fds_ + transport_fds_),
              fds_while_held - (baseline_fds_ + transport_fds_ + 1),
              heap_after);
  // Only the transport's own socket, eventfd (and epoll) remain (the attacker's end is gone).
  EXPECT_EQ(fds_after, baseline_fds_ + transport_fds_);
  EXPECT_LT(heap_after, static_cast<long long>(256 * KiB));
  Finish();
}

// ---- TRP-14: MAX_UNPROCESSED_FDS counts queued + buffered at every receive ----

TEST_F(HostileResourceTest, QueuedPlusBufferedDescriptorsAreCheckedAtEveryReceive) {
  Start(ConnectionLimits::Defaults().Tightened({.max_unprocessed_fds = 8}));
  // Four descriptors queued for an owner that does not read ...
  ASSERT_TRUE(SendRaw(raw_.get(), RawFrame("four", 4), OpenDevNull(4)));
  while (transport_->stats().queued_fds < 4) std::this_thread::yield();
  // ... and five more into a frame that never completes: 9 > 8.
  std::vector<uint8_t> partial = RawHeader(1, 100, 5, 0);
  partial.resize(partial.size() + 3, 'x');
  ASSERT_TRUE(SendRaw(raw_.get(), partial, OpenDevNull(5)));
  std::optional<Error> e = recorder_.WaitFor(kGuard);
  ASSERT_TRUE(e.has_value()) << "9 descriptors held against MAX_UNPROCESSED_FDS 8, no disconnect";
  EXPECT_EQ(e->code(), ErrorCode::kLimitExceeded) << e->ToString();
  EXPECT_EQ(e->ToString(),
            "unprocessed descriptors 4 queued + 0 buffered + 5 received exceed "
            "MAX_UNPROCESSED_FDS 8");
  Finish();
}

// ---- FRM-7: a reset does not hide a truncated frame ----

TEST_F(HostileResourceTest, ResetMidFrameIsIncompleteNotPeerClosed) {
  Start();
  // We wrote something the attacker never reads, so its close is a reset.
  ASSERT_TRUE(transport_->Send(std::vector<uint8_t>{1, 2, 3}).ok());
  std::vector<uint8_t> frame = RawFrame(std::string(100, 'q'));
  frame.resize(60);
  ASSERT_TRUE(SendRaw(raw_.get(), frame, OpenDevNull(1)));
  raw_.reset();
  const Error e = recorder_.WaitForFirst();
  EXPECT_EQ(e.code(), ErrorCode::kIncomplete) << e.ToString();
  EXPECT_EQ(e.ToString(),
            "stream ended inside a frame: 60 unprocessed bytes of a 124-byte frame "
            "(recvmsg: Connection reset by peer)");
  Finish();
}

// ---- TRP-15: MAX_UNPROCESSED_BYTES bounds the memory really held ----

// Writes `frame` non-blocking until the victim stops reading (backpressure)
// or disconnects. Returns the bytes written.
size_t FloodUntilPaused(int socket, const std::vector<uint8_t>& frame, Transport& victim) {
  EXPECT_EQ(::fcntl(socket, F_SETFL, O_NONBLOCK), 0);
  size_t written = 0;
  size_t offset = 0;
  while (true) {
    const ssize_t n =
        ::send(socket, frame.data() + offset, frame.size() - offset, MSG_NOSIGNAL);
    if (n > 0) {
      written += static_cast<size_t>(n);
      offset = (offset + static_cast<size_t>(n)) % frame.size();
      EXPECT_LT(written, 1024 * MiB) << "victim never applied backpressure";
      if (written >= 1024 * MiB) break;
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) break;  // disconnected
    if (!victim.is_connected()) break;
    if (!victim.stats().reading_paused) {
      // The victim is still reading: wait for room.
      pollfd pfd{socket, POLLOUT, 0};
      ::poll(&pfd, 1, 10);
      continue;
    }
    // Paused with the socket full; one more try confirms it stays full.
    const ssize_t again =
        ::send(socket, frame.data() + offset, frame.size() - offset, MSG_NOSIGNAL);
    if (again <= 0) break;
    written += static_cast<size_t>(again);
    offset = (offset + static_cast<size_t>(again)) % frame.size();
  }
  return written;
}

// Large frames while the owner does not read: the queue plus the reassembly
// buffer stay within the budget (the buffer used to grow to the whole budget
// on top of the queue).
TEST_F(HostileResourceTest, QueueAndReassemblyBufferShareTheByteBudget) {
  const size_t budget = 8 * MiB;
  const ConnectionLimits limits = ConnectionLimits::Defaults().Tightened(
      {.max_message_payload_size = 2 * MiB, .max_unprocessed_bytes = budget});
  Start(limits);
  const std::vector<uint8_t> frame = RawFrame(std::string(2 * MiB, 'L'));
  // After the attacker's own 2 MiB frame: only the victim's heap is measured.
  const size_t heap_before = moat::testing::HeapBytesInUse();
  FloodUntilPaused(raw_.get(), frame, *transport_);
  ASSERT_TRUE(transport_->is_connected());
  const long long held = moat::testing::HeapGrowthSince(heap_before);
  const Transport::Stats s = transport_->stats();
  std::printf("[measure] owner not reading, 2 MiB frames, 8 MiB budget: heap +%lld bytes, %zu "
              "queued messages, buffer %zu bytes (%zu held)\n",
              held, s.queued_messages, s.buffer_capacity, s.held_bytes);
  EXPECT_LE(held, static_cast<long long>(budget + 64 * KiB));
  EXPECT_LE(s.held_bytes, budget);
  // Nothing accepted is lost: every queued message is whole.
  for (size_t i = 0; i < s.queued_messages; ++i) {
    Result<Message> m = transport_->Receive(kGuard);
    ASSERT_TRUE(m.ok()) << m.error().ToString();
    EXPECT_EQ(m->payload.size(), 2 * MiB);
  }
  Finish();
}

// Messages queued for an owner that does not read, then a whole frame that
// waits for a descriptor which never comes, then a byte flood: the buffer
// holding that frame and the flood may only use what the queue leaves of the
// budget (it used to grow to the whole budget on top of the queue).
TEST_F(HostileResourceTest, FrameWaitingForItsDescriptorPlusFloodStaysInBudget) {
  const size_t budget = 8 * MiB;
  Start(ConnectionLimits::Defaults().Tightened(
      {.max_message_payload_size = 2 * MiB, .max_unprocessed_bytes = budget}));
  const size_t heap_before = moat::testing::HeapBytesInUse();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(WriteAll(raw_.get(), RawFrame(std::string(MiB, 'Q'))));
  while (transport_->stats().queued_messages < 3) std::this_thread::yield();
  // No descriptor: the frame waits (R4).
  ASSERT_TRUE(WriteAll(raw_.get(), RawFrame(std::string(2 * MiB, 'W'), /*fd_count=*/1)));
  FloodUntilPaused(raw_.get(), std::vector<uint8_t>(64 * KiB, 'f'), *transport_);
  const long long held = moat::testing::HeapGrowthSince(heap_before);
  const Transport::Stats s = transport_->stats();
  std::printf("[measure] 3 MiB queued + frame waiting for its descriptor + flood, 8 MiB budget: "
              "heap +%lld bytes (accounted %zu)\n",
              held, s.held_bytes);
  EXPECT_TRUE(transport_->is_connected()) << transport_->disconnect_reason()->ToString();
  EXPECT_LE(s.held_bytes, budget);
  EXPECT_LE(held, static_cast<long long>(budget + 64 * KiB));
  Finish();
}

// One large frame, followed by a few bytes of the next one: once the large
// frame is delivered (and the owner has dropped it), the buffer shrinks back.
TEST_F(HostileResourceTest, ReassemblyBufferShrinksAfterALargeFrame) {
  Start(ConnectionLimits::Defaults().Tightened({.max_message_payload_size = 8 * MiB}));
  const size_t heap_before = moat::testing::HeapBytesInUse();
  {
    std::vector<uint8_t> stream = RawFrame(std::string(8 * MiB, 'B'));
    stream.insert(stream.end(), {0x4D, 0x4F, 0x41, 0x54, 1, 0, 0});  // 7 bytes of the next header
    ASSERT_TRUE(WriteAll(raw_.get(), stream));
  }  // the test's own copy is gone before we measure
  {
    Result<Message> m = transport_->Receive(kGuard);
    ASSERT_TRUE(m.ok()) << m.error().ToString();
    EXPECT_EQ(m->payload.size(), 8 * MiB);
  }
  // The 7 bytes may still be on their way to the buffer: wait for them.
  while (transport_->stats().buffered_bytes != 7) std::this_thread::yield();
  const long long held = moat::testing::HeapGrowthSince(heap_before);
  std::printf("[measure] after an 8 MiB frame was delivered and dropped, 7 bytes pending: heap "
              "+%lld bytes (buffer %zu bytes)\n",
              held, transport_->stats().buffer_capacity);
  // The buffer keeps at most 1 MiB once a large frame is gone.
  EXPECT_LE(held, static_cast<long long>(1 * MiB + 64 * KiB));
  Finish();
}

// ---- TRP-15: accounting does not overshoot by a read ----

// Empty frames are 24 bytes on the wire but cost a queue slot each: a flood
// of them must stay within the budget, counted in real memory.
TEST_F(HostileResourceTest, EmptyFrameFloodStaysWithinTheByteBudget) {
  const size_t budget = 64 * KiB;
  Start(ConnectionLimits::Defaults().Tightened({.max_unprocessed_bytes = budget}));
  const size_t heap_before = moat::testing::HeapBytesInUse();
  std::vector<uint8_t> frames;
  for (int i = 0; i < 64; ++i) {
    const std::vector<uint8_t> f = RawFrame("");
    frames.insert(frames.end(), f.begin(), f.end());
  }
  FloodUntilPaused(raw_.get(), frames, *transport_);
  ASSERT_TRUE(transport_->is_connected());
  const Transport::Stats s = transport_->stats();
  const long long held = moat::testing::HeapGrowthSince(heap_before);
  std::printf("[measure] empty-frame flood, 64 KiB budget: %zu messages queued, accounted %zu "
              "bytes, heap +%lld bytes\n",
              s.queued_messages, s.held_bytes, held);
  EXPECT_LE(s.held_bytes, budget);
  EXPECT_LE(held, static_cast<long long>(budget + 8 * KiB));
  Finish();
}

// Frames held back for want of room (TRP-15) were accepted: a disconnect
// (here: our write finds the peer gone) loses none of them.
TEST_F(HostileResourceTest, HeldBackFramesSurviveADisconnect) {
  Start(ConnectionLimits::Defaults().Tightened({.max_unprocessed_bytes = 64 * KiB}));
  const size_t frame_size = kFrameHeaderSize + 10 * KiB;
  FloodUntilPaused(raw_.get(), RawFrame(std::string(10 * KiB, 'h')), *transport_);
  const Transport::Stats s = transport_->stats();
  const size_t whole = s.queued_messages + s.buffered_bytes / frame_size;
  ASSERT_GE(s.buffered_bytes, frame_size) << "no whole frame held back";
  raw_.reset();
  EXPECT_FALSE(transport_->Send(std::vector<uint8_t>{1}).ok());
  // A failed write stops sending but keeps reading to the peer's end of
  // stream (what it wrote before dying is delivered too), so at least the
  // held-back frames arrive, then a clean end.
  size_t received = 0;
  Result<Message> end = transport_->Receive(kGuard);
  for (; end.ok(); end = transport_->Receive(kGuard)) {
    EXPECT_EQ(end->payload.size(), 10 * KiB);
    ++received;
  }
  EXPECT_GE(received, whole);
  EXPECT_EQ(end.error().code(), ErrorCode::kPeerClosed) << end.error().ToString();
  Finish();
}

}  // namespace
}  // namespace moat::transport
