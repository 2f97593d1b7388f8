// The shared harness of moat's fuzz targets.
//
// Every target is a libFuzzer-API function:
//
//   // Property: DecodeFrameHeader never crashes, and accepts only headers
//   // whose re-encoding is byte-identical.
//   MOAT_FUZZ_COVERS("frame_header")
//   extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
//     moat::fuzz::Input in(data, size);
//     ...
//     MOAT_FUZZ_CHECK(reencoded == original, "round trip changed the header");
//     return 0;
//   }
//
// MOAT_FUZZ_CHECK is an always-on assertion (NDEBUG or not) that reports the
// property that broke and aborts, which every engine records as a crash.
// MOAT_FUZZ_COVERS names the decoder entry points (see MOAT_DECODER in
// core/decoder_registry.h) this target exercises; //fuzz:decoder_coverage_test
// fails if a decoder is covered by no target.
#ifndef MOAT_FUZZ_FUZZ_HARNESS_H_
#define MOAT_FUZZ_FUZZ_HARNESS_H_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#define MOAT_FUZZ_CHECK(cond, msg)                                                   \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      std::fprintf(stderr, "moat fuzz property violated at %s:%d: %s: %s\n", __FILE__, \
                   __LINE__, #cond, (msg));                                          \
      std::abort();                                                                  \
    }                                                                                \
  } while (0)

// Marker read by //fuzz:decoder_coverage_test; expands to nothing.
#define MOAT_FUZZ_COVERS(...)

namespace moat::fuzz {

// Splits fuzzer bytes into typed choices. Takes choices from the end and bulk
// data from the front (as libFuzzer's FuzzedDataProvider does), so small
// mutations to choices do not shift the data.
class Input {
 public:
  Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  size_t remaining() const { return size_; }
  bool empty() const { return size_ == 0; }

  template <typename T>
  T Integral() {
    static_assert(std::is_integral_v<T>);
    using U = std::make_unsigned_t<T>;
    U out = 0;
    for (size_t i = 0; i < sizeof(T) && size_ > 0; ++i) {
      out = static_cast<U>((out << 8) | data_[size_ - 1]);
      --size_;
    }
    return static_cast<T>(out);
  }

  // Uniform-ish value in [lo, hi].
  template <typename T>
  T InRange(T lo, T hi) {
    if (lo >= hi) return lo;
    using U = std::make_unsigned_t<T>;
    U span = static_cast<U>(static_cast<U>(hi) - static_cast<U>(lo));
    U v = Integral<U>();
    if (span != static_cast<U>(-1)) v = static_cast<U>(v % (span + 1));
    return static_cast<T>(static_cast<U>(lo) + v);
  }

  bool Bool() { return (Integral<uint8_t>() & 1) != 0; }

  std::vector<uint8_t> Bytes(size_t n) {
    n = n < size_ ? n : size_;
    std::vector<uint8_t> out(data_, data_ + n);
    data_ += n;
    size_ -= n;
    return out;
  }
  std::span<const uint8_t> BytesView(size_t n) {
    n = n < size_ ? n : size_;
    std::span<const uint8_t> out(data_, n);
    data_ += n;
    size_ -= n;
    return out;
  }
  std::vector<uint8_t> RemainingBytes() { return Bytes(size_); }
  std::string String(size_t max) {
    auto b = Bytes(InRange<size_t>(0, max));
    return std::string(b.begin(), b.end());
  }

 private:
  const uint8_t* data_;
  size_t size_;
};

}  // namespace moat::fuzz

#endif  // MOAT_FUZZ_FUZZ_HARNESS_H_
