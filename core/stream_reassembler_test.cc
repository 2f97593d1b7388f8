#include "core/stream_reassembler.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "core/testing/fd_count.h"

namespace moat {
namespace {

using limits::ConnectionLimits;

std::vector<uint8_t> Frame(const std::string& payload, uint32_t fds = 0, uint32_t acks = 0) {
  auto header = EncodeFrameHeader({.type = FrameType::kMessage,
                                   .payload_size = static_cast<uint32_t>(payload.size()),
                                   .fd_count = fds,
                                   .ack_count = acks});
  std::vector<uint8_t> out(header.begin(), header.end());
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

std::vector<UniqueFd> DevNull(size_t n) {
  std::vector<UniqueFd> out;
  for (size_t i = 0; i < n; ++i) out.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  return out;
}

std::string PayloadOf(const ReceivedFrame& f) {
  return std::string(f.payload.begin(), f.payload.end());
}

TEST(StreamReassemblerTest, ByteAtATimeYieldsFramesInOrder) {
  StreamReassembler r;
  std::vector<uint8_t> stream = Frame("hello");
  auto second = Frame("", 0, 3);
  stream.insert(stream.end(), second.begin(), second.end());
  std::vector<std::string> got;
  for (uint8_t b : stream) {
    ASSERT_TRUE(r.Append({&b, 1}).ok());
    auto next = r.Next();
    ASSERT_TRUE(next.ok()) << next.error().ToString();
    if (next->has_value()) got.push_back(PayloadOf(**next) + "/" + std::to_string((*next)->header.ack_count));
  }
  EXPECT_EQ(got, (std::vector<std::string>{"hello/0", "/3"}));
  EXPECT_TRUE(r.Finish().ok());
}

TEST(StreamReassemblerTest, ManyFramesInOneReceive) {
  StreamReassembler r;
  std::vector<uint8_t> stream;
  for (int i = 0; i < 100; ++i) {
    auto f = Frame(std::to_string(i));
    stream.insert(stream.end(), f.begin(), f.end());
  }
  ASSERT_TRUE(r.Append(stream).ok());
  for (int i = 0; i < 100; ++i) {
    auto next = r.Next();
    ASSERT_TRUE(next.ok() && next->has_value());
    EXPECT_EQ(PayloadOf(**next), std::to_string(i));
  }
  auto end = r.Next();
  ASSERT_TRUE(end.ok());
  EXPECT_FALSE(end->has_value());
  EXPECT_EQ(r.unprocessed_bytes(), 0u);
}

TEST(StreamReassemblerTest, DescriptorsGoToTheFrameThatClaimsThem) {
  size_t baseline = testing::OpenFdCount();
  {
    StreamReassembler r;
    ASSERT_TRUE(r.Append(Frame("a", 2), DevNull(2)).ok());
    ASSERT_TRUE(r.Append(Frame("b", 1), DevNull(1)).ok());
    auto a = r.Next();
    ASSERT_TRUE(a.ok() && a->has_value());
    EXPECT_EQ((*a)->fds.size(), 2u);
    auto b = r.Next();
    ASSERT_TRUE(b.ok() && b->has_value());
    EXPECT_EQ((*b)->fds.size(), 1u);
    EXPECT_TRUE((*b)->fds[0].valid());
    EXPECT_TRUE(r.Finish().ok());
  }
  EXPECT_EQ(testing::OpenFdCount(), baseline);
}

TEST(StreamReassemblerTest, FrameWaitsForLateDescriptors) {
  StreamReassembler r;
  auto f = Frame("x", 2);
  ASSERT_TRUE(r.Append(f, DevNull(1)).ok());
  auto wait = r.Next();
  ASSERT_TRUE(wait.ok());
  EXPECT_FALSE(wait->has_value());
  ASSERT_TRUE(r.Append({}, DevNull(1)).ok());
  auto got = r.Next();
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->fds.size(), 2u);
}

TEST(StreamReassemblerTest, MoreDescriptorsThanDeclaredIsAViolation) {
  size_t baseline = testing::OpenFdCount();
  {
    StreamReassembler r;
    ASSERT_TRUE(r.Append(Frame("x", 1), DevNull(3)).ok());
    auto first = r.Next();
    ASSERT_TRUE(first.ok() && first->has_value());
    auto extra = r.Next();
    ASSERT_FALSE(extra.ok());
    EXPECT_EQ(extra.error().code(), ErrorCode::kProtocolViolation);
    EXPECT_EQ(extra.error().reason(), "2 descriptors arrived with no frame to claim them");
  }
  EXPECT_EQ(testing::OpenFdCount(), baseline);
}

TEST(StreamReassemblerTest, DescriptorsOfAnEarlierFrameCannotBeClaimedByALaterOne) {
  StreamReassembler r;
  // Frame one under-declares (0) but carries 1 descriptor; frame two declares 1, sent alone.
  auto one = Frame("1", 0);
  auto two = Frame("2", 1);
  ASSERT_TRUE(r.Append(one, DevNull(1)).ok());
  auto first = r.Next();
  ASSERT_TRUE(first.ok() && first->has_value());
  ASSERT_TRUE(r.Append(two).ok());
  auto second = r.Next();
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code(), ErrorCode::kProtocolViolation);
  EXPECT_EQ(second.error().field(), "frame.fd_count");
}

TEST(StreamReassemblerTest, UnprocessedFdsAtLimitAcceptedOnePastRejected) {
  size_t baseline = testing::OpenFdCount();
  {
    ConnectionLimits tight = ConnectionLimits::Defaults().Tightened({.max_unprocessed_fds = 4});
    StreamReassembler r(tight);
    ASSERT_TRUE(r.Append({}, DevNull(4)).ok());
    EXPECT_EQ(r.unprocessed_fds(), 4u);
    Status past = r.Append({}, DevNull(1));
    ASSERT_FALSE(past.ok());
    EXPECT_EQ(past.error().reason(), "unprocessed descriptors 4 + 1 exceed MAX_UNPROCESSED_FDS 4");
  }
  EXPECT_EQ(testing::OpenFdCount(), baseline);
}

TEST(StreamReassemblerTest, UnprocessedBytesAtLimitAcceptedOnePastRejected) {
  ConnectionLimits tight =
      ConnectionLimits::Defaults().Tightened({.max_message_payload_size = 1000,
                                              .max_unprocessed_bytes = 100});
  StreamReassembler r(tight);
  // An incomplete 1000-byte frame: the reassembler must not buffer past 100 bytes.
  auto f = Frame(std::string(1000, 'z'));
  ASSERT_TRUE(r.Append({f.data(), 100}).ok());
  EXPECT_EQ(r.unprocessed_bytes(), 100u);
  EXPECT_TRUE(r.PrepareWrite(1).empty());
  Status past = r.Append({f.data() + 100, 1});
  ASSERT_FALSE(past.ok());
  EXPECT_EQ(past.error().code(), ErrorCode::kLimitExceeded);
  EXPECT_LE(r.buffer_capacity(), 64u * 1024);
}

TEST(StreamReassemblerTest, HugeDeclaredPayloadDoesNotAllocate) {
  StreamReassembler r;
  auto header = EncodeFrameHeader({.type = FrameType::kMessage,
                                   .payload_size = limits::MAX_MESSAGE_PAYLOAD_SIZE});
  ASSERT_TRUE(r.Append(header).ok());
  auto next = r.Next();
  ASSERT_TRUE(next.ok());
  EXPECT_FALSE(next->has_value());
  // Only the bytes that arrived are buffered, never the declared 64 MiB.
  EXPECT_LT(r.buffer_capacity(), 1024u * 1024);
  Status end = r.Finish();
  ASSERT_FALSE(end.ok());
  EXPECT_EQ(end.error().reason(),
            "stream ended inside a frame: 24 unprocessed bytes of a 67108888-byte frame");
}

// A scatter read as the transport makes it: recvmsg() into both spans.
size_t ScatterRead(StreamReassembler& r, std::span<const uint8_t> from, size_t want,
                   StreamReassembler::ReadSpace* seen = nullptr) {
  StreamReassembler::ReadSpace space = r.PrepareRead(want);
  if (seen != nullptr) *seen = space;
  size_t n = 0;
  for (std::span<uint8_t> part : {space.first, space.second}) {
    const size_t take = std::min(part.size(), from.size() - n);
    if (take > 0) std::memcpy(part.data(), from.data() + n, take);
    n += take;
  }
  EXPECT_TRUE(r.CommitWrite(n).ok());
  return n;
}

// Issue 14: once a large frame's header is in, its payload is received
// straight into a buffer of its own, handed out as ReceivedFrame::owned (the
// message needs no copy); back-to-back large frames each get one, and only
// the bytes a shared-buffer read had already brought are copied. Small
// frames stay in the shared buffer. The result equals plain reassembly.
TEST(StreamReassemblerTest, LargeFramesAreReceivedIntoTheirOwnBuffers) {
  const size_t kLarge = 3 * StreamReassembler::kDirectFrameMin + 17;
  std::vector<uint8_t> stream;
  std::vector<std::string> payloads = {std::string(kLarge, 'a'), std::string(kLarge + 1, 'b'),
                                       "small", std::string(kLarge, 'c')};
  for (size_t i = 0; i < payloads[1].size(); i += 97) payloads[1][i] = static_cast<char>(i);
  for (const std::string& p : payloads) {
    std::vector<uint8_t> f = Frame(p);
    stream.insert(stream.end(), f.begin(), f.end());
  }
  for (const size_t kChunk : {size_t{8 * 1024}, size_t{7}, size_t{1000}, size_t{1} << 20}) {
  SCOPED_TRACE(kChunk);
  StreamReassembler r;
  size_t done = 0;
  std::vector<ReceivedFrame> frames;
  std::vector<std::string> got;  // ring payloads are valid only until the next call
  size_t peak_over_arrived = 0;
  while (done < stream.size()) {
    done += ScatterRead(r, std::span(stream).subspan(done), kChunk);
    // Grows only with bytes that arrived: one receive ahead of them at most.
    peak_over_arrived = std::max(peak_over_arrived,
                                 r.buffer_capacity() - std::min(r.buffer_capacity(),
                                                                r.unprocessed_bytes()));
    while (true) {
      auto next = r.Next();
      ASSERT_TRUE(next.ok()) << next.error().ToString();
      if (!next->has_value()) break;
      got.push_back(PayloadOf(**next));
      frames.push_back(std::move(**next));
    }
  }
  ASSERT_EQ(frames.size(), payloads.size());
  for (size_t i = 0; i < frames.size(); ++i) {
    EXPECT_EQ(got[i], payloads[i]) << "frame " << i;
    const bool large = payloads[i].size() >= StreamReassembler::kDirectFrameMin;
    EXPECT_EQ(!frames[i].owned.empty(), large) << "frame " << i;
    if (large) {
      EXPECT_EQ(frames[i].payload.data(), frames[i].owned.data()) << "frame " << i;
      EXPECT_EQ(frames[i].owned.size(), payloads[i].size());
      EXPECT_EQ(frames[i].owned.capacity(), payloads[i].size()) << "allocated past the frame";
    }
  }
  EXPECT_LE(peak_over_arrived, kChunk + 4 * kFrameHeaderSize + 64 * 1024);
  EXPECT_EQ(r.unprocessed_bytes(), 0u);
  EXPECT_TRUE(r.Finish().ok());
  }
}

// Descriptors of a large frame arrive with its first bytes and stay its own;
// a later frame cannot claim them, and the next frame's descriptors (with
// its first bytes, in the large frame's last receive) are not the large
// frame's either.
TEST(StreamReassemblerTest, LargeFrameKeepsItsDescriptors) {
  const size_t kLarge = 2 * StreamReassembler::kDirectFrameMin;
  std::vector<uint8_t> one = Frame(std::string(kLarge, 'x'), /*fds=*/2);
  std::vector<uint8_t> two = Frame("next", /*fds=*/1);
  const size_t before = moat::testing::OpenFdCount();
  {
    StreamReassembler r;
    // First receive: the header and a little, with the frame's 2 descriptors.
    StreamReassembler::ReadSpace space = r.PrepareRead(100);
    std::memcpy(space.first.data(), one.data(), 100);
    ASSERT_TRUE(r.CommitWrite(100, DevNull(2)).ok());
    auto none = r.Next();
    ASSERT_TRUE(none.ok() && !none->has_value());
    // Then the rest of it into its own buffer, plus the next header.
    space = r.PrepareRead(1 << 20);
    ASSERT_EQ(space.first.size(), one.size() - 100);
    ASSERT_EQ(space.second.size(), kFrameHeaderSize);
    std::memcpy(space.first.data(), one.data() + 100, space.first.size());
    std::memcpy(space.second.data(), two.data(), kFrameHeaderSize);
    ASSERT_TRUE(r.CommitWrite(space.first.size() + kFrameHeaderSize).ok());
    auto big = r.Next();
    ASSERT_TRUE(big.ok() && big->has_value()) << (big.ok() ? "" : big.error().ToString());
    EXPECT_EQ((*big)->fds.size(), 2u);
    EXPECT_EQ((*big)->owned.size(), kLarge);
    // The small frame's payload and its descriptor.
    ASSERT_TRUE(r.Append(std::span(two).subspan(kFrameHeaderSize), DevNull(1)).ok());
    auto next = r.Next();
    ASSERT_TRUE(next.ok() && next->has_value()) << (next.ok() ? "" : next.error().ToString());
    EXPECT_EQ(PayloadOf(**next), "next");
    EXPECT_EQ((*next)->fds.size(), 1u);
    EXPECT_TRUE(r.Finish().ok());
  }
  // A large frame declaring no descriptors gets none that arrived with it.
  {
    StreamReassembler r;
    std::vector<uint8_t> bare = Frame(std::string(kLarge, 'y'));
    ASSERT_TRUE(r.Append(std::span(bare).first(50), DevNull(1)).ok());
    ASSERT_TRUE(r.Next().ok());
    ASSERT_EQ(ScatterRead(r, std::span(bare).subspan(50), 1 << 20), bare.size() - 50);
    auto big = r.Next();
    ASSERT_TRUE(big.ok() && big->has_value());
    EXPECT_TRUE((*big)->fds.empty());
    auto after = r.Next();
    EXPECT_FALSE(after.ok()) << "a descriptor with no frame to claim it";
  }
  EXPECT_EQ(moat::testing::OpenFdCount(), before);
}

// The frame after a large one: its header comes with the large frame's last
// receive (the second span), so its own payload goes straight into its own
// buffer too: the only payload bytes ever copied are those of the very first
// receive.
TEST(StreamReassemblerTest, NextLargeFrameNeedsNoCopy) {
  const size_t kLarge = 2 * StreamReassembler::kDirectFrameMin;
  std::vector<uint8_t> stream = Frame(std::string(kLarge, 'x'));
  std::vector<uint8_t> second = Frame(std::string(kLarge, 'y'));
  stream.insert(stream.end(), second.begin(), second.end());
  StreamReassembler r;
  size_t done = ScatterRead(r, stream, 1000);  // header + 976 bytes: shared buffer
  ASSERT_TRUE(r.Next().ok());                  // learns the header
  StreamReassembler::ReadSpace space;
  done += ScatterRead(r, std::span(stream).subspan(done), 1 << 20, &space);
  // The rest of frame 1 into its own buffer, then exactly the next header.
  EXPECT_EQ(space.first.size(), kLarge - (1000 - kFrameHeaderSize));
  EXPECT_EQ(space.second.size(), kFrameHeaderSize);
  auto first = r.Next();
  ASSERT_TRUE(first.ok() && first->has_value());
  EXPECT_EQ((*first)->owned.size(), kLarge);
  ASSERT_TRUE(r.Next().ok());  // frame 2's header, already here: nothing yet
  done += ScatterRead(r, std::span(stream).subspan(done), 1 << 20, &space);
  const uint8_t* landed = space.first.data();
  auto two = r.Next();
  ASSERT_TRUE(two.ok() && two->has_value());
  EXPECT_EQ((*two)->owned.data(), landed) << "frame 2 was copied after it arrived";
  EXPECT_EQ(PayloadOf(**two), std::string(kLarge, 'y'));
  EXPECT_EQ(done, stream.size());
}

// A peer declaring the largest payload and sending 10 bytes: the frame's own
// buffer holds what arrived plus one receive, never the declared 64 MiB
// (TRP-15).
TEST(StreamReassemblerTest, HugeDeclaredDirectFrameGrowsOnlyWithArrivedBytes) {
  StreamReassembler r;
  auto header = EncodeFrameHeader({.type = FrameType::kMessage,
                                   .payload_size = limits::MAX_MESSAGE_PAYLOAD_SIZE});
  std::vector<uint8_t> bytes(header.begin(), header.end());
  bytes.resize(bytes.size() + 10, 'z');
  ASSERT_EQ(ScatterRead(r, bytes, 64 * 1024), bytes.size());
  ASSERT_TRUE(r.Next().ok());
  constexpr size_t kWant = 256 * 1024;
  StreamReassembler::ReadSpace space = r.PrepareRead(kWant);
  EXPECT_GT(r.direct_capacity(), 0u);
  EXPECT_LE(r.buffer_capacity(), 10 + kWant + 2 * kFrameHeaderSize);
  EXPECT_EQ(space.first.size(), r.direct_capacity() - 10);
  EXPECT_TRUE(space.second.empty()) << "bytes after the frame's end before it is whole";
  ASSERT_TRUE(r.CommitWrite(0).ok());
  Status end = r.Finish();
  ASSERT_FALSE(end.ok());
  EXPECT_EQ(end.error().reason(),
            "stream ended inside a frame: 34 unprocessed bytes of a 67108888-byte frame");
  r.Clear();
  EXPECT_EQ(r.buffer_capacity(), 0u);
}

TEST(StreamReassemblerTest, BadHeaderReportsStreamOffset) {
  StreamReassembler r;
  auto good = Frame("ok");
  std::vector<uint8_t> stream = good;
  std::vector<uint8_t> garbage(24, 0xAB);
  stream.insert(stream.end(), garbage.begin(), garbage.end());
  ASSERT_TRUE(r.Append(stream).ok());
  ASSERT_TRUE(r.Next().ok());
  auto bad = r.Next();
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().field(), "frame.magic");
  // A stream offset (the good frame is 26 bytes), not "byte 0 of the header":
  // a captured stream is triaged with `moat inspect` by stream offset.
  EXPECT_EQ(*bad.error().offset(), 26u);
  EXPECT_EQ(bad.error().ToString(),
            "frame.magic: bad magic 0xabababab, expected 0x54414f4d (at byte 26)");
}

TEST(StreamReassemblerTest, BadFieldDeepInAStreamReportsItsStreamOffset) {
  StreamReassembler r;
  std::vector<uint8_t> stream;
  for (int i = 0; i < 3; ++i) {
    auto good = Frame("abc");
    stream.insert(stream.end(), good.begin(), good.end());
  }
  auto bad = Frame("x");
  bad[6] = 1;  // flags
  stream.insert(stream.end(), bad.begin(), bad.end());
  ASSERT_TRUE(r.Append(stream).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(r.Next().ok());
  auto e = r.Next();
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().field(), "frame.flags");
  EXPECT_EQ(*e.error().offset(), 3u * 27u + 6u);
}

// TRP-15: the buffer's allocation stays within the capacity the caller
// allows, grows only to the end of the frame being received, and shrinks
// back once a large frame has been consumed.
TEST(StreamReassemblerTest, BufferAllocationIsBoundedAndShrinksBack) {
  StreamReassembler r;
  const std::string big(3 * 1024 * 1024, 'B');
  std::vector<uint8_t> stream = Frame(big);
  stream.insert(stream.end(), {0x4D, 0x4F, 0x41});  // 3 bytes of the next header
  size_t done = 0;
  size_t peak = 0;
  size_t delivered = 0;
  // As the transport does: drain after every receive.
  while (done < stream.size()) {
    std::span<uint8_t> space = r.PrepareWrite(stream.size() - done);
    ASSERT_FALSE(space.empty());
    std::memcpy(space.data(), stream.data() + done, space.size());
    ASSERT_TRUE(r.CommitWrite(space.size()).ok());
    done += space.size();
    peak = std::max(peak, r.buffer_capacity());
    auto next = r.Next();
    ASSERT_TRUE(next.ok());
    if (next->has_value()) delivered = (*next)->payload.size();
  }
  // Never past the frame's end (the shared buffer keeps the header, and
  // room for the next one, beside the large frame's own buffer).
  EXPECT_LE(peak, 2 * kFrameHeaderSize + big.size());
  EXPECT_EQ(delivered, big.size());
  auto none = r.Next();
  ASSERT_TRUE(none.ok());
  EXPECT_LE(r.buffer_capacity(), 1024u * 1024u);
  EXPECT_EQ(r.unprocessed_bytes(), 3u);
  // A caller with less room left: the buffer is reallocated to fit.
  EXPECT_TRUE(r.ShrinkTo(4096));
  EXPECT_LE(r.buffer_capacity(), 4096u);
  EXPECT_EQ(r.unprocessed_bytes(), 3u);
  std::span<uint8_t> space = r.PrepareWrite(1 << 20, /*max_capacity=*/100);
  EXPECT_LE(r.buffer_capacity(), 100u);
  EXPECT_EQ(space.size(), r.buffer_capacity() - 3);
}

TEST(StreamReassemblerTest, AdmitHoldsAWholeFrameBack) {
  StreamReassembler r;
  ASSERT_TRUE(r.Append(Frame("held")).ok());
  auto held = r.Next([](const FrameHeader&) { return false; });
  ASSERT_TRUE(held.ok());
  EXPECT_FALSE(held->has_value());
  EXPECT_TRUE(r.held_back());
  auto frame = r.Next([](const FrameHeader&) { return true; });
  ASSERT_TRUE(frame.ok() && frame->has_value());
  EXPECT_FALSE(r.held_back());
}

// TRP-13: Clear() drops the buffer and every descriptor (a disconnect).
TEST(StreamReassemblerTest, ClearReleasesBufferAndDescriptors) {
  const size_t before = moat::testing::OpenFdCount();
  StreamReassembler r;
  ASSERT_TRUE(r.Append(Frame(std::string(100000, 'c'), 3), DevNull(3)).ok());
  EXPECT_GT(r.buffer_capacity(), 0u);
  r.Clear();
  EXPECT_EQ(r.buffer_capacity(), 0u);
  EXPECT_EQ(r.unprocessed_bytes(), 0u);
  EXPECT_EQ(r.unprocessed_fds(), 0u);
  EXPECT_EQ(moat::testing::OpenFdCount(), before);
}

TEST(StreamReassemblerTest, FinishReportsUnclaimedDescriptorsAndPartialFrames) {
  StreamReassembler r;
  ASSERT_TRUE(r.Append(Frame("x", 2), DevNull(1)).ok());
  auto wait = r.Next();
  ASSERT_TRUE(wait.ok());
  EXPECT_FALSE(wait->has_value());
  Status end = r.Finish();
  ASSERT_FALSE(end.ok());
  EXPECT_EQ(end.error().code(), ErrorCode::kIncomplete);
}

TEST(StreamReassemblerTest, ChunkingDoesNotChangeTheResult) {
  std::vector<uint8_t> stream;
  std::vector<std::string> payloads;
  for (int i = 0; i < 20; ++i) {
    payloads.push_back(std::string(static_cast<size_t>(i * 37 % 300), static_cast<char>('a' + i)));
    auto f = Frame(payloads.back());
    stream.insert(stream.end(), f.begin(), f.end());
  }
  for (size_t chunk : {1u, 2u, 7u, 23u, 24u, 25u, 100u, 4096u}) {
    StreamReassembler r;
    std::vector<std::string> got;
    for (size_t pos = 0; pos < stream.size(); pos += chunk) {
      size_t n = std::min(chunk, stream.size() - pos);
      ASSERT_TRUE(r.Append({stream.data() + pos, n}).ok());
      while (true) {
        auto next = r.Next();
        ASSERT_TRUE(next.ok());
        if (!next->has_value()) break;
        got.push_back(PayloadOf(**next));
      }
    }
    EXPECT_EQ(got, payloads) << "chunk " << chunk;
  }
}

}  // namespace
}  // namespace moat
