// The moat frame: the unit the transport puts on the wire (R4, R40).
//
// Every frame is a fixed 24-byte little-endian header followed by
// `payload_size` payload bytes; `fd_count` descriptors travel beside it via
// SCM_RIGHTS. The header is validated against limits/ before anything is
// allocated or waited for.
//
//   offset size field
//   0      4    magic         0x4D 0x4F 0x41 0x54 ("MOAT"); detects stream desync
//   4      2    type          1 = MESSAGE, 2 = FD_ACK
//   6      2    flags         must be 0 (reserved for future versions)
//   8      4    payload_size  <= max_message_payload_size
//   12     4    fd_count      descriptors attached; <= max_message_fd_count
//   16     4    ack_count     descriptors of the PEER's that this side acknowledges
//   20     4    reserved      must be 0
//
// ack_count may ride on any frame (a MESSAGE piggybacks its sender's pending
// acknowledgements); a standalone FD_ACK frame must have payload_size == 0,
// fd_count == 0 and ack_count > 0.
//
//   std::array<uint8_t, kFrameHeaderSize> wire = EncodeFrameHeader(
//       {.type = FrameType::kMessage, .payload_size = 5, .fd_count = 1});
//   Result<FrameHeader> h = DecodeFrameHeader(wire, limits::ConnectionLimits::Defaults());
#ifndef MOAT_CORE_FRAME_H_
#define MOAT_CORE_FRAME_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/decoder_registry.h"
#include "core/error.h"
#include "limits/limits.h"

namespace moat {

enum class FrameType : uint16_t {
  kMessage = 1,
  kFdAck = 2,
};

inline constexpr size_t kFrameHeaderSize = 24;
inline constexpr uint32_t kFrameMagic = 0x5441'4F4D;  // "MOAT" as little-endian bytes

struct FrameHeader {
  FrameType type = FrameType::kMessage;
  uint32_t payload_size = 0;
  uint32_t fd_count = 0;
  uint32_t ack_count = 0;

  friend bool operator==(const FrameHeader&, const FrameHeader&) = default;
};

// Encodes a header for sending. Exceeding a limit here is a programmer error
// (we never send what the peer must reject): MOAT_ASSERT.
std::array<uint8_t, kFrameHeaderSize> EncodeFrameHeader(
    const FrameHeader& header,
    const limits::ConnectionLimits& limits = limits::ConnectionLimits::Defaults());

// Decodes and validates the first kFrameHeaderSize bytes of `bytes` (which
// must hold at least that many; fewer is kIncomplete). Every field is checked
// against `limits` before the caller allocates or waits for the payload.
MOAT_DECODER(frame_header)
Result<FrameHeader> DecodeFrameHeader(std::span<const uint8_t> bytes,
                                      const limits::ConnectionLimits& limits);

}  // namespace moat

#endif  // MOAT_CORE_FRAME_H_
