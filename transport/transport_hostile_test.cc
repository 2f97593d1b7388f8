// Hostile-peer harness: a raw socket end writes arbitrary bytes and
// descriptors straight at a moat Transport. Every attack must end in exactly
// one disconnect event with the right ErrorCode and reason, and the process's
// open-descriptor count must return to its baseline (R18, R22).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "core/deferred_close.h"
#include "core/frame.h"
#include "core/internal/little_endian.h"
#include "core/testing/fd_count.h"
#include "transport/testing/event_recorder.h"
#include "transport/testing/raw_peer.h"
#include "transport/transport.h"

namespace moat::transport {
namespace {

using limits::ConnectionLimits;
using testing::DisconnectRecorder;
using testing::OpenDevNull;
using testing::RawFrame;
using testing::RawHeader;
using testing::SendRaw;
using testing::WriteAll;

constexpr auto kGuard = std::chrono::seconds(60);

class HostilePeerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WaitForDeferredCloses();
    baseline_ = moat::testing::OpenFdCount();
  }

  // Creates the victim transport on one end of a socketpair; raw_ is the attacker.
  void Start(ConnectionLimits limits = ConnectionLimits::Defaults()) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    raw_.reset(sv[0]);
    auto t = TransportHandle(UniqueFd(sv[1])).CreateTransport(recorder_.Options(limits));
    ASSERT_TRUE(t.ok()) << t.error().ToString();
    transport_ = std::move(*t);
  }

  // Offsets in reasons are stream offsets (the byte of the whole stream
  // where the bad field starts, FRM-3). Waits for the disconnect, checks it, tears everything down, and checks
  // exactly one event and no leaked descriptor.
  void ExpectDisconnect(ErrorCode code, const std::string& text) {
    Error e = recorder_.WaitForFirst();
    EXPECT_EQ(e.code(), code) << e.ToString();
    EXPECT_EQ(e.ToString(), text);
    EXPECT_FALSE(transport_->is_connected());
    transport_.reset();
    raw_.reset();
    EXPECT_EQ(recorder_.count(), 1u);
    WaitForDeferredCloses();  // peer descriptors are closed on the closer thread (TRP-12)
  EXPECT_EQ(moat::testing::OpenFdCount(), baseline_);
  }

  void ExpectDeliveredUntimed(const std::string& payload) {
    auto m = transport_->Receive();  // no deadline: the waiter sleeps in recvmsg()
    ASSERT_TRUE(m.ok()) << m.error().ToString();
    EXPECT_EQ(std::string(m->payload.begin(), m->payload.end()), payload);
  }

  void ExpectDelivered(const std::string& payload, size_t fds = 0) {
    auto m = transport_->Receive(kGuard);
    ASSERT_TRUE(m.ok()) << m.error().ToString();
    EXPECT_EQ(std::string(m->payload.begin(), m->payload.end()), payload);
    EXPECT_EQ(m->fds.size(), fds);
  }

  size_t baseline_ = 0;
  DisconnectRecorder recorder_;
  UniqueFd raw_;
  std::unique_ptr<Transport> transport_;
};

TEST_F(HostilePeerTest, HugePayloadSize) {
  Start();
  ASSERT_TRUE(SendRaw(raw_.get(), RawHeader(1, std::numeric_limits<uint32_t>::max(), 0, 0)));
  ExpectDisconnect(ErrorCode::kLimitExceeded,
                   "frame.payload_size: payload_size 4294967295 exceeds "
                   "MAX_MESSAGE_PAYLOAD_SIZE 67108864 (at byte 8)");
}

TEST_F(HostilePeerTest, U32MaxDescriptorCount) {
  Start();
  ASSERT_TRUE(SendRaw(raw_.get(), RawHeader(1, 0, std::numeric_limits<uint32_t>::max(), 0),
                      OpenDevNull(3)));
  ExpectDisconnect(ErrorCode::kLimitExceeded,
                   "frame.fd_count: fd_count 4294967295 exceeds MAX_MESSAGE_FD_COUNT 128 "
                   "(at byte 12)");
}

// TRP-4/LIM-4: MSG_CTRUNC. No peer can put more than SCM_MAX_FD descriptors
// in one sendmsg, but the kernel also truncates when the RECEIVER has no
// descriptor numbers left (EMFILE): it installs what fits, closes the rest
// and sets MSG_CTRUNC. The frame's descriptor count can then never be met:
// the transport must disconnect and close what it did receive.
TEST_F(HostilePeerTest, DescriptorsTruncatedBecauseWeRanOutOfDescriptorNumbers) {
  Start();
  // The attacker's copies live above the limit we are about to set, so
  // closing them after sendmsg frees no number the receiver could use.
  std::vector<int> high;
  for (int fd : OpenDevNull(8)) {
    high.push_back(::fcntl(fd, F_DUPFD_CLOEXEC, 900));
    ::close(fd);
  }
  ASSERT_GE(high.front(), 900);
  const int lowest_free = ::dup(0);
  ::close(lowest_free);
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit tight = saved;
  tight.rlim_cur = static_cast<rlim_t>(lowest_free) + 2;  // room for at most 2 of the 8
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &tight), 0);
  const bool sent = SendRaw(raw_.get(), RawFrame("eight", 8), high);
  Error e = recorder_.WaitForFirst();
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  ASSERT_TRUE(sent);
  ExpectDisconnect(ErrorCode::kProtocolViolation,
                   "control data truncated (MSG_CTRUNC): the kernel dropped descriptors (more than "
                   "SCM_MAX_FD 253 in one receive, or none left under RLIMIT_NOFILE)");
}

// TRP-4: control messages other than SCM_RIGHTS. With SO_PASSCRED on our
// socket (set by whoever created it and handed it to us) the kernel attaches
// SCM_CREDENTIALS to what the peer sends; the stream must carry only
// descriptors, so the transport refuses it rather than skip it.
TEST_F(HostilePeerTest, CredentialsControlMessageIsRefused) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  raw_.reset(sv[0]);
  const int on = 1;
  ASSERT_EQ(::setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)), 0);
  auto t = TransportHandle(UniqueFd(sv[1])).CreateTransport(recorder_.Options(ConnectionLimits::Defaults()));
  ASSERT_TRUE(t.ok()) << t.error().ToString();
  transport_ = std::move(*t);
  ASSERT_TRUE(SendRaw(raw_.get(), RawFrame("hello")));
  ExpectDisconnect(ErrorCode::kProtocolViolation, "unexpected control message (only SCM_RIGHTS is allowed)");
}

TEST_F(HostilePeerTest, MoreDescriptorsThanDeclared) {
  Start();
  ASSERT_TRUE(SendRaw(raw_.get(), RawFrame("ab", 1), OpenDevNull(3)));
  ExpectDisconnect(ErrorCode::kProtocolViolation,
                   "2 descriptors arrived with no frame to claim them (at byte 26)");
}

TEST_F(HostilePeerTest, DescriptorsSmuggledBeforeTheFrameThatClaimsThem) {
  Start();
  // Frame 1 declares none but carries two; frame 2 (a later receive) claims two.
  ASSERT_TRUE(SendRaw(raw_.get(), RawFrame("one", 0), OpenDevNull(2)));
  // Not asserted: a slow receiver (TSan, valgrind) may already have read frame
  // 1 alone, rejected its unclaimed descriptors and closed the socket, so this
  // write can fail. Both orders must end in the same violation.
  (void)SendRaw(raw_.get(), RawFrame("two", 2));
  Error e = recorder_.WaitForFirst();
  EXPECT_EQ(e.code(), ErrorCode::kProtocolViolation) << e.ToString();
  transport_.reset();
  raw_.reset();
  EXPECT_EQ(recorder_.count(), 1u);
  WaitForDeferredCloses();
  EXPECT_EQ(moat::testing::OpenFdCount(), baseline_);
}

TEST_F(HostilePeerTest, FewerDescriptorsThenClose) {
  Start();
  ASSERT_TRUE(SendRaw(raw_.get(), RawFrame("xyz", 2), OpenDevNull(1)));
  raw_.reset();
  ExpectDisconnect(ErrorCode::kIncomplete,
                   "stream ended inside a frame: 27 unprocessed bytes of a 27-byte frame");
}

TEST_F(HostilePeerTest, AckForMoreThanSent) {
  Start();
  ASSERT_TRUE(SendRaw(raw_.get(), RawHeader(2, 0, 0, 5)));
  ExpectDisconnect(ErrorCode::kProtocolViolation,
                   "frame.ack_count: ack_count 5 exceeds the 0 descriptors outstanding");
}

TEST_F(HostilePeerTest, PiggybackedAckForMoreThanSent) {
  Start();
  std::vector<UniqueFd> fds;
  fds.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(transport_->Send(std::vector<uint8_t>{1}, std::move(fds)).ok());
  std::vector<uint8_t> frame = RawHeader(1, 0, 0, 2);
  ASSERT_TRUE(SendRaw(raw_.get(), frame));
  ExpectDisconnect(ErrorCode::kProtocolViolation,
                   "frame.ack_count: ack_count 2 exceeds the 1 descriptors outstanding");
}

TEST_F(HostilePeerTest, AckWithPayload) {
  Start();
  std::vector<uint8_t> frame = RawHeader(2, 4, 0, 1);
  frame.insert(frame.end(), {1, 2, 3, 4});
  ASSERT_TRUE(SendRaw(raw_.get(), frame));
  ExpectDisconnect(ErrorCode::kProtocolViolation,
                   "frame.payload_size: FD_ACK frame carries 4 payload bytes; acks carry none "
                   "(at byte 8)");
}

TEST_F(HostilePeerTest, UnknownType) {
  Start();
  ASSERT_TRUE(SendRaw(raw_.get(), RawHeader(7, 0, 0, 0)));
  ExpectDisconnect(ErrorCode::kProtocolViolation, "frame.type: unknown frame type 7 (at byte 4)");
}

TEST_F(HostilePeerTest, BadMagicAfterAGoodFrame) {
  Start();
  std::vector<uint8_t> stream = RawFrame("fine");
  std::vector<uint8_t> bad = RawHeader(1, 0, 0, 0, /*magic=*/0xDEADBEEF);
  stream.insert(stream.end(), bad.begin(), bad.end());
  ASSERT_TRUE(SendRaw(raw_.get(), stream));
  ExpectDelivered("fine");  // what was accepted before the violation is not lost
  ExpectDisconnect(ErrorCode::kMalformed,
                   "frame.magic: bad magic 0xdeadbeef, expected 0x54414f4d (at byte 28)");
}

TEST_F(HostilePeerTest, TruncatedFrameThenClose) {
  Start();
  std::vector<uint8_t> frame = RawFrame(std::string(100, 'q'));
  frame.resize(60);
  ASSERT_TRUE(SendRaw(raw_.get(), frame));
  raw_.reset();
  ExpectDisconnect(ErrorCode::kIncomplete,
                   "stream ended inside a frame: 60 unprocessed bytes of a 124-byte frame");
}

TEST_F(HostilePeerTest, TruncatedHeaderThenClose) {
  Start();
  ASSERT_TRUE(SendRaw(raw_.get(), std::vector<uint8_t>(10, 0x4D)));
  raw_.reset();
  ExpectDisconnect(ErrorCode::kIncomplete, "stream ended inside a frame: 10 unprocessed bytes");
}

TEST_F(HostilePeerTest, CleanCloseIsPeerClosed) {
  Start();
  raw_.reset();
  ExpectDisconnect(ErrorCode::kPeerClosed, "peer closed the connection");
}

// ---- every limit exactly at and one past (tightened for speed) ----

TEST_F(HostilePeerTest, PayloadSizeAtLimit) {
  Start(ConnectionLimits::Defaults().Tightened({.max_message_payload_size = 1000}));
  ASSERT_TRUE(SendRaw(raw_.get(), RawFrame(std::string(1000, 'p'))));
  ExpectDelivered(std::string(1000, 'p'));
  raw_.reset();
  ExpectDisconnect(ErrorCode::kPeerClosed, "peer closed the connection");
}

TEST_F(HostilePeerTest, PayloadSizeOnePastLimit) {
  Start(ConnectionLimits::Defaults().Tightened({.max_message_payload_size = 1000}));
  ASSERT_TRUE(SendRaw(raw_.get(), RawFrame(std::string(1001, 'p'))));
  ExpectDisconnect(ErrorCode::kLimitExceeded,
                   "frame.payload_size: payload_size 1001 exceeds MAX_MESSAGE_PAYLOAD_SIZE 1000 "
                   "(at byte 8)");
}

TEST_F(HostilePeerTest, FdCountAtLimit) {
  Start(ConnectionLimits::Defaults().Tightened({.max_message_fd_count = 4}));
  ASSERT_TRUE(SendRaw(raw_.get(), RawFrame("four", 4), OpenDevNull(4)));
  ExpectDelivered("four", 4);
  raw_.reset();
  ExpectDisconnect(ErrorCode::kPeerClosed, "peer closed the connection");
}

TEST_F(HostilePeerTest, FdCountOnePastLimit) {
  Start(ConnectionLimits::Defaults().Tightened({.max_message_fd_count = 4}));
  ASSERT_TRUE(SendRaw(raw_.get(), RawFrame("five", 5), OpenDevNull(5)));
  ExpectDisconnect(ErrorCode::kLimitExceeded,
                   "frame.fd_count: fd_count 5 exceeds MAX_MESSAGE_FD_COUNT 4 (at byte 12)");
}

TEST_F(HostilePeerTest, UnprocessedBytesAtLimit) {
  // One frame of exactly max_unprocessed_bytes fits.
  Start(ConnectionLimits::Defaults().Tightened({.max_unprocessed_bytes = 4096}));
  const std::string payload(4096 - kFrameHeaderSize, 'u');
  ASSERT_TRUE(SendRaw(raw_.get(), RawFrame(payload)));
  ExpectDelivered(payload);
  raw_.reset();
  ExpectDisconnect(ErrorCode::kPeerClosed, "peer closed the connection");
}

TEST_F(HostilePeerTest, UnprocessedBytesOnePastLimit) {
  Start(ConnectionLimits::Defaults().Tightened({.max_unprocessed_bytes = 4096}));
  ASSERT_TRUE(SendRaw(raw_.get(), RawFrame(std::string(4096 - kFrameHeaderSize + 1, 'u'))));
  ExpectDisconnect(ErrorCode::kLimitExceeded,
                   "unprocessed bytes 4096 reached MAX_UNPROCESSED_BYTES 4096");
}

TEST_F(HostilePeerTest, UnprocessedFdsAtLimit) {
  Start(ConnectionLimits::Defaults().Tightened({.max_unprocessed_fds = 4}));
  ASSERT_TRUE(SendRaw(raw_.get(), RawFrame("a", 2), OpenDevNull(2)));
  ASSERT_TRUE(SendRaw(raw_.get(), RawFrame("b", 2), OpenDevNull(2)));
  ExpectDelivered("a", 2);
  ExpectDelivered("b", 2);
  // The victim acknowledged the four descriptors; the attacker never reads
  // the FD_ACK, so its close is a reset rather than an orderly EOF.
  raw_.reset();
  ExpectDisconnect(ErrorCode::kPeerClosed,
                   "recvmsg: peer closed the connection (Connection reset by peer)");
}

TEST_F(HostilePeerTest, UnprocessedFdsOnePastLimitInReceiveQueue) {
  // The peer ignores the fd-ack window while the owner is not reading.
  Start(ConnectionLimits::Defaults().Tightened({.max_unprocessed_fds = 4}));
  ASSERT_TRUE(SendRaw(raw_.get(), RawFrame("a", 2), OpenDevNull(2)));
  ASSERT_TRUE(SendRaw(raw_.get(), RawFrame("b", 3), OpenDevNull(3)));
  ExpectDisconnect(ErrorCode::kLimitExceeded,
                   "unprocessed descriptors 2 queued + 0 buffered + 3 received exceed "
                   "MAX_UNPROCESSED_FDS 4");
}

TEST_F(HostilePeerTest, UnprocessedFdsOnePastLimitUnclaimed) {
  Start(ConnectionLimits::Defaults().Tightened({.max_unprocessed_fds = 4}));
  ASSERT_TRUE(SendRaw(raw_.get(), std::vector<uint8_t>(3, 0x4D), OpenDevNull(5)));
  ExpectDisconnect(ErrorCode::kLimitExceeded,
                   "unprocessed descriptors 0 queued + 0 buffered + 5 received exceed "
                   "MAX_UNPROCESSED_FDS 4");
}

TEST_F(HostilePeerTest, DescriptorsWithNoBytesAtAll) {
  Start();
  ASSERT_TRUE(SendRaw(raw_.get(), std::vector<uint8_t>{0x4D}, OpenDevNull(2)));
  raw_.reset();
  ExpectDisconnect(ErrorCode::kIncomplete, "stream ended inside a frame: 1 unprocessed bytes");
}

// A flood of valid messages while the owner never reads: reading stops at the
// budget (the attacker's writes block), memory stays bounded, no disconnect
// is needed; a flood of descriptors ignoring the window is a disconnect.
TEST_F(HostilePeerTest, FloodWhileOwnerNeverReadsIsBounded) {
  const ConnectionLimits tight =
      ConnectionLimits::Defaults().Tightened({.max_unprocessed_bytes = 64 * limits::KiB});
  Start(tight);
  ASSERT_EQ(::fcntl(raw_.get(), F_SETFL, O_NONBLOCK), 0);
  const std::vector<uint8_t> frame = RawFrame(std::string(1000, 'f'));
  size_t written = 0;
  // Write until the socket refuses: the victim has stopped reading.
  while (true) {
    const ssize_t n = ::send(raw_.get(), frame.data(), frame.size(), MSG_NOSIGNAL);
    if (n < 0) {
      ASSERT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK) << std::strerror(errno);
      while (!transport_->stats().reading_paused) std::this_thread::yield();
      // Paused reading leaves the socket full; one more try confirms it.
      if (::send(raw_.get(), frame.data(), frame.size(), MSG_NOSIGNAL) < 0) break;
      written += frame.size();
      continue;
    }
    written += static_cast<size_t>(n);
    ASSERT_LT(written, 64 * limits::MiB) << "victim never applied backpressure";
  }
  Transport::Stats s = transport_->stats();
  EXPECT_TRUE(s.reading_paused);
  EXPECT_LE(s.queued_bytes, tight.max_unprocessed_bytes);
  EXPECT_TRUE(transport_->is_connected());
  EXPECT_EQ(recorder_.count(), 0u);
  transport_.reset();
  raw_.reset();
  EXPECT_EQ(recorder_.count(), 0u);
  WaitForDeferredCloses();
  EXPECT_EQ(moat::testing::OpenFdCount(), baseline_);
}

TEST_F(HostilePeerTest, DescriptorFloodWhileOwnerNeverReads) {
  Start(ConnectionLimits::Defaults().Tightened({.max_unprocessed_fds = 16}));
  for (int i = 0; i < 40; ++i) {
    if (!SendRaw(raw_.get(), RawFrame("f", 1), OpenDevNull(1))) break;  // EPIPE once cut off
  }
  Error e = recorder_.WaitForFirst();
  EXPECT_EQ(e.code(), ErrorCode::kLimitExceeded) << e.ToString();
  EXPECT_NE(e.reason().find("exceed MAX_UNPROCESSED_FDS 16"), std::string::npos) << e.ToString();
  transport_.reset();
  raw_.reset();
  EXPECT_EQ(recorder_.count(), 1u);
  WaitForDeferredCloses();
  EXPECT_EQ(moat::testing::OpenFdCount(), baseline_);
}

// Hostile bytes read by a thread asleep in an untimed Receive() (the reader
// role, not the IO thread) end the same way: the error returned, one event,
// descriptors closed.
TEST_F(HostilePeerTest, ViolationReadByUntimedReceiveWaiter) {
  Start();
  ASSERT_TRUE(SendRaw(raw_.get(), RawFrame("ok")));
  ExpectDeliveredUntimed("ok");  // the waiter read it; input is now parked
  std::thread attacker([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // likely after the wait began
    std::vector<uint8_t> stream = RawFrame("x", 2);
    std::vector<uint8_t> bad = RawHeader(9, 0, 0, 0);
    stream.insert(stream.end(), bad.begin(), bad.end());
    EXPECT_TRUE(SendRaw(raw_.get(), stream, OpenDevNull(2)));
  });
  auto first = transport_->Receive();
  attacker.join();
  // The good frame before the bad one may or may not have been returned
  // first, depending on which read saw the error.
  if (first.ok()) {
    EXPECT_EQ(std::string(first->payload.begin(), first->payload.end()), "x");
    first = transport_->Receive();
  }
  ASSERT_FALSE(first.ok());
  // Stream offset: 26 ("ok") + 25 ("x") + 4.
  EXPECT_EQ(first.error().ToString(), "frame.type: unknown frame type 9 (at byte 55)");
  ExpectDisconnect(ErrorCode::kProtocolViolation, "frame.type: unknown frame type 9 (at byte 55)");
}

// The attacker handed us our socket and kept a copy of the same open file
// description, so it can flip O_NONBLOCK under us. No operation may depend on
// that flag: an untimed Receive() still waits for the message (falling back
// to poll), and a violation still ends in one event with nothing leaked.
TEST_F(HostilePeerTest, SharedDescriptionFlippedToNonBlocking) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  raw_.reset(sv[0]);
  UniqueFd shared(::fcntl(sv[1], F_DUPFD_CLOEXEC, 0));
  ASSERT_TRUE(shared.valid());
  auto t = TransportHandle(UniqueFd(sv[1])).CreateTransport(recorder_.Options());
  ASSERT_TRUE(t.ok()) << t.error().ToString();
  transport_ = std::move(*t);
  ASSERT_EQ(::fcntl(shared.get(), F_SETFL, O_NONBLOCK), 0);
  std::thread attacker([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // likely after the wait began
    EXPECT_TRUE(SendRaw(raw_.get(), RawFrame("still waited for")));
  });
  ExpectDeliveredUntimed("still waited for");
  attacker.join();
  ASSERT_EQ(::fcntl(shared.get(), F_SETFL, 0), 0);  // and back: still fine
  ASSERT_TRUE(SendRaw(raw_.get(), RawFrame("again")));
  ExpectDeliveredUntimed("again");
  shared.reset();
  ASSERT_TRUE(SendRaw(raw_.get(), RawHeader(9, 0, 0, 0), OpenDevNull(1)));
  // Stream offset: 40 ("still waited for") + 29 ("again") + 4.
  ExpectDisconnect(ErrorCode::kProtocolViolation, "frame.type: unknown frame type 9 (at byte 73)");
}

TEST_F(HostilePeerTest, HandlerModeViolationAlsoOneEvent) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  raw_.reset(sv[0]);
  int delivered = 0;
  TransportOptions options = recorder_.Options();
  options.on_message = [&](MessageView&) { ++delivered; };
  auto t = TransportHandle(UniqueFd(sv[1])).CreateTransport(std::move(options));
  ASSERT_TRUE(t.ok());
  transport_ = std::move(*t);
  std::vector<uint8_t> stream = RawFrame("ok", 1);
  std::vector<uint8_t> bad = RawHeader(9, 0, 0, 0);
  stream.insert(stream.end(), bad.begin(), bad.end());
  ASSERT_TRUE(SendRaw(raw_.get(), stream, OpenDevNull(1)));
  Error e = recorder_.WaitForFirst();
  EXPECT_EQ(delivered, 1);  // on_message ran before on_disconnect, on the same thread
  EXPECT_EQ(e.ToString(), "frame.type: unknown frame type 9 (at byte 30)");  // 26 + 4
  transport_.reset();
  raw_.reset();
  EXPECT_EQ(recorder_.count(), 1u);
  WaitForDeferredCloses();
  EXPECT_EQ(moat::testing::OpenFdCount(), baseline_);
}

// TRP-5: a "transport" descriptor that is a Unix stream socket but no
// connection. An unconnected socket would look alive forever while carrying
// nothing; a listening one turns readable whenever someone connects.
TEST(HostileHandleTest, UnconnectedUnixSocketIsRejected) {
  const size_t before = moat::testing::OpenFdCount();
  {
    auto t = TransportHandle(UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)))
                 .CreateTransport();
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(t.error().reason(), "transport socket is not connected");
  }
  EXPECT_EQ(moat::testing::OpenFdCount(), before);
}

TEST(HostileHandleTest, ListeningUnixSocketIsRejected) {
  const size_t before = moat::testing::OpenFdCount();
  {
    UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    // Abstract namespace: nothing to clean up on disk.
    const std::string name = "moat-hostile-listener-" + std::to_string(::getpid());
    std::memcpy(addr.sun_path + 1, name.data(), name.size());
    const socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), len), 0);
    ASSERT_EQ(::listen(listener.get(), 1), 0);
    auto t = TransportHandle(std::move(listener)).CreateTransport();
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(t.error().reason(), "transport socket is a listening socket, not a connection");
  }
  EXPECT_EQ(moat::testing::OpenFdCount(), before);
}

TEST(HostileHandleTest, DatagramUnixSocketIsRejected) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd keep(sv[1]);
  auto t = TransportHandle(UniqueFd(sv[0])).CreateTransport();
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(t.error().reason(), "transport socket must be AF_UNIX/SOCK_STREAM, got domain 1 type 2");
}

}  // namespace
}  // namespace moat::transport
