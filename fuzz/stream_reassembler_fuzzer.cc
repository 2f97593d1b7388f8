// Property: the stream reassembler, fed fuzzer-chosen bytes and descriptor
// counts in fuzzer-chosen chunks (as recvmsg() would deliver them, with real
// descriptors), never crashes, never leaks a descriptor, yields only frames
// that are well-formed (header decodes under the limits, payload and
// descriptor counts match the header), and never holds more than the
// unprocessed-bytes/descriptor limits, nor allocates a buffer larger than
// the byte limit (TRP-15). A frame refused by the caller's admit() stays
// buffered and comes out unchanged when admitted. After an error the stream
// is dead.
//
// Input layout (choices come from the end, bulk data from the front):
//   last byte: limits selector (0 = defaults, else tightened limits)
//   then per step, two bytes a, b: chunk length = a | (b >> 4) << 8 (0..4095),
//   descriptors with the chunk = b & 7, b & 8: refuse the first whole frame
//   once (admit); the chunk's bytes come from the front.

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <vector>

#include "core/frame.h"
#include "core/stream_reassembler.h"
#include "core/testing/fd_count.h"
#include "fuzz/fuzz_harness.h"

MOAT_FUZZ_COVERS("stream_reassembler", "frame_header")

namespace {

int DevNull() {
  static const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  return fd;
}

moat::limits::ConnectionLimits ChooseLimits(uint8_t selector) {
  using moat::limits::ConnectionLimits;
  if (selector == 0) return ConnectionLimits::Defaults();
  // Small, fuzzer-chosen limits so every limit is reachable with small inputs.
  return ConnectionLimits::Defaults().Tightened({
      .max_message_payload_size = 64u << (selector & 7),
      .max_message_fd_count = static_cast<uint32_t>((selector >> 3) & 7),
      .max_unprocessed_bytes = 256u << ((selector >> 3) & 7),
      .max_unprocessed_fds = static_cast<uint32_t>(((selector >> 6) & 3) * 4),
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  DevNull();
  // Per input: the engine itself may hold descriptors open at other times.
  const size_t baseline = moat::testing::OpenFdCount();
  moat::fuzz::Input in(data, size);
  const moat::limits::ConnectionLimits limits = ChooseLimits(in.Integral<uint8_t>());
  {
    moat::StreamReassembler reassembler(limits);
    bool dead = false;
    while (!in.empty() && !dead) {
      const uint8_t a = in.Integral<uint8_t>();
      const uint8_t b = in.Integral<uint8_t>();
      const size_t length = static_cast<size_t>(a) | (static_cast<size_t>(b >> 4) << 8);
      std::vector<moat::UniqueFd> fds;
      for (int i = 0; i < (b & 7); ++i) fds.emplace_back(::fcntl(DevNull(), F_DUPFD_CLOEXEC, 0));
      std::span<const uint8_t> bytes = in.BytesView(length);
      if (!reassembler.Append(bytes, std::move(fds)).ok()) break;
      MOAT_FUZZ_CHECK(reassembler.unprocessed_bytes() <= limits.max_unprocessed_bytes,
                      "buffered more than max_unprocessed_bytes");
      MOAT_FUZZ_CHECK(reassembler.unprocessed_fds() <= limits.max_unprocessed_fds,
                      "buffered more than max_unprocessed_fds");
      MOAT_FUZZ_CHECK(reassembler.buffer_capacity() <= limits.max_unprocessed_bytes,
                      "buffer allocation over max_unprocessed_bytes");
      if (b & 8) {
        const uint64_t offset = reassembler.stream_offset();
        auto held = reassembler.Next([](const moat::FrameHeader&) { return false; });
        if (!held.ok()) break;
        MOAT_FUZZ_CHECK(!held->has_value(), "a refused frame was yielded");
        MOAT_FUZZ_CHECK(reassembler.stream_offset() == offset, "a refused frame was consumed");
      }
      while (true) {
        auto next = reassembler.Next();
        if (!next.ok()) {
          dead = true;
          break;
        }
        if (!next->has_value()) break;
        const moat::ReceivedFrame& frame = **next;
        MOAT_FUZZ_CHECK(frame.payload.size() == frame.header.payload_size, "payload size mismatch");
        MOAT_FUZZ_CHECK(frame.fds.size() == frame.header.fd_count, "descriptor count mismatch");
        MOAT_FUZZ_CHECK(frame.header.payload_size <= limits.max_message_payload_size,
                        "frame over the payload limit");
        MOAT_FUZZ_CHECK(frame.header.fd_count <= limits.max_message_fd_count,
                        "frame over the descriptor limit");
        for (const auto& fd : frame.fds) MOAT_FUZZ_CHECK(fd.valid(), "invalid descriptor yielded");
        // The header must survive a round trip through the codec.
        auto wire = moat::EncodeFrameHeader(frame.header, limits);
        auto again = moat::DecodeFrameHeader(wire, limits);
        MOAT_FUZZ_CHECK(again.ok() && *again == frame.header, "yielded header does not round trip");
      }
    }
    (void)reassembler.Finish();
  }
  MOAT_FUZZ_CHECK(moat::testing::OpenFdCount() == baseline, "descriptor leak");
  return 0;
}
