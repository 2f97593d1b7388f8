// Seed corpora for the transport's fuzz targets, built from real encoder
// output (EncodeFrameHeader) laid out in each target's input format.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "core/frame.h"
#include "corpus/seed_registry.h"

namespace {

// Builds a moat::fuzz::Input: bulk data at the front, choices consumed from
// the end (so they are written here in consumption order and reversed).
class InputWriter {
 public:
  void Data(const std::vector<uint8_t>& bytes) { data_.insert(data_.end(), bytes.begin(), bytes.end()); }
  void U8(uint8_t v) { choices_.push_back(v); }
  void U32(uint32_t v) {  // Integral<uint32_t> reads the most significant byte first
    for (int shift = 24; shift >= 0; shift -= 8) choices_.push_back(static_cast<uint8_t>(v >> shift));
  }
  std::vector<uint8_t> Finish() const {
    std::vector<uint8_t> out = data_;
    out.insert(out.end(), choices_.rbegin(), choices_.rend());
    return out;
  }

 private:
  std::vector<uint8_t> data_;
  std::vector<uint8_t> choices_;
};

std::vector<uint8_t> Frame(moat::FrameType type, const std::string& payload, uint32_t fds,
                           uint32_t acks) {
  auto header = moat::EncodeFrameHeader({.type = type,
                                         .payload_size = static_cast<uint32_t>(payload.size()),
                                         .fd_count = fds,
                                         .ack_count = acks});
  std::vector<uint8_t> out(header.begin(), header.end());
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

std::vector<uint8_t> Message(const std::string& payload, uint32_t fds = 0, uint32_t acks = 0) {
  return Frame(moat::FrameType::kMessage, payload, fds, acks);
}

// One reassembler step: `bytes` (<= 4095) arriving with `fds` (<= 7) descriptors.
void Chunk(InputWriter& w, const std::vector<uint8_t>& bytes, uint8_t fds) {
  const size_t n = std::min<size_t>(bytes.size(), 4095);
  w.U8(static_cast<uint8_t>(n & 0xFF));
  w.U8(static_cast<uint8_t>(((n >> 8) << 4) | (fds & 7)));
  w.Data(std::vector<uint8_t>(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(n)));
}

MOAT_REGISTER_SEEDS(stream_reassembler_fuzzer, [](moat::corpus::SeedSink& sink) {
  {
    InputWriter w;
    w.U8(0);  // default limits
    Chunk(w, Message("hello"), 0);
    sink.Add("one_message", w.Finish());
  }
  {
    InputWriter w;
    w.U8(0);
    Chunk(w, Message("with descriptors", 2), 2);
    Chunk(w, Frame(moat::FrameType::kFdAck, "", 0, 3), 0);
    Chunk(w, Message("", 0, 1), 0);
    sink.Add("fds_and_acks", w.Finish());
  }
  {
    // A frame split across receives, descriptors with its first byte.
    InputWriter w;
    w.U8(0);
    std::vector<uint8_t> f = Message(std::string(300, 'x'), 3);
    Chunk(w, std::vector<uint8_t>(f.begin(), f.begin() + 10), 3);
    Chunk(w, std::vector<uint8_t>(f.begin() + 10, f.begin() + 100), 0);
    Chunk(w, std::vector<uint8_t>(f.begin() + 100, f.end()), 0);
    sink.Add("split_frame", w.Finish());
  }
  {
    // Several frames in one receive.
    InputWriter w;
    w.U8(0);
    std::vector<uint8_t> stream;
    for (int i = 0; i < 5; ++i) {
      auto f = Message(std::string(static_cast<size_t>(i * 7), 'a'), i == 0 ? 1 : 0, i);
      stream.insert(stream.end(), f.begin(), f.end());
    }
    Chunk(w, stream, 1);
    sink.Add("batched_frames", w.Finish());
  }
  {
    // Tightened limits (selector 0x49: payload 128, 1 fd, 512 unprocessed bytes, 4 fds).
    InputWriter w;
    w.U8(0x49);
    Chunk(w, Message(std::string(128, 'l'), 1), 1);
    Chunk(w, Message(std::string(129, 'l')), 0);
    sink.Add("at_and_past_tight_limits", w.Finish());
  }
});

// fd_ack_state_fuzzer: op sequences a real connection performs.
MOAT_REGISTER_SEEDS(fd_ack_state_fuzzer, [](moat::corpus::SeedSink& sink) {
  auto send = [](InputWriter& w, uint32_t k) { w.U8(0); w.U32(k); };
  auto ack = [](InputWriter& w, uint32_t n) { w.U8(4); w.U32(n); };
  auto hostile_ack = [](InputWriter& w, uint32_t n) { w.U8(1); w.U32(n); };
  auto received = [](InputWriter& w, uint32_t n) { w.U8(2); w.U32(n); };
  auto take = [](InputWriter& w) { w.U8(3); };
  {
    InputWriter w;
    w.U32(7);  // window 8
    send(w, 3);
    send(w, 5);
    send(w, 1);  // window full: refused
    ack(w, 4);
    send(w, 1);
    ack(w, 5);
    received(w, 2);
    received(w, 1);
    take(w);
    sink.Add("window_cycle", w.Finish());
  }
  {
    InputWriter w;
    w.U32(63);  // window 64
    send(w, 2);
    hostile_ack(w, 3);           // more than outstanding
    hostile_ack(w, 0xFFFFFFFF);  // u32 max
    w.U8(0x82);                  // received, u32 form
    w.U32(0xFFFFFFFF);
    w.U8(0x82);
    w.U32(1);  // overflows the pending count
    take(w);
    sink.Add("hostile_acks", w.Finish());
  }
});

}  // namespace
