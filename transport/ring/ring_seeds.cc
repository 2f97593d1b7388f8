// Seeds for fuzz/ring_reader_fuzzer.cc: op sequences in that target's input
// format (op codes listed there), and a ring image produced by a real
// RingWriter.
#include <cstdint>
#include <cstring>
#include <vector>

#include "corpus/seed_registry.h"
#include "limits/limits.h"
#include "transport/ring/ring.h"

namespace {

using namespace moat::transport::ring;  // NOLINT

constexpr uint64_t kCap = moat::limits::RING_MIN_CAPACITY;

// Same op codes as the fuzz target.
enum Op : uint8_t {
  kWrite = 0,
  kRead = 1,
  kScribbleHead = 2,
  kScribbleTail = 3,
  kScribbleByte = 4,
  kArmHook = 5,
  kScribbleLength = 6,
  kImage = 7,
  kAdopt = 8,
};

// Builds a moat::fuzz::Input: bulk data at the front, choices consumed from
// the end (written here in consumption order and reversed).
class InputWriter {
 public:
  void Data(const std::vector<uint8_t>& bytes) { data_.insert(data_.end(), bytes.begin(), bytes.end()); }
  void U8(uint8_t v) { choices_.push_back(v); }
  void U16(uint16_t v) { Big(v, 2); }
  void U32(uint32_t v) { Big(v, 4); }
  void U64(uint64_t v) { Big(v, 8); }
  void Write(const std::vector<uint8_t>& payload) {
    U8(kWrite);
    U32(static_cast<uint32_t>(payload.size()));
    Data(payload);
  }
  void Read() { U8(kRead); }
  std::vector<uint8_t> Finish() const {
    std::vector<uint8_t> out = data_;
    out.insert(out.end(), choices_.rbegin(), choices_.rend());
    return out;
  }

 private:
  void Big(uint64_t v, int bytes) {  // Integral<T> reads the most significant byte first
    for (int shift = 8 * (bytes - 1); shift >= 0; shift -= 8) {
      choices_.push_back(static_cast<uint8_t>(v >> shift));
    }
  }
  std::vector<uint8_t> data_;
  std::vector<uint8_t> choices_;
};

std::vector<uint8_t> Payload(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i);
  return v;
}

void Seeds(moat::corpus::SeedSink& sink) {
  {
    InputWriter w;  // wraps the 4 KiB ring several times
    for (int i = 0; i < 12; ++i) {
      w.Write(Payload(static_cast<size_t>(200 + 300 * (i % 4)), static_cast<uint8_t>(i)));
      w.Write(Payload(static_cast<size_t>(i), static_cast<uint8_t>(i)));
      w.Read();
      w.Read();
    }
    sink.Add("writes_and_reads_wrapping", w.Finish());
  }
  {
    // The data area and head a real RingWriter leaves after five records.
    std::vector<uint64_t> storage((kControlSize + kCap) / 8, 0);
    const RingView view{reinterpret_cast<uint8_t*>(storage.data()), kCap};
    RingWriter writer(view, -1);
    for (int i = 0; i < 5; ++i) {
      (void)writer.TryWrite(Payload(static_cast<size_t>(64 * i + 3), static_cast<uint8_t>(i)));
    }
    uint64_t head;
    std::memcpy(&head, view.base + kHeadOffset, 8);
    InputWriter w;
    w.U8(kImage);
    w.U32(static_cast<uint32_t>(kCap));
    w.Data(std::vector<uint8_t>(view.base + kControlSize, view.base + kControlSize + kCap));
    w.U64(head);
    for (int i = 0; i < 6; ++i) w.Read();
    sink.Add("image_from_ring_writer", w.Finish());
  }
  {
    InputWriter w;
    w.Write(Payload(24, 1));
    w.Write(Payload(8, 2));
    w.U8(kArmHook);
    w.U32(0);
    w.U32(0x7fffffff);
    w.Read();
    w.Read();
    w.Read();
    sink.Add("length_changed_after_read", w.Finish());
  }
  {
    InputWriter w;
    w.Write(Payload(16, 3));
    w.U8(kScribbleHead);
    w.U8(0);
    w.U64(~uint64_t{0});
    w.Read();
    w.Read();
    sink.Add("scribbled_head", w.Finish());
  }
  {
    InputWriter w;
    w.Write(Payload(16, 4));
    w.U8(kScribbleTail);
    w.U8(1);
    w.U16(64);  // tail += 64: past our head
    w.Write(Payload(16, 5));
    w.Read();
    sink.Add("scribbled_tail", w.Finish());
  }
  {
    InputWriter w;
    w.Write(Payload(40, 6));
    w.U8(kScribbleLength);
    w.U32(4000);
    w.Read();
    w.U8(kScribbleByte);
    w.U32(static_cast<uint32_t>(kControlSize + 12));
    w.U8(0xff);
    w.Read();
    sink.Add("scribbled_length_and_bytes", w.Finish());
  }
  {
    InputWriter w;
    w.U8(kAdopt);
    w.U32(0);
    w.U8(1 | 2 | 16);  // shrink, grow, seal: accepted
    sink.Add("adopt_sealed", w.Finish());
  }
  {
    InputWriter w;
    w.U8(kAdopt);
    w.U32(1);
    w.U8(1 | 2 | 16);  // wrong size
    sink.Add("adopt_wrong_size", w.Finish());
  }
}

}  // namespace

MOAT_REGISTER_SEEDS(ring_reader_fuzzer, Seeds);
