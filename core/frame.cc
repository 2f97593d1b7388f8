#include "core/frame.h"

#include <cstring>

#include "core/check.h"
#include "core/internal/little_endian.h"

namespace moat {

using internal::LoadLE16;
using internal::LoadLE32;
using internal::StoreLE16;
using internal::StoreLE32;

std::array<uint8_t, kFrameHeaderSize> EncodeFrameHeader(const FrameHeader& header,
                                                        const limits::ConnectionLimits& limits) {
  MOAT_ASSERT(header.type == FrameType::kMessage || header.type == FrameType::kFdAck,
              "unknown frame type ", static_cast<int>(header.type));
  MOAT_ASSERT(header.payload_size <= limits.max_message_payload_size, "sending payload of ",
              header.payload_size, " bytes exceeds MAX_MESSAGE_PAYLOAD_SIZE ",
              limits.max_message_payload_size);
  MOAT_ASSERT(header.fd_count <= limits.max_message_fd_count, "sending ", header.fd_count,
              " descriptors exceeds MAX_MESSAGE_FD_COUNT ", limits.max_message_fd_count);
  if (header.type == FrameType::kFdAck) {
    MOAT_ASSERT(header.payload_size == 0 && header.fd_count == 0 && header.ack_count > 0,
                "malformed FD_ACK frame");
  }
  std::array<uint8_t, kFrameHeaderSize> out{};
  StoreLE32(&out[0], kFrameMagic);
  StoreLE16(&out[4], static_cast<uint16_t>(header.type));
  StoreLE16(&out[6], 0);
  StoreLE32(&out[8], header.payload_size);
  StoreLE32(&out[12], header.fd_count);
  StoreLE32(&out[16], header.ack_count);
  StoreLE32(&out[20], 0);
  return out;
}

Result<FrameHeader> DecodeFrameHeader(std::span<const uint8_t> bytes,
                                      const limits::ConnectionLimits& limits) {
  MOAT_REQUIRE(bytes.size() >= kFrameHeaderSize, ErrorCode::kIncomplete, "frame header needs ",
               kFrameHeaderSize, " bytes, have ", bytes.size());
  const uint8_t* p = bytes.data();
  FrameHeader header;

  // Attack: a peer that desynchronizes the stream so payload bytes are parsed as headers.
  const uint32_t magic = LoadLE32(p);
  if (magic != kFrameMagic) {
    return Error(ErrorCode::kMalformed,
                 internal::Concat("bad magic 0x", std::hex, magic, ", expected 0x", kFrameMagic))
        .WithField("magic")
        .AtOffset(0);
  }

  const uint16_t type = LoadLE16(p + 4);
  if (type != static_cast<uint16_t>(FrameType::kMessage) &&
      type != static_cast<uint16_t>(FrameType::kFdAck)) {
    return Error(ErrorCode::kProtocolViolation, internal::Concat("unknown frame type ", type))
        .WithField("type")
        .AtOffset(4);
  }
  header.type = static_cast<FrameType>(type);

  const uint16_t flags = LoadLE16(p + 6);
  if (flags != 0) {
    return Error(ErrorCode::kMalformed, internal::Concat("flags 0x", std::hex, flags,
                                                         " set; no flags are defined"))
        .WithField("flags")
        .AtOffset(6);
  }

  header.payload_size = LoadLE32(p + 8);
  // Attack: a 4 GiB payload claim to make us buffer (or allocate) without bound.
  if (header.payload_size > limits.max_message_payload_size) {
    return Error(ErrorCode::kLimitExceeded,
                 internal::Concat("payload_size ", header.payload_size,
                                  " exceeds MAX_MESSAGE_PAYLOAD_SIZE ",
                                  limits.max_message_payload_size))
        .WithField("payload_size")
        .AtOffset(8);
  }

  header.fd_count = LoadLE32(p + 12);
  // Attack: descriptor-table exhaustion with one message (or u32-max count arithmetic).
  if (header.fd_count > limits.max_message_fd_count) {
    return Error(ErrorCode::kLimitExceeded,
                 internal::Concat("fd_count ", header.fd_count, " exceeds MAX_MESSAGE_FD_COUNT ",
                                  limits.max_message_fd_count))
        .WithField("fd_count")
        .AtOffset(12);
  }

  header.ack_count = LoadLE32(p + 16);

  const uint32_t reserved = LoadLE32(p + 20);
  if (reserved != 0) {
    return Error(ErrorCode::kMalformed, internal::Concat("reserved field is ", reserved,
                                                         ", must be 0"))
        .WithField("reserved")
        .AtOffset(20);
  }

  if (header.type == FrameType::kFdAck) {
    // Attack: an acknowledgement smuggling data or descriptors past message handling.
    if (header.payload_size != 0) {
      return Error(ErrorCode::kProtocolViolation,
                   internal::Concat("FD_ACK frame carries ", header.payload_size,
                                    " payload bytes; acks carry none"))
          .WithField("payload_size")
          .AtOffset(8);
    }
    if (header.fd_count != 0) {
      return Error(ErrorCode::kProtocolViolation,
                   internal::Concat("FD_ACK frame carries ", header.fd_count,
                                    " descriptors; acks carry none"))
          .WithField("fd_count")
          .AtOffset(12);
    }
    if (header.ack_count == 0) {
      return Error(ErrorCode::kProtocolViolation, "FD_ACK frame acknowledges 0 descriptors")
          .WithField("ack_count")
          .AtOffset(16);
    }
  }
  return header;
}

}  // namespace moat
