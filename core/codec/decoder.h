// moat::Decoder: reads typed values from a payload a peer sent (R5, R7).
//
// Every byte and descriptor may be hostile. A Decoder never reads past its
// input, never allocates more than the input can justify, rejects any length
// over max_decoded_size before allocating, bounds the heap memory of the whole
// decoded value by max_decoded_memory (ChargeMemory), caps nesting at
// limits::MAX_DECODE_DEPTH, and consumes descriptors and handles strictly in
// slot order. Failures are moat::Error values naming the field path, the limit
// and the byte offset:
//   "Envelope.items[3].name: length 80000000 exceeds MAX_DECODED_SIZE 67108864 (at byte 24)"
//
//   moat::Decoder dec(payload, fds);
//   MOAT_ASSIGN_OR_RETURN(Envelope env, dec.Decode<Envelope>());
//   MOAT_TRY(dec.Finish());            // every byte, fd and handle consumed
//
// or in one call: moat::DecodeMessage<Envelope>(payload, fds) (core/codec/codec.h).
//
// kIncomplete means the input ended inside a value; every other code means
// the input can never be valid. Either way the caller disconnects the peer.
#ifndef MOAT_CORE_CODEC_DECODER_H_
#define MOAT_CORE_CODEC_DECODER_H_

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/check.h"
#include "core/codec/encoder.h"
#include "core/decoder_registry.h"
#include "core/error.h"
#include "core/unique_fd.h"
#include "limits/limits.h"

namespace moat {

class Decoder {
 public:
  // `bytes` must outlive the Decoder (ReadRaw returns views into it). The
  // descriptors stay owned by `fds` until TakeFd() moves one out, so whatever
  // is not consumed is closed by the caller's owner: no error path leaks.
  explicit Decoder(std::span<const uint8_t> bytes, std::span<UniqueFd> fds = {},
                   std::span<const uint64_t> handles = {},
                   const limits::ConnectionLimits& limits = limits::ConnectionLimits::Defaults());

  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  Result<uint8_t> ReadU8() { return ReadFixed<uint8_t>(); }
  Result<uint16_t> ReadU16() { return ReadFixed<uint16_t>(); }
  Result<uint32_t> ReadU32() { return ReadFixed<uint32_t>(); }
  Result<uint64_t> ReadU64() { return ReadFixed<uint64_t>(); }
  Result<int8_t> ReadI8() { return ReadFixed<int8_t>(); }
  Result<int16_t> ReadI16() { return ReadFixed<int16_t>(); }
  Result<int32_t> ReadI32() { return ReadFixed<int32_t>(); }
  Result<int64_t> ReadI64() { return ReadFixed<int64_t>(); }
  // Only 0 and 1 are booleans; any other byte is kMalformed.
  Result<bool> ReadBool();
  Result<double> ReadF64();

  // THE length-prefix reader (R5's decode_size): reads a u32 and rejects it
  // with kLimitExceeded "length N exceeds MAX_DECODED_SIZE M" before the
  // caller allocates anything. `what` names the container in kIncomplete
  // errors ("string", "vector", ...).
  MOAT_DECODER(codec_size)
  Result<uint32_t> DecodeSize(std::string_view what);

  // Length-prefixed valid UTF-8 (no overlongs, surrogates or > U+10FFFF).
  Result<std::string> ReadString();
  // Length-prefixed bytes.
  Result<std::vector<uint8_t>> ReadBytes();
  // The same checks and memory charge, as a view into the input (no copy).
  Result<std::span<const uint8_t>> ReadBytesView();
  // The next n bytes, as a view into the input (no copy, no prefix).
  Result<std::span<const uint8_t>> ReadRaw(size_t n);

  // Reads a u32 slot that must name the next unconsumed descriptor (slots are
  // consumed strictly in order 0, 1, 2, ...) and moves that descriptor out.
  Result<UniqueFd> TakeFd();
  // Reads a u32 slot that must name the next unconsumed handle.
  Result<uint64_t> TakeHandle();

  // Reads one value through Codec<T>, counting nesting depth; on failure the
  // error carries the offset where the innermost failing value started.
  template <typename T>
  Result<T> Decode() {
    const size_t start = offset_;
    // Attack: deeply nested input (vector<vector<...>>, recursive structs) to
    // exhaust the decoder's stack.
    if (__builtin_expect(depth_ >= limits::MAX_DECODE_DEPTH, 0)) return DepthError();
    ++depth_;
    Result<T> result = Codec<T>::Decode(*this);
    --depth_;
    if (__builtin_expect(!result.ok(), 0)) result.error().AtOffset(start);
    return result;
  }

  // Charges count x element_size bytes of heap memory that the value being
  // decoded will own (container buffers, map nodes, string and byte buffers)
  // against max_decoded_memory (limits::MAX_DECODED_MEMORY): what one message
  // decodes INTO is bounded, not only each length on the wire.
  // kLimitExceeded names the container.
  // Encoder::ChargeMemory makes the same count on the sending side.
  Status ChargeMemory(size_t count, size_t element_size, std::string_view what);
  size_t memory_charged() const { return memory_charged_; }

  // OK only if every byte, every descriptor and every handle was consumed.
  Status Finish();

  size_t offset() const { return offset_; }
  size_t remaining() const { return bytes_.size() - offset_; }
  // Nesting depth of the value being decoded: 1 inside a top-level Decode<T>().
  uint32_t depth() const { return depth_; }
  size_t fds_consumed() const { return next_fd_; }
  size_t handles_consumed() const { return next_handle_; }
  const limits::ConnectionLimits& limits() const { return limits_; }

  // kIncomplete unless at least n bytes remain (used before bulk reads).
  Status Need(size_t n, std::string_view what);

 private:
  template <typename T>
  Result<T> ReadFixed() {
    if (__builtin_expect(remaining() < sizeof(T), 0)) return IncompleteError(sizeof(T), "integer");
    T v;
    std::memcpy(&v, bytes_.data() + offset_, sizeof(T));
    offset_ += sizeof(T);
    return v;
  }
  Error IncompleteError(size_t need, std::string_view what) const;
  Error DepthError() const;

  std::span<const uint8_t> bytes_;
  size_t offset_ = 0;
  std::span<UniqueFd> fds_;
  size_t next_fd_ = 0;
  std::span<const uint64_t> handles_;
  size_t next_handle_ = 0;
  limits::ConnectionLimits limits_;
  uint32_t depth_ = 0;
  size_t memory_charged_ = 0;
};

}  // namespace moat

#endif  // MOAT_CORE_CODEC_DECODER_H_
