// SharedMemoryRegion: creation, mapping, and R6 checks on received regions.
#include "core/codec/shared_memory.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/codec/testing/wire_builder.h"
#include "core/testing/fd_count.h"

namespace moat {
namespace {

using codec_testing::WireBuilder;
using testing::OpenFdCount;

TEST(SharedMemory, CreateIsSealedAndMapsBothWays) {
  Result<SharedMemoryRegion> region = SharedMemoryRegion::Create(8192);
  ASSERT_TRUE(region.ok()) << region.error().ToString();
  EXPECT_EQ(region->size(), 8192u);
  const int seals = ::fcntl(region->fd().get(), F_GET_SEALS);
  EXPECT_EQ(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
  EXPECT_NE(::ftruncate(region->fd().get(), 10), 0);  // cannot shrink
  Result<SharedMemoryMapping> rw = region->Map(SharedMemoryRegion::Access::kReadWrite);
  ASSERT_TRUE(rw.ok());
  std::memcpy(rw->data() + 8000, "hello", 5);
  Result<SharedMemoryMapping> ro = region->Map(SharedMemoryRegion::Access::kReadOnly);
  ASSERT_TRUE(ro.ok());
  EXPECT_FALSE(ro->writable());
  EXPECT_EQ(std::memcmp(ro->bytes().data() + 8000, "hello", 5), 0);
}

TEST(SharedMemory, TravelsInAMessageAndSharesMemory) {
  const size_t before = OpenFdCount();
  {
    Result<SharedMemoryRegion> region = SharedMemoryRegion::Create(4096);
    ASSERT_TRUE(region.ok());
    Result<EncodedMessage> msg = EncodeMessage(*region);
    ASSERT_TRUE(msg.ok());
    EXPECT_EQ(msg->bytes, WireBuilder().U64(4096).U32(0).bytes());
    Result<SharedMemoryRegion> got = DecodeMessage<SharedMemoryRegion>(msg->bytes, msg->fds);
    ASSERT_TRUE(got.ok()) << got.error().ToString();
    EXPECT_EQ(got->size(), 4096u);
    Result<SharedMemoryMapping> a = region->Map(SharedMemoryRegion::Access::kReadWrite);
    Result<SharedMemoryMapping> b = got->Map(SharedMemoryRegion::Access::kReadOnly);
    ASSERT_TRUE(a.ok() && b.ok());
    a->data()[123] = 42;
    EXPECT_EQ(b->bytes()[123], 42);
  }
  EXPECT_EQ(OpenFdCount(), before);
}

TEST(SharedMemory, ExemptFromMaxDecodedSize) {
  const limits::ConnectionLimits tight =
      limits::ConnectionLimits::Defaults().Tightened({.max_decoded_size = 16});
  Result<SharedMemoryRegion> region = SharedMemoryRegion::Create(1 << 20);
  ASSERT_TRUE(region.ok());
  Result<EncodedMessage> msg = EncodeMessage(*region);
  ASSERT_TRUE(msg.ok());
  Result<SharedMemoryRegion> got = DecodeMessage<SharedMemoryRegion>(msg->bytes, msg->fds, {}, tight);
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(got->size(), size_t{1} << 20);
}

// Decodes a region declared as `declared` bytes carried by `fd`, expecting an
// error; checks no descriptor leaks.
void ExpectRejected(UniqueFd fd, uint64_t declared, const std::string& expected) {
  std::vector<UniqueFd> fds;
  fds.push_back(std::move(fd));
  const size_t before = OpenFdCount();  // includes the fd under test
  {
    std::vector<uint8_t> bytes = WireBuilder().U64(declared).U32(0).bytes();
    Result<SharedMemoryRegion> r = DecodeMessage<SharedMemoryRegion>(bytes, fds);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kMalformed);
    EXPECT_EQ(r.error().ToString(), expected);
  }
  EXPECT_EQ(OpenFdCount(), before - 1);  // the rejected descriptor was closed
}

TEST(SharedMemory, DeclaredLargerThanDescriptorRejected) {
  Result<SharedMemoryRegion> region = SharedMemoryRegion::Create(4096);
  ASSERT_TRUE(region.ok());
  Result<UniqueFd> fd = region->fd().Duplicate();
  ASSERT_TRUE(fd.ok());
  ExpectRejected(std::move(*fd), 8192, "declared size 8192 does not match the descriptor's size 4096 (at byte 8)");
  fd = region->fd().Duplicate();
  ASSERT_TRUE(fd.ok());
  ExpectRejected(std::move(*fd), 4095, "declared size 4095 does not match the descriptor's size 4096 (at byte 8)");
  fd = region->fd().Duplicate();
  ASSERT_TRUE(fd.ok());
  ExpectRejected(std::move(*fd), UINT64_MAX,
                 "declared size 18446744073709551615 does not match the descriptor's size 4096 (at byte 8)");
}

TEST(SharedMemory, WithoutShrinkSealRejected) {
  // A memfd that allows sealing but was never sealed, and one that forbids sealing.
  UniqueFd unsealed(::memfd_create("test", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  ASSERT_TRUE(unsealed.valid());
  ASSERT_EQ(::ftruncate(unsealed.get(), 4096), 0);
  ASSERT_EQ(::fcntl(unsealed.get(), F_ADD_SEALS, F_SEAL_GROW), 0);  // not SHRINK
  ExpectRejected(std::move(unsealed), 4096, "shared memory descriptor lacks F_SEAL_SHRINK (at byte 8)");
  UniqueFd no_sealing(::memfd_create("test", MFD_CLOEXEC));
  ASSERT_TRUE(no_sealing.valid());
  ASSERT_EQ(::ftruncate(no_sealing.get(), 4096), 0);
  ExpectRejected(std::move(no_sealing), 4096, "shared memory descriptor lacks F_SEAL_SHRINK (at byte 8)");
}

TEST(SharedMemory, NonMemfdRejected) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  UniqueFd keep(p[1]);
  ExpectRejected(UniqueFd(p[0]), 0, "shared memory descriptor lacks F_SEAL_SHRINK (at byte 8)");
}

TEST(SharedMemory, ZeroSizeRegion) {
  Result<SharedMemoryRegion> region = SharedMemoryRegion::Create(0);
  ASSERT_TRUE(region.ok());
  Result<SharedMemoryMapping> m = region->Map(SharedMemoryRegion::Access::kReadOnly);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->size(), 0u);
}

// Reopens `region`'s memfd with another access mode (as a peer can).
UniqueFd Reopen(const SharedMemoryRegion& region, int mode) {
  const std::string path = "/proc/self/fd/" + std::to_string(region.fd().get());
  return UniqueFd(::open(path.c_str(), mode | O_CLOEXEC));
}

Result<SharedMemoryRegion> DecodeRegion(UniqueFd fd, uint64_t declared) {
  std::vector<UniqueFd> fds;
  fds.push_back(std::move(fd));
  std::vector<uint8_t> bytes = WireBuilder().U64(declared).U32(0).bytes();
  return DecodeMessage<SharedMemoryRegion>(bytes, fds);
}

// COD-8: what Map() would refuse is found at decode time.
TEST(SharedMemory, WriteOnlyDescriptorRejectedAtDecode) {
  Result<SharedMemoryRegion> region = SharedMemoryRegion::Create(4096);
  ASSERT_TRUE(region.ok());
  UniqueFd write_only = Reopen(*region, O_WRONLY);
  ASSERT_TRUE(write_only.valid());
  ExpectRejected(std::move(write_only), 4096,
                 "shared memory descriptor is open write-only (O_WRONLY): it cannot be mapped "
                 "(at byte 8)");
}

TEST(SharedMemory, ReadOnlyDescriptorDecodesAsReadOnly) {
  Result<SharedMemoryRegion> region = SharedMemoryRegion::Create(4096);
  ASSERT_TRUE(region.ok());
  EXPECT_TRUE(region->writable());
  Result<SharedMemoryRegion> got = DecodeRegion(Reopen(*region, O_RDONLY), 4096);
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_FALSE(got->writable());
  EXPECT_FALSE(got->immutable());
  EXPECT_TRUE(got->Map(SharedMemoryRegion::Access::kReadOnly).ok());
  Result<SharedMemoryMapping> rw = got->Map(SharedMemoryRegion::Access::kReadWrite);
  ASSERT_FALSE(rw.ok());
  EXPECT_EQ(rw.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(rw.error().reason(),
            "cannot map the shared memory region read-write: the descriptor is open read-only "
            "(O_RDONLY)");
}

TEST(SharedMemory, WriteSealedRegionDecodesAsReadOnlyAndImmutable) {
  UniqueFd fd(::memfd_create("test", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(::ftruncate(fd.get(), 4096), 0);
  ASSERT_EQ(::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE), 0);
  Result<SharedMemoryRegion> got = DecodeRegion(std::move(fd), 4096);
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_FALSE(got->writable());
  EXPECT_TRUE(got->immutable());
  EXPECT_TRUE(got->Map(SharedMemoryRegion::Access::kReadOnly).ok());
  Result<SharedMemoryMapping> rw = got->Map(SharedMemoryRegion::Access::kReadWrite);
  ASSERT_FALSE(rw.ok());
  EXPECT_EQ(rw.error().reason(),
            "cannot map the shared memory region read-write: the region is write-sealed "
            "(F_SEAL_WRITE)");
}

TEST(SharedMemory, SparseTerabyteRegionRejected) {
  const size_t before = OpenFdCount();
  {
    UniqueFd fd(::memfd_create("test", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    ASSERT_TRUE(fd.valid());
    const uint64_t tib = uint64_t{1} << 40;
    ASSERT_EQ(::ftruncate(fd.get(), static_cast<off_t>(tib)), 0);  // costs the sender nothing
    ASSERT_EQ(::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK), 0);
    Result<SharedMemoryRegion> got = DecodeRegion(std::move(fd), tib);
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.error().code(), ErrorCode::kLimitExceeded);
    EXPECT_EQ(got.error().ToString(),
              "shared memory size 1099511627776 exceeds MAX_SHARED_MEMORY_REGION_SIZE "
              "1073741824 (at byte 8)");
  }
  EXPECT_EQ(OpenFdCount(), before);
  // And our own side never creates what a peer must reject.
  EXPECT_EQ(SharedMemoryRegion::Create(limits::MAX_SHARED_MEMORY_REGION_SIZE + 1).error().code(),
            ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace moat
