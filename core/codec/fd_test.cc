// Descriptors and handles in messages: strict slot order, nothing missing,
// nothing left over, and no descriptor leaked on any error path.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <vector>

#include "core/codec/codec.h"
#include "core/codec/testing/test_schema.h"
#include "core/codec/testing/wire_builder.h"
#include "core/testing/fd_count.h"

namespace moat {
namespace {

using codec_testing::WireBuilder;
using testing::OpenFdCount;

struct TwoFds {
  UniqueFd a;
  std::string label;
  UniqueFd b;
};
MOAT_CODEC_STRUCT(TwoFds, a, label, b)

std::vector<UniqueFd> DevNulls(int n) {
  std::vector<UniqueFd> out;
  for (int i = 0; i < n; ++i) out.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  return out;
}

ino_t Inode(int fd) {
  struct stat st;
  EXPECT_EQ(::fstat(fd, &st), 0);
  return st.st_ino;
}

TEST(CodecFds, RoundTripKeepsOrderAndTransfersOwnership) {
  const size_t before = OpenFdCount();
  {
    int pipe_fds[2];
    ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
    UniqueFd r(pipe_fds[0]), w(pipe_fds[1]);
    const ino_t r_ino = Inode(r.get()), w_ino = Inode(w.get());
    Encoder e;
    e.WriteU32(e.AttachFd(std::move(r)));
    e.WriteString("mid");
    e.WriteU32(e.AttachFd(std::move(w)));
    ASSERT_TRUE(e.Finish().ok());
    std::vector<UniqueFd> fds = e.TakeFds();
    std::vector<uint8_t> bytes = e.TakeBytes();
    Result<TwoFds> got = DecodeMessage<TwoFds>(bytes, fds);
    ASSERT_TRUE(got.ok()) << got.error().ToString();
    EXPECT_EQ(Inode(got->a.get()), r_ino);
    EXPECT_EQ(Inode(got->b.get()), w_ino);
    EXPECT_EQ(got->label, "mid");
    EXPECT_FALSE(fds[0].valid());  // moved out of the caller's span
    EXPECT_FALSE(fds[1].valid());
  }
  EXPECT_EQ(OpenFdCount(), before);
}

TEST(CodecFds, EncodingByConstReferenceDuplicates) {
  const size_t before = OpenFdCount();
  {
    std::vector<UniqueFd> mine = DevNulls(1);
    Result<EncodedMessage> m = EncodeMessage(mine[0]);
    ASSERT_TRUE(m.ok());
    ASSERT_EQ(m->fds.size(), 1u);
    EXPECT_NE(m->fds[0].get(), mine[0].get());
    EXPECT_EQ(Inode(m->fds[0].get()), Inode(mine[0].get()));
    EXPECT_EQ(m->bytes, (std::vector<uint8_t>{0, 0, 0, 0}));
  }
  EXPECT_EQ(OpenFdCount(), before);
}

void ExpectRejectedWithoutLeak(const std::vector<uint8_t>& bytes, int fd_count, const std::string& expected) {
  const size_t before = OpenFdCount();
  {
    std::vector<UniqueFd> fds = DevNulls(fd_count);
    Result<TwoFds> r = DecodeMessage<TwoFds>(bytes, fds);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().ToString(), expected);
  }
  EXPECT_EQ(OpenFdCount(), before);
}

TEST(CodecFds, OutOfOrderSlotsRejected) {
  ExpectRejectedWithoutLeak(WireBuilder().U32(1).Str("x").U32(0).bytes(), 2,
                            "TwoFds.a: descriptor slot 1 out of order (expected slot 0) (at byte 0)");
  // Reusing slot 0 for the second field.
  ExpectRejectedWithoutLeak(WireBuilder().U32(0).Str("x").U32(0).bytes(), 2,
                            "TwoFds.b: descriptor slot 0 out of order (expected slot 1) (at byte 9)");
}

TEST(CodecFds, MissingDescriptorRejected) {
  ExpectRejectedWithoutLeak(WireBuilder().U32(0).Str("x").U32(1).bytes(), 1,
                            "TwoFds.b: descriptor slot 1 missing: the message carries 1 descriptors (at byte 9)");
  ExpectRejectedWithoutLeak(WireBuilder().U32(0).Str("x").U32(1).bytes(), 0,
                            "TwoFds.a: descriptor slot 0 missing: the message carries 0 descriptors (at byte 0)");
}

TEST(CodecFds, UnconsumedDescriptorRejected) {
  ExpectRejectedWithoutLeak(WireBuilder().U32(0).Str("x").U32(1).bytes(), 3,
                            "1 of 3 descriptors not consumed by the message");
}

TEST(CodecFds, ErrorAfterTakingDescriptorsDoesNotLeak) {
  // Both descriptors taken, then the label fails UTF-8 validation... after a:
  ExpectRejectedWithoutLeak(WireBuilder().U32(0).Str("\xFF").U32(1).bytes(), 2,
                            "TwoFds.label: invalid UTF-8 at string byte 0 (at byte 8)");
  // ...and a failure in the last field after the first was moved out.
  ExpectRejectedWithoutLeak(WireBuilder().U32(0).Str("x").U16(1).bytes(), 2,
                            "TwoFds.b: integer: need 4 bytes, have 2 (at byte 9)");
}

TEST(CodecFds, TooManyDescriptorsForTheConnection) {
  const size_t before = OpenFdCount();
  {
    std::vector<UniqueFd> fds = DevNulls(3);
    const limits::ConnectionLimits tight =
        limits::ConnectionLimits::Defaults().Tightened({.max_message_fd_count = 2});
    std::vector<uint8_t> bytes = WireBuilder().U32(0).Str("x").U32(1).bytes();
    Result<TwoFds> r = DecodeMessage<TwoFds>(bytes, fds, {}, tight);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kLimitExceeded);
    EXPECT_EQ(r.error().reason(), "message carries 3 descriptors, exceeding the limit of 2");
  }
  EXPECT_EQ(OpenFdCount(), before);
}

TEST(CodecHandles, OrderMissingUnconsumed) {
  using Two = std::vector<MessagePipeHandleSlot>;
  const std::vector<uint64_t> handles = {10, 20};
  Result<Two> ok = DecodeMessage<Two>(WireBuilder().U32(2).U32(0).U32(1).bytes(), {}, handles);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ((*ok)[1].handle, 20u);
  Result<Two> swapped = DecodeMessage<Two>(WireBuilder().U32(2).U32(1).U32(0).bytes(), {}, handles);
  ASSERT_FALSE(swapped.ok());
  EXPECT_EQ(swapped.error().ToString(), "[0]: handle slot 1 out of order (expected slot 0) (at byte 4)");
  Result<Two> missing = DecodeMessage<Two>(WireBuilder().U32(2).U32(0).U32(1).bytes(), {}, {handles.data(), 1});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().reason(), "handle slot 1 missing: the message carries 1 handles");
  Result<Two> extra = DecodeMessage<Two>(WireBuilder().U32(1).U32(0).bytes(), {}, handles);
  ASSERT_FALSE(extra.ok());
  EXPECT_EQ(extra.error().reason(), "1 of 2 handles not consumed by the message");
  std::vector<uint64_t> too_many(limits::MAX_MESSAGE_HANDLE_COUNT + 1, 1);
  Result<MessagePipeHandleSlot> over = DecodeMessage<MessagePipeHandleSlot>(WireBuilder().U32(0).bytes(), {}, too_many);
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.error().code(), ErrorCode::kLimitExceeded);
}

}  // namespace
}  // namespace moat
