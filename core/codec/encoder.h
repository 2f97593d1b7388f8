// moat::Encoder: writes typed values into a message payload (R5).
//
// The wire format is little-endian and fixed-width; every container carries a
// u32 length prefix; descriptors and message-pipe handles travel out of band
// and the payload carries only their u32 slot index (docs/wire-format-codec.md).
//
//   moat::Encoder enc;
//   enc.Encode(my_struct);                 // via moat::Codec<MyStruct>
//   enc.WriteU32(7);
//   uint32_t slot = enc.AttachFd(std::move(fd));
//   enc.WriteU32(slot);
//   MOAT_TRY(enc.Finish());
//   transport.Send(enc.TakeBytes(), enc.TakeFds());
//
// Everything an Encoder is asked to write comes from our own process, so
// misuse (an invalid descriptor, a container over the limit, invalid UTF-8,
// an over-limit payload) is a programmer error: MOAT_ASSERT aborts. We never
// send what the peer's Decoder must reject. The only runtime error is an OS
// failure (dup() of a descriptor that is shared by const reference), which is
// sticky and reported by Finish().
#ifndef MOAT_CORE_CODEC_ENCODER_H_
#define MOAT_CORE_CODEC_ENCODER_H_

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "core/check.h"
#include "core/error.h"
#include "core/unique_fd.h"
#include "limits/limits.h"

namespace moat {

static_assert(std::endian::native == std::endian::little,
              "moat's wire format is little-endian; add byte swaps for big-endian hosts");

// Codec<T> defines how one C++ type is written and read (see core/codec/codec.h):
//   static void Encode(Encoder&, const T&);
//   static Result<T> Decode(Decoder&);
//   static constexpr size_t kMinEncodedSize;   // fewest bytes any value occupies
template <typename T>
struct Codec;

class Encoder {
 public:
  explicit Encoder(const limits::ConnectionLimits& limits = limits::ConnectionLimits::Defaults());

  Encoder(Encoder&&) = default;
  Encoder& operator=(Encoder&&) = default;

  // Capacity hint for a message of about `n` bytes (large payloads are then
  // copied in once, not again on the growth that follows).
  void Reserve(size_t n) { bytes_.reserve(n); }
  // Writes go on after `bytes` (written elsewhere, e.g. in place around a
  // payload), in its allocation: nothing written so far, no descriptors.
  // The payload limit then counts `bytes` too.
  void ContinueAfter(std::vector<uint8_t> bytes) {
    MOAT_ASSERT(bytes_.empty() && fds_.empty(), "ContinueAfter on a used Encoder");
    bytes_ = std::move(bytes);
  }

  void WriteU8(uint8_t v) { WriteFixed(v); }
  void WriteU16(uint16_t v) { WriteFixed(v); }
  void WriteU32(uint32_t v) { WriteFixed(v); }
  void WriteU64(uint64_t v) { WriteFixed(v); }
  void WriteI8(int8_t v) { WriteFixed(v); }
  void WriteI16(int16_t v) { WriteFixed(v); }
  void WriteI32(int32_t v) { WriteFixed(v); }
  void WriteI64(int64_t v) { WriteFixed(v); }
  void WriteBool(bool v) { WriteU8(v ? 1 : 0); }
  // IEEE-754 binary64 bit pattern, little-endian (NaN payloads preserved).
  void WriteF64(double v) { WriteU64(std::bit_cast<uint64_t>(v)); }

  // The u32 length prefix of every container (bytes for string/bytes,
  // elements for vector/map). Asserts n fits u32 and n <= max_decoded_size.
  void WriteSize(size_t n);
  // Length-prefixed UTF-8. Asserts the text is valid UTF-8.
  void WriteString(std::string_view s);
  // Length-prefixed bytes.
  void WriteBytes(std::span<const uint8_t> b);
  // Bytes with no prefix (the reader must know the length).
  void WriteRaw(std::span<const uint8_t> b);

  // Counts the heap memory the peer's decoded copy of this message will hold
  // (count x element_size bytes) and asserts the total stays within
  // max_decoded_memory, the bound Decoder::ChargeMemory enforces on the other
  // side with the same per-element sizes. Containers call it; WriteString and
  // WriteBytes charge their length themselves.
  void ChargeMemory(size_t count, size_t element_size);

  // Takes ownership of a descriptor for this message and returns its slot.
  // Writes nothing: the caller writes the slot (Codec<UniqueFd> does).
  // Asserts fd is valid and the message stays within max_message_fd_count.
  uint32_t AttachFd(UniqueFd fd);
  // Attaches a message-pipe handle (opaque to the codec) and returns its slot.
  // Asserts the message stays within limits::MAX_MESSAGE_HANDLE_COUNT.
  uint32_t AttachHandle(uint64_t handle);

  // Writes `value` through Codec<T>. Asserts nesting stays within
  // limits::MAX_DECODE_DEPTH (the peer would reject deeper values).
  template <typename T>
  void Encode(const T& value) {
    MOAT_ASSERT(depth_ < limits::MAX_DECODE_DEPTH, "encoding a value nested deeper than MAX_DECODE_DEPTH ",
                limits::MAX_DECODE_DEPTH);
    ++depth_;
    Codec<T>::Encode(*this, value);
    --depth_;
  }

  // Records an OS failure met while encoding (e.g. dup() failed); the first
  // one wins and Finish() returns it.
  void SetOsError(Error error);

  // Asserts the payload fits max_message_payload_size; returns the first OS
  // error met while encoding, if any (the message must then not be sent).
  Status Finish() const;

  const std::vector<uint8_t>& bytes() const { return bytes_; }
  // Moves the payload out (asserts the payload limit, as Finish does).
  std::vector<uint8_t> TakeBytes();
  std::vector<UniqueFd> TakeFds() { return std::move(fds_); }
  const std::vector<uint64_t>& handles() const { return handles_; }
  std::vector<uint64_t> TakeHandles() { return std::move(handles_); }
  size_t fd_count() const { return fds_.size(); }
  const limits::ConnectionLimits& limits() const { return limits_; }

 private:
  template <typename T>
  void WriteFixed(T v) {
    const size_t at = bytes_.size();
    bytes_.resize(at + sizeof(T));
    std::memcpy(bytes_.data() + at, &v, sizeof(T));
  }
  void AssertPayloadWithinLimit() const;

  limits::ConnectionLimits limits_;
  size_t memory_charged_ = 0;
  std::vector<uint8_t> bytes_;
  std::vector<UniqueFd> fds_;
  std::vector<uint64_t> handles_;
  std::optional<Error> os_error_;
  uint32_t depth_ = 0;
};

}  // namespace moat

#endif  // MOAT_CORE_CODEC_ENCODER_H_
