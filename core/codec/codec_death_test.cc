// Encode-side misuse is a programmer error: MOAT_ASSERT aborts loudly.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/codec/codec.h"
#include "core/codec/shared_memory.h"
#include "core/codec/testing/test_schema.h"

namespace moat {
namespace {

TEST(CodecDeathTest, InvalidDescriptor) {
  EXPECT_DEATH({ Encoder().AttachFd(UniqueFd()); }, "attaching an invalid descriptor");
  EXPECT_DEATH({ Encoder().Encode(UniqueFd()); }, "encoding an invalid descriptor");
  EXPECT_DEATH({ Encoder().Encode(SharedMemoryRegion()); }, "encoding an invalid shared memory region");
}

TEST(CodecDeathTest, TooManyDescriptors) {
  const limits::ConnectionLimits tight =
      limits::ConnectionLimits::Defaults().Tightened({.max_message_fd_count = 1});
  EXPECT_DEATH(
      {
        Encoder e(tight);
        e.AttachFd(UniqueFd(::dup(0)));
        e.AttachFd(UniqueFd(::dup(0)));
      },
      "exceeds MAX_MESSAGE_FD_COUNT 1");
}

TEST(CodecDeathTest, DecodedMemoryOverTheLimit) {
  // The sender counts what the receiver's Decoder::ChargeMemory will count,
  // so it fails here instead of being disconnected there.
  const limits::ConnectionLimits tight =
      limits::ConnectionLimits::Defaults().Tightened({.max_decoded_memory = 1 << 20});
  const std::vector<std::string> empties((1 << 20) / sizeof(std::string) + 1);
  EXPECT_DEATH({ (void)EncodeMessage(empties, tight); },
               "the decoded message would hold more than MAX_DECODED_MEMORY 1048576 bytes in memory");
  const std::vector<std::string> fits((1 << 20) / sizeof(std::string));
  EXPECT_TRUE(EncodeMessage(fits, tight).ok());
}

TEST(CodecDeathTest, TooManyHandles) {
  EXPECT_DEATH(
      {
        Encoder e;
        for (uint32_t i = 0; i <= limits::MAX_MESSAGE_HANDLE_COUNT; ++i) e.AttachHandle(i);
      },
      "exceeds MAX_MESSAGE_HANDLE_COUNT 64");
}

TEST(CodecDeathTest, StringOverDecodedSizeLimit) {
  const limits::ConnectionLimits tight =
      limits::ConnectionLimits::Defaults().Tightened({.max_decoded_size = 4});
  Encoder ok(tight);
  ok.WriteString("abcd");  // exactly at the limit
  EXPECT_DEATH({ Encoder(tight).WriteString("abcde"); }, "container length 5 exceeds MAX_DECODED_SIZE 4");
  EXPECT_DEATH({ Encoder(tight).Encode(std::vector<int>(5)); }, "container length 5 exceeds MAX_DECODED_SIZE 4");
}

TEST(CodecDeathTest, ContainerOverU32) {
  EXPECT_DEATH({ Encoder().WriteSize(size_t{1} << 32); }, "does not fit the u32 length prefix");
}

TEST(CodecDeathTest, PayloadOverLimit) {
  const limits::ConnectionLimits tight =
      limits::ConnectionLimits::Defaults().Tightened({.max_message_payload_size = 8});
  Encoder at(tight);
  at.WriteU64(1);
  EXPECT_TRUE(at.Finish().ok());  // exactly at the limit
  EXPECT_DEATH(
      {
        Encoder e(tight);
        e.WriteU64(1);
        e.WriteU8(1);
        (void)e.Finish();
      },
      "payload of 9 bytes exceeds MAX_MESSAGE_PAYLOAD_SIZE 8");
  EXPECT_DEATH(
      {
        Encoder e(tight);
        e.WriteRaw(std::vector<uint8_t>(9));
        (void)e.TakeBytes();
      },
      "payload of 9 bytes exceeds MAX_MESSAGE_PAYLOAD_SIZE 8");
}

TEST(CodecDeathTest, InvalidUtf8OnEncode) {
  EXPECT_DEATH({ Encoder().WriteString("ok\xC0\xAF"); }, "not valid UTF-8 \\(first bad byte at 2\\)");
  EXPECT_DEATH({ Encoder().Encode(std::string("\xED\xA0\x80")); }, "not valid UTF-8");
}

TEST(CodecDeathTest, UndeclaredEnumValue) {
  EXPECT_DEATH({ Encoder().Encode(static_cast<codec_testing::Color>(3)); }, "encoding undeclared Color value 3");
}

TEST(CodecDeathTest, TooDeep) {
  Encoder fine;
  fine.Encode(codec_testing::Chain(32));
  EXPECT_DEATH({ Encoder().Encode(codec_testing::Chain(33)); }, "deeper than MAX_DECODE_DEPTH 64");
}

}  // namespace
}  // namespace moat
