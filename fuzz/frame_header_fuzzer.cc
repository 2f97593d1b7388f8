// Property: DecodeFrameHeader never crashes on any bytes; whatever it accepts
// respects the connection limits and re-encodes to exactly the same 24 bytes
// (there is one encoding per header, so a peer cannot smuggle state in
// "don't care" bits); whatever it rejects is rejected with a field name.
//
// The first input byte selects tightened limits so both default and
// per-connection limits are exercised.
#include <cstring>

#include "core/frame.h"
#include "fuzz/fuzz_harness.h"

MOAT_FUZZ_COVERS("frame_header")

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moat::fuzz::Input in(data, size);
  moat::limits::ConnectionLimits limits = moat::limits::ConnectionLimits::Defaults();
  if (in.Bool()) {
    limits = limits.Tightened({.max_message_payload_size = in.Integral<uint16_t>(),
                               .max_message_fd_count = in.Integral<uint8_t>()});
  }
  std::vector<uint8_t> bytes = in.RemainingBytes();
  auto header = moat::DecodeFrameHeader(bytes, limits);
  if (!header.ok()) {
    MOAT_FUZZ_CHECK(bytes.size() < moat::kFrameHeaderSize || !header.error().field().empty(),
                    "a rejected complete header must name the field");
    return 0;
  }
  MOAT_FUZZ_CHECK(header->payload_size <= limits.max_message_payload_size, "payload limit");
  MOAT_FUZZ_CHECK(header->fd_count <= limits.max_message_fd_count, "fd limit");
  auto again = moat::EncodeFrameHeader(*header, limits);
  MOAT_FUZZ_CHECK(std::memcmp(again.data(), bytes.data(), moat::kFrameHeaderSize) == 0,
                  "accepted header does not re-encode identically");
  return 0;
}
