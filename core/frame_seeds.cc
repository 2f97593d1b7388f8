// Seeds for frame_header_fuzzer: real encoded headers. The fuzzer's first
// choice byte is taken from the END of the input (moat::fuzz::Input), so each
// seed is a header followed by a trailing 0x00 choice byte (= default limits).
#include "core/frame.h"
#include "corpus/seed_registry.h"

namespace moat {
namespace {

std::vector<uint8_t> WithDefaultLimits(const FrameHeader& h) {
  auto wire = EncodeFrameHeader(h);
  std::vector<uint8_t> out(wire.begin(), wire.end());
  out.push_back(0x00);
  return out;
}

MOAT_REGISTER_SEEDS(frame_header_fuzzer, [](corpus::SeedSink& sink) {
  sink.Add("message_empty", WithDefaultLimits({FrameType::kMessage, 0, 0, 0}));
  sink.Add("message_5_bytes_1_fd", WithDefaultLimits({FrameType::kMessage, 5, 1, 0}));
  sink.Add("message_with_piggybacked_ack", WithDefaultLimits({FrameType::kMessage, 64, 0, 3}));
  sink.Add("message_at_limits",
           WithDefaultLimits({FrameType::kMessage, limits::MAX_MESSAGE_PAYLOAD_SIZE,
                              limits::MAX_MESSAGE_FD_COUNT, 0}));
  sink.Add("fd_ack_7", WithDefaultLimits({FrameType::kFdAck, 0, 0, 7}));
});

}  // namespace
}  // namespace moat
