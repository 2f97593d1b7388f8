#include "core/system/shared_buffer.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

namespace moat::system {
namespace {

TEST(SharedBufferTest, ProducerWritesConsumerReadsOnly) {
  auto buf = CreateSharedBuffer(4096);
  ASSERT_TRUE(buf.ok()) << buf.error().ToString();
  auto out = MapSharedBuffer(buf->get(), /*writable=*/true);
  ASSERT_TRUE(out.ok());
  std::memcpy(out->data(), "frame 1", 7);
  auto ro = DuplicateSharedBufferReadOnly(buf->get());
  ASSERT_TRUE(ro.ok()) << ro.error().ToString();
  auto info = InspectSharedBuffer(ro->get());
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->size, 4096u);
  EXPECT_TRUE(info->read_only);
  auto in = MapSharedBuffer(ro->get(), /*writable=*/false);
  ASSERT_TRUE(in.ok());
  EXPECT_EQ(std::memcmp(in->data(), "frame 1", 7), 0);
  // The producer's mapping keeps writing; the consumer sees it.
  std::memcpy(out->data(), "frame 2", 7);
  EXPECT_EQ(std::memcmp(in->data(), "frame 2", 7), 0);
  // Nobody can get write access any more: not through our API, not mmap,
  // not mprotect, not write(), not the original descriptor.
  auto w = MapSharedBuffer(ro->get(), /*writable=*/true);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, ro->get(), 0), MAP_FAILED);
  EXPECT_EQ(::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, buf->get(), 0), MAP_FAILED);
  EXPECT_NE(::mprotect(in->data(), 4096, PROT_READ | PROT_WRITE), 0);
  EXPECT_LT(::pwrite(ro->get(), "x", 1, 0), 0);
  // Nor remove the seal, nor shrink it under our mapping.
  EXPECT_NE(::fcntl(ro->get(), F_ADD_SEALS, F_SEAL_WRITE), 0);
  EXPECT_NE(::ftruncate(ro->get(), 0), 0);
}

TEST(SharedBufferTest, HostileDescriptorsAreRefused) {
  // Not a memfd.
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  UniqueFd r(p[0]), w(p[1]);
  auto pipe_info = InspectSharedBuffer(r.get());
  ASSERT_FALSE(pipe_info.ok());
  EXPECT_EQ(pipe_info.error().code(), ErrorCode::kInvalidArgument);
  // A memfd its sender can still shrink (SIGBUS for our mapping).
  UniqueFd shrinkable(::memfd_create("x", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  ASSERT_TRUE(shrinkable.valid());
  ASSERT_EQ(::ftruncate(shrinkable.get(), 4096), 0);
  auto s = MapSharedBuffer(shrinkable.get(), false);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().reason().find("F_SEAL_SHRINK"), std::string::npos) << s.error().ToString();
  // A memfd without sealing at all.
  UniqueFd unsealable(::memfd_create("y", MFD_CLOEXEC));
  ASSERT_TRUE(unsealable.valid());
  EXPECT_FALSE(InspectSharedBuffer(unsealable.get()).ok());
  EXPECT_FALSE(CreateSharedBuffer(0).ok());
  EXPECT_FALSE(DuplicateSharedBufferReadOnly(r.get()).ok());
}

}  // namespace
}  // namespace moat::system
