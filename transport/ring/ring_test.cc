// The shared-memory ring against a legitimate peer and a hostile one
// (docs/threat-model/ring.md cites these tests).
#include "transport/ring/ring.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "core/testing/fd_count.h"
#include "gtest/gtest.h"
#include "limits/limits.h"

namespace moat::transport::ring {
namespace {

constexpr uint64_t kCap = limits::RING_MIN_CAPACITY;

std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7);
  return v;
}

// A ring over ordinary memory, as a peer would see it.
struct LocalRing {
  std::vector<uint64_t> storage = std::vector<uint64_t>((kControlSize + kCap) / 8, 0);
  RingView view() { return {reinterpret_cast<uint8_t*>(storage.data()), kCap}; }
  void SetU64(size_t offset, uint64_t v) { std::memcpy(view().base + offset, &v, 8); }
  void SetU32(size_t offset, uint32_t v) { std::memcpy(view().base + offset, &v, 4); }
  uint64_t U64(size_t offset) {
    uint64_t v;
    std::memcpy(&v, view().base + offset, 8);
    return v;
  }
};

TEST(RingTest, RecordsArriveInOrderAcrossManyWraps) {
  LocalRing ring;
  RingWriter writer(ring.view(), -1);
  RingReader reader(ring.view(), -1);
  std::vector<uint8_t> out;
  size_t next_read = 0;
  for (size_t i = 0; i < 2000; ++i) {
    const auto payload = Pattern(i % 613, static_cast<uint8_t>(i));
    Result<bool> wrote = writer.TryWrite(payload);
    ASSERT_TRUE(wrote.ok());
    while (!*wrote) {  // full: drain one, retry
      Result<bool> got = reader.TryRead(&out);
      ASSERT_TRUE(got.ok() && *got);
      EXPECT_EQ(out, Pattern(next_read % 613, static_cast<uint8_t>(next_read)));
      ++next_read;
      wrote = writer.TryWrite(payload);
      ASSERT_TRUE(wrote.ok());
    }
  }
  for (;;) {
    Result<bool> got = reader.TryRead(&out);
    ASSERT_TRUE(got.ok());
    if (!*got) break;
    EXPECT_EQ(out, Pattern(next_read % 613, static_cast<uint8_t>(next_read)));
    ++next_read;
  }
  EXPECT_EQ(next_read, 2000u);
  EXPECT_GT(ring.U64(kTailOffset), 10 * kCap);  // wrapped many times
}

TEST(RingTest, LargestPayloadFitsAndWraps) {
  LocalRing ring;
  RingWriter writer(ring.view(), -1);
  RingReader reader(ring.view(), -1);
  std::vector<uint8_t> out;
  ASSERT_TRUE(*writer.TryWrite(Pattern(100, 1)));
  ASSERT_TRUE(*reader.TryRead(&out));
  const auto big = Pattern(MaxPayload(kCap), 9);  // starts at 112: wraps
  ASSERT_TRUE(*writer.TryWrite(big));
  ASSERT_TRUE(*reader.TryRead(&out));
  EXPECT_EQ(out, big);
}

TEST(RingTest, RecordLayoutMatchesWireFormatDoc) {
  // docs/wire-format-ring.md: the example record.
  LocalRing ring;
  RingWriter writer(ring.view(), -1);
  const std::string hello = "hello";
  ASSERT_TRUE(*writer.TryWrite({reinterpret_cast<const uint8_t*>(hello.data()), hello.size()}));
  const std::vector<uint8_t> expected = {0x05, 0, 0, 0, 0, 0, 0, 0, 'h', 'e', 'l', 'l', 'o', 0, 0, 0};
  EXPECT_EQ(std::vector<uint8_t>(ring.view().base + kControlSize,
                                 ring.view().base + kControlSize + 16),
            expected);
  EXPECT_EQ(ring.U64(kHeadOffset), 16u);
  EXPECT_EQ(kTailOffset, 64u);
  EXPECT_EQ(kConsumerWaitingOffset, 128u);
  EXPECT_EQ(kProducerWaitingOffset, 192u);
  EXPECT_EQ(kControlSize, 256u);
}

// ---- memfd adoption ----

UniqueFd Memfd(uint64_t size, unsigned seals) {
  UniqueFd fd(::memfd_create("t", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  EXPECT_EQ(::ftruncate(fd.get(), static_cast<off_t>(size)), 0);
  if (seals != 0) EXPECT_EQ(::fcntl(fd.get(), F_ADD_SEALS, seals), 0);
  return fd;
}

TEST(RingHostileTest, AdoptRefusesUnsealedMemfd) {
  const size_t before = testing::OpenFdCount();
  auto r = RingMemory::Adopt(Memfd(kControlSize + kCap, 0), kCap);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kProtocolViolation);
  EXPECT_NE(r.error().reason().find("F_SEAL_SHRINK"), std::string::npos) << r.error().reason();
  // Sealed against shrinking but not against adding seals: still refused.
  r = RingMemory::Adopt(Memfd(kControlSize + kCap, F_SEAL_SHRINK | F_SEAL_GROW), kCap);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(testing::OpenFdCount(), before);
}

TEST(RingHostileTest, AdoptRefusesWrongSize) {
  const size_t before = testing::OpenFdCount();
  for (uint64_t size : {uint64_t{0}, kControlSize + kCap - 1, kControlSize + kCap / 2,
                        kControlSize + 2 * kCap}) {
    auto r = RingMemory::Adopt(Memfd(size, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), kCap);
    ASSERT_FALSE(r.ok()) << size;
    EXPECT_NE(r.error().reason().find("size"), std::string::npos) << r.error().reason();
  }
  EXPECT_EQ(testing::OpenFdCount(), before);
}

TEST(RingHostileTest, AdoptRefusesDescriptorsThatAreNotMemfds) {
  const size_t before = testing::OpenFdCount();
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  UniqueFd keep(p[1]);
  auto r = RingMemory::Adopt(UniqueFd(p[0]), kCap);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().reason().find("not a sealable memfd"), std::string::npos);
  r = RingMemory::Adopt(UniqueFd(::open("/dev/zero", O_RDWR | O_CLOEXEC)), kCap);
  ASSERT_FALSE(r.ok());
  keep.reset();
  EXPECT_EQ(testing::OpenFdCount(), before);
}

TEST(RingHostileTest, AdoptRefusesWriteSealedMemfd) {
  auto r = RingMemory::Adopt(
      Memfd(kControlSize + kCap, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL), kCap);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().reason().find("mapped"), std::string::npos) << r.error().reason();
}

TEST(RingTest, AdoptAcceptsWhatCreateMakes) {
  auto created = RingMemory::Create(kCap);
  ASSERT_TRUE(created.ok());
  auto adopted = RingMemory::Adopt(UniqueFd(::dup(created->fd())), kCap);
  ASSERT_TRUE(adopted.ok()) << adopted.error().ToString();
  // Two mappings of one memfd: what one writes, the other reads.
  RingWriter writer(std::move(*created), UniqueFd());
  RingReader reader(std::move(*adopted), UniqueFd());
  ASSERT_TRUE(*writer.TryWrite(Pattern(64, 3)));
  std::vector<uint8_t> out;
  ASSERT_TRUE(*reader.TryRead(&out));
  EXPECT_EQ(out, Pattern(64, 3));
}

TEST(RingHostileTest, DoorbellMustBeSeqpacket) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  EXPECT_FALSE(CheckDoorbell(a.get()).ok());
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  UniqueFd r(p[0]), w(p[1]);
  EXPECT_FALSE(CheckDoorbell(r.get()).ok());
  UniqueFd c, d;
  ASSERT_TRUE(MakeDoorbellPair(&c, &d).ok());
  EXPECT_TRUE(CheckDoorbell(c.get()).ok());
}

// ---- scribbled indices and lengths ----

Error ReadError(RingReader& reader) {
  std::vector<uint8_t> out;
  Result<bool> got = reader.TryRead(&out);
  EXPECT_FALSE(got.ok());
  return got.ok() ? Error(ErrorCode::kIo, "no error") : got.error();
}

TEST(RingHostileTest, ScribbledHeadBehindTailOrPastCapacityIsRefused) {
  for (uint64_t head : {~uint64_t{0}, kCap + 8, uint64_t{1} << 63}) {
    LocalRing ring;
    RingReader reader(ring.view(), -1);
    ring.SetU64(kHeadOffset, head);
    Error e = ReadError(reader);
    EXPECT_EQ(e.code(), ErrorCode::kProtocolViolation);
    EXPECT_NE(e.reason().find("not within capacity"), std::string::npos) << e.reason();
  }
  // Behind our tail after a legitimate record.
  LocalRing ring;
  RingWriter writer(ring.view(), -1);
  RingReader reader(ring.view(), -1);
  std::vector<uint8_t> out;
  ASSERT_TRUE(*writer.TryWrite(Pattern(16, 0)));
  ASSERT_TRUE(*reader.TryRead(&out));
  ring.SetU64(kHeadOffset, 8);
  EXPECT_EQ(ReadError(reader).code(), ErrorCode::kProtocolViolation);
}

TEST(RingHostileTest, HeadSplittingARecordHeaderIsRefused) {
  LocalRing ring;
  RingReader reader(ring.view(), -1);
  ring.SetU64(kHeadOffset, 4);
  EXPECT_NE(ReadError(reader).reason().find("record boundary"), std::string::npos);
}

TEST(RingHostileTest, LengthBeyondRingOrPastHeadIsRefused) {
  {
    LocalRing ring;
    RingReader reader(ring.view(), -1);
    ring.SetU32(kControlSize, 0xffffffffu);
    ring.SetU64(kHeadOffset, kCap);
    Error e = ReadError(reader);
    EXPECT_EQ(e.code(), ErrorCode::kLimitExceeded);
    EXPECT_NE(e.reason().find("exceeds the ring's max payload"), std::string::npos);
  }
  {
    LocalRing ring;
    RingReader reader(ring.view(), -1);
    ring.SetU32(kControlSize, 100);  // needs 112 bytes, 64 published
    ring.SetU64(kHeadOffset, 64);
    Error e = ReadError(reader);
    EXPECT_NE(e.reason().find("runs past head"), std::string::npos) << e.reason();
  }
  {
    LocalRing ring;
    RingReader reader(ring.view(), -1);
    ring.SetU32(kControlSize + 4, 1);  // reserved word
    ring.SetU64(kHeadOffset, 8);
    EXPECT_EQ(ReadError(reader).code(), ErrorCode::kMalformed);
  }
}

TEST(RingHostileTest, ABrokenReaderStaysBroken) {
  LocalRing ring;
  RingReader reader(ring.view(), -1);
  ring.SetU64(kHeadOffset, 3);
  const std::string first = ReadError(reader).reason();
  ring.SetU64(kHeadOffset, 0);  // the peer "repairs" the ring: too late
  EXPECT_EQ(ReadError(reader).reason(), first);
}

LocalRing* g_scribble_ring = nullptr;

TEST(RingHostileTest, LengthChangedAfterTheReadIsNotSeen) {
  LocalRing ring;
  RingWriter writer(ring.view(), -1);
  RingReader reader(ring.view(), -1);
  const auto payload = Pattern(24, 5);
  ASSERT_TRUE(*writer.TryWrite(payload));
  ASSERT_TRUE(*writer.TryWrite(Pattern(8, 6)));
  g_scribble_ring = &ring;
  // Between our read of the length and the copy, the peer rewrites the
  // length to something huge and the head far ahead.
  internal::g_after_length_read_for_testing = [](RingView) {
    g_scribble_ring->SetU32(kControlSize, 0x7fffffff);
    g_scribble_ring->SetU64(kHeadOffset, ~uint64_t{0});
  };
  std::vector<uint8_t> out;
  Result<bool> got = reader.TryRead(&out);
  internal::g_after_length_read_for_testing = nullptr;
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  // The record we read is the 24 bytes whose length we validated, no more.
  EXPECT_EQ(out, payload);
  EXPECT_EQ(ring.U64(kTailOffset), RecordSize(24));
  // The scribbled head is caught on the next read.
  EXPECT_EQ(ReadError(reader).code(), ErrorCode::kProtocolViolation);
}

TEST(RingHostileTest, WriterRefusesScribbledTail) {
  for (uint64_t tail : {uint64_t{8}, ~uint64_t{0} - kCap}) {
    LocalRing ring;
    RingWriter writer(ring.view(), -1);
    ring.SetU64(kTailOffset, tail);  // past our head (0), or more than a ring behind
    Result<bool> wrote = writer.TryWrite(Pattern(8, 0));
    ASSERT_FALSE(wrote.ok());
    EXPECT_NE(wrote.error().reason().find("ring tail"), std::string::npos);
    // Broken for good.
    ring.SetU64(kTailOffset, 0);
    EXPECT_FALSE(writer.TryWrite(Pattern(8, 0)).ok());
  }
}

TEST(RingHostileTest, ScribbledPayloadBytesOnlyChangeTheCopy) {
  // The peer rewrites payload bytes after publishing: we deliver some version
  // of them, never read outside the record.
  LocalRing ring;
  RingWriter writer(ring.view(), -1);
  RingReader reader(ring.view(), -1);
  ASSERT_TRUE(*writer.TryWrite(Pattern(32, 1)));
  std::memset(ring.view().base + kControlSize + kRecordHeaderSize, 0xee, 32);
  std::vector<uint8_t> out;
  ASSERT_TRUE(*reader.TryRead(&out));
  EXPECT_EQ(out, std::vector<uint8_t>(32, 0xee));
}

// ---- doorbells: storms and sleeping ----

TEST(RingHostileTest, DoorbellStormWithoutRecordsIsBounded) {
  LocalRing ring;
  UniqueFd mine, theirs;
  ASSERT_TRUE(MakeDoorbellPair(&mine, &theirs).ok());
  RingReader reader(ring.view(), mine.get());
  std::atomic<bool> stop{false};
  std::thread storm([&] {
    const uint8_t b = 1;
    while (!stop.load()) (void)::send(theirs.get(), &b, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
  });
  std::vector<uint8_t> out;
  Status s = reader.Read(&out);
  stop = true;
  storm.join();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kProtocolViolation);
  EXPECT_NE(s.error().reason().find("RING_MAX_SPURIOUS_WAKES"), std::string::npos);
  EXPECT_LE(reader.wakes(), limits::RING_MAX_SPURIOUS_WAKES + 1);
}

TEST(RingHostileTest, DoorbellStormDoesNotStopRecords) {
  // Stale bells mixed with real records: every record arrives, and the
  // spurious budget restarts with each Read.
  LocalRing ring;
  UniqueFd mine, theirs;
  ASSERT_TRUE(MakeDoorbellPair(&mine, &theirs).ok());
  RingReader reader(ring.view(), mine.get());
  RingWriter writer(ring.view(), theirs.get());
  std::vector<uint8_t> out;
  for (int i = 0; i < 50; ++i) {
    const uint8_t b = 1;
    for (int j = 0; j < 10; ++j) (void)::send(theirs.get(), &b, 1, MSG_DONTWAIT);
    ASSERT_TRUE(*writer.TryWrite(Pattern(16, static_cast<uint8_t>(i))));
    ASSERT_TRUE(reader.Read(&out).ok());
    EXPECT_EQ(out, Pattern(16, static_cast<uint8_t>(i)));
  }
}

// The peer, a forked child, sees us sleeping (our waiting flag set) and is
// killed there: the wait ends with kPeerClosed, not a hang.
TEST(RingHostileTest, PeerKilledMidWaitEndsTheRead) {
  auto memory = RingMemory::Create(kCap);
  ASSERT_TRUE(memory.ok());
  const RingView view = memory->view();
  UniqueFd mine, theirs;
  ASSERT_TRUE(MakeDoorbellPair(&mine, &theirs).ok());
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    mine.reset();
    // Two records, then wait for the reader to sleep, then die.
    RingWriter writer(view, theirs.get());
    (void)writer.TryWrite(Pattern(10, 1));
    (void)writer.TryWrite(Pattern(20, 2));
    while (__atomic_load_n(reinterpret_cast<uint32_t*>(view.base + kConsumerWaitingOffset),
                           __ATOMIC_SEQ_CST) == 0) {
      sched_yield();
    }
    ::raise(SIGKILL);
  }
  theirs.reset();
  RingReader reader(std::move(*memory), std::move(mine));
  std::vector<uint8_t> out;
  // What the peer published before dying is delivered...
  ASSERT_TRUE(reader.Read(&out).ok());
  EXPECT_EQ(out, Pattern(10, 1));
  ASSERT_TRUE(reader.Read(&out).ok());
  EXPECT_EQ(out, Pattern(20, 2));
  // ...then the wait sees the hang-up.
  Status s = reader.Read(&out);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kPeerClosed);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status));
}

TEST(RingHostileTest, ConsumerKilledWhileTheWriterWaitsForRoom) {
  auto memory = RingMemory::Create(kCap);
  ASSERT_TRUE(memory.ok());
  const RingView view = memory->view();
  UniqueFd mine, theirs;
  ASSERT_TRUE(MakeDoorbellPair(&mine, &theirs).ok());
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    mine.reset();
    while (__atomic_load_n(reinterpret_cast<uint32_t*>(view.base + kProducerWaitingOffset),
                           __ATOMIC_SEQ_CST) == 0) {
      sched_yield();
    }
    ::raise(SIGKILL);
  }
  theirs.reset();
  RingWriter writer(std::move(*memory), std::move(mine));
  const auto payload = Pattern(1000, 0);
  Status s;
  for (int i = 0; i < 10 && s.ok(); ++i) s = writer.Write(payload);  // 4 fit, then wait
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kPeerClosed);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
}

TEST(RingTest, WatchedSocketHangUpEndsTheWait) {
  LocalRing ring;
  UniqueFd mine, theirs;
  ASSERT_TRUE(MakeDoorbellPair(&mine, &theirs).ok());
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd watch(sv[0]);
  ::close(sv[1]);
  RingReader reader(ring.view(), mine.get(), watch.get());
  std::vector<uint8_t> out;
  Status s = reader.Read(&out);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kPeerClosed);
}

// Two processes, the full sleep/doorbell protocol in both directions
// (consumer sleeps on empty, producer sleeps on full), every byte checked.
TEST(RingTest, CrossProcessStreamWithSleepsBothWays) {
  auto memory = RingMemory::Create(kCap);
  ASSERT_TRUE(memory.ok());
  UniqueFd mine, theirs;
  ASSERT_TRUE(MakeDoorbellPair(&mine, &theirs).ok());
  constexpr int kRecords = 3000;
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    mine.reset();
    auto adopted = RingMemory::Adopt(UniqueFd(::dup(memory->fd())), kCap);
    if (!adopted.ok()) ::_exit(3);
    RingWriter writer(std::move(*adopted), std::move(theirs));
    for (int i = 0; i < kRecords; ++i) {
      if (!writer.Write(Pattern(static_cast<size_t>(i * 37 % 2000), static_cast<uint8_t>(i))).ok()) {
        ::_exit(4);
      }
    }
    ::_exit(0);
  }
  theirs.reset();
  RingReader reader(std::move(*memory), std::move(mine));
  std::vector<uint8_t> out;
  for (int i = 0; i < kRecords; ++i) {
    ASSERT_TRUE(reader.Read(&out).ok()) << i;
    ASSERT_EQ(out, Pattern(static_cast<size_t>(i * 37 % 2000), static_cast<uint8_t>(i))) << i;
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(reader.Read(&out).error().code(), ErrorCode::kPeerClosed);
}

TEST(RingDeathTest, OversizedLocalPayloadIsAProgrammerError) {
  LocalRing ring;
  RingWriter writer(ring.view(), -1);
  const std::vector<uint8_t> big(MaxPayload(kCap) + 1);
  EXPECT_DEATH((void)writer.TryWrite(big), "send it over the socket");
}

}  // namespace
}  // namespace moat::transport::ring
