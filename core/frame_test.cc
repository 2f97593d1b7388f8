#include "core/frame.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace moat {
namespace {

using limits::ConnectionLimits;

std::vector<uint8_t> RawHeader(uint32_t magic, uint16_t type, uint16_t flags, uint32_t payload,
                               uint32_t fds, uint32_t acks, uint32_t reserved) {
  std::vector<uint8_t> out(kFrameHeaderSize);
  std::memcpy(&out[0], &magic, 4);
  std::memcpy(&out[4], &type, 2);
  std::memcpy(&out[6], &flags, 2);
  std::memcpy(&out[8], &payload, 4);
  std::memcpy(&out[12], &fds, 4);
  std::memcpy(&out[16], &acks, 4);
  std::memcpy(&out[20], &reserved, 4);
  return out;
}

Error DecodeError(const std::vector<uint8_t>& bytes,
                  const ConnectionLimits& limits = ConnectionLimits::Defaults()) {
  auto r = DecodeFrameHeader(bytes, limits);
  EXPECT_FALSE(r.ok());
  return r.ok() ? Error(ErrorCode::kIo, "unexpected success") : r.error();
}

TEST(FrameTest, ExactLayoutMatchesWireFormatDoc) {
  auto wire = EncodeFrameHeader({.type = FrameType::kMessage, .payload_size = 5, .fd_count = 1,
                                 .ack_count = 2});
  const std::vector<uint8_t> expected = {0x4D, 0x4F, 0x41, 0x54, 0x01, 0x00, 0x00, 0x00,
                                         0x05, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
                                         0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  EXPECT_EQ(std::vector<uint8_t>(wire.begin(), wire.end()), expected);
}

TEST(FrameTest, RoundTrip) {
  for (FrameHeader h : {FrameHeader{FrameType::kMessage, 0, 0, 0},
                        FrameHeader{FrameType::kMessage, limits::MAX_MESSAGE_PAYLOAD_SIZE,
                                    limits::MAX_MESSAGE_FD_COUNT, 0xFFFFFFFF},
                        FrameHeader{FrameType::kFdAck, 0, 0, 7}}) {
    auto wire = EncodeFrameHeader(h);
    auto decoded = DecodeFrameHeader(wire, ConnectionLimits::Defaults());
    ASSERT_TRUE(decoded.ok()) << decoded.error().ToString();
    EXPECT_EQ(*decoded, h);
  }
}

TEST(FrameTest, PayloadSizeAtLimitAcceptedOnePastRejected) {
  auto at = RawHeader(kFrameMagic, 1, 0, limits::MAX_MESSAGE_PAYLOAD_SIZE, 0, 0, 0);
  EXPECT_TRUE(DecodeFrameHeader(at, ConnectionLimits::Defaults()).ok());
  Error e = DecodeError(RawHeader(kFrameMagic, 1, 0, limits::MAX_MESSAGE_PAYLOAD_SIZE + 1, 0, 0, 0));
  EXPECT_EQ(e.code(), ErrorCode::kLimitExceeded);
  EXPECT_EQ(e.ToString(),
            "payload_size: payload_size 67108865 exceeds MAX_MESSAGE_PAYLOAD_SIZE 67108864 (at "
            "byte 8)");
  EXPECT_EQ(DecodeError(RawHeader(kFrameMagic, 1, 0, 0xFFFFFFFF, 0, 0, 0)).code(),
            ErrorCode::kLimitExceeded);
}

TEST(FrameTest, FdCountAtLimitAcceptedOnePastRejected) {
  EXPECT_TRUE(DecodeFrameHeader(RawHeader(kFrameMagic, 1, 0, 0, 128, 0, 0),
                                ConnectionLimits::Defaults())
                  .ok());
  Error e = DecodeError(RawHeader(kFrameMagic, 1, 0, 0, 129, 0, 0));
  EXPECT_EQ(e.ToString(), "fd_count: fd_count 129 exceeds MAX_MESSAGE_FD_COUNT 128 (at byte 12)");
  EXPECT_EQ(DecodeError(RawHeader(kFrameMagic, 1, 0, 0, 0xFFFFFFFF, 0, 0)).code(),
            ErrorCode::kLimitExceeded);
}

TEST(FrameTest, TightenedConnectionLimitsApply) {
  ConnectionLimits tight = ConnectionLimits::Defaults().Tightened(
      {.max_message_payload_size = 16, .max_message_fd_count = 1});
  EXPECT_TRUE(DecodeFrameHeader(RawHeader(kFrameMagic, 1, 0, 16, 1, 0, 0), tight).ok());
  EXPECT_EQ(DecodeError(RawHeader(kFrameMagic, 1, 0, 17, 0, 0, 0), tight).reason(),
            "payload_size 17 exceeds MAX_MESSAGE_PAYLOAD_SIZE 16");
  EXPECT_EQ(DecodeError(RawHeader(kFrameMagic, 1, 0, 0, 2, 0, 0), tight).reason(),
            "fd_count 2 exceeds MAX_MESSAGE_FD_COUNT 1");
}

TEST(FrameTest, MalformedHeadersRejectedWithField) {
  EXPECT_EQ(DecodeError(RawHeader(0x12345678, 1, 0, 0, 0, 0, 0)).field(), "magic");
  Error type = DecodeError(RawHeader(kFrameMagic, 3, 0, 0, 0, 0, 0));
  EXPECT_EQ(type.code(), ErrorCode::kProtocolViolation);
  EXPECT_EQ(type.ToString(), "type: unknown frame type 3 (at byte 4)");
  EXPECT_EQ(DecodeError(RawHeader(kFrameMagic, 0, 0, 0, 0, 0, 0)).field(), "type");
  EXPECT_EQ(DecodeError(RawHeader(kFrameMagic, 1, 1, 0, 0, 0, 0)).field(), "flags");
  EXPECT_EQ(DecodeError(RawHeader(kFrameMagic, 1, 0, 0, 0, 0, 9)).field(), "reserved");
}

TEST(FrameTest, FdAckWithPayloadOrDescriptorsOrZeroIsAViolation) {
  Error payload = DecodeError(RawHeader(kFrameMagic, 2, 0, 4, 0, 1, 0));
  EXPECT_EQ(payload.code(), ErrorCode::kProtocolViolation);
  EXPECT_EQ(payload.reason(), "FD_ACK frame carries 4 payload bytes; acks carry none");
  EXPECT_EQ(DecodeError(RawHeader(kFrameMagic, 2, 0, 0, 1, 1, 0)).field(), "fd_count");
  EXPECT_EQ(DecodeError(RawHeader(kFrameMagic, 2, 0, 0, 0, 0, 0)).field(), "ack_count");
}

TEST(FrameTest, EveryPrefixIsIncomplete) {
  auto wire = EncodeFrameHeader({.type = FrameType::kMessage, .payload_size = 1});
  for (size_t n = 0; n < kFrameHeaderSize; ++n) {
    auto r = DecodeFrameHeader(std::span<const uint8_t>(wire.data(), n), ConnectionLimits::Defaults());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kIncomplete) << n;
  }
}

TEST(FrameDeathTest, EncodingOverLimitIsAProgrammerError) {
  EXPECT_DEATH(EncodeFrameHeader({.type = FrameType::kMessage,
                                  .payload_size = limits::MAX_MESSAGE_PAYLOAD_SIZE + 1}),
               "exceeds MAX_MESSAGE_PAYLOAD_SIZE");
  EXPECT_DEATH(EncodeFrameHeader({.type = FrameType::kMessage, .fd_count = 129}),
               "exceeds MAX_MESSAGE_FD_COUNT");
  EXPECT_DEATH(EncodeFrameHeader({.type = FrameType::kFdAck, .payload_size = 1, .ack_count = 1}),
               "malformed FD_ACK");
}

}  // namespace
}  // namespace moat
