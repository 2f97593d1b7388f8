// moat::system::PayloadBytes: a received message's bytes, handed to the
// reader in the buffer they arrived in (issue 14: no copy on the way up).
//
// The buffer may start with bytes that are not the payload (the envelope
// and event headers the payload arrived behind, a handle table): they are
// skipped, never shown. Reads like a const std::vector<uint8_t>:
//
//   ReadResult m = *core.ReadMessage(pipe, nullptr, nullptr);
//   std::string text(m.payload.begin(), m.payload.end());
//   std::span<const uint8_t> view = m.payload;
//   std::vector<uint8_t> mine = std::move(m.payload).ToVector();
#ifndef MOAT_CORE_SYSTEM_PAYLOAD_BYTES_H_
#define MOAT_CORE_SYSTEM_PAYLOAD_BYTES_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "core/check.h"

namespace moat::system {

class PayloadBytes {
 public:
  PayloadBytes() = default;
  // The bytes are buffer[offset..].
  PayloadBytes(std::vector<uint8_t> buffer, size_t offset) : buffer_(std::move(buffer)), offset_(offset) {
    MOAT_ASSERT(offset_ <= buffer_.size(), "payload offset past its buffer");
  }
  PayloadBytes(std::vector<uint8_t> bytes) : buffer_(std::move(bytes)) {}  // NOLINT: implicit
  PayloadBytes(std::initializer_list<uint8_t> bytes) : buffer_(bytes) {}
  PayloadBytes(PayloadBytes&&) = default;
  PayloadBytes& operator=(PayloadBytes&&) = default;
  PayloadBytes(const PayloadBytes&) = default;
  PayloadBytes& operator=(const PayloadBytes&) = default;

  const uint8_t* data() const { return buffer_.data() + offset_; }
  size_t size() const { return buffer_.size() - offset_; }
  bool empty() const { return size() == 0; }
  const uint8_t* begin() const { return data(); }
  const uint8_t* end() const { return data() + size(); }
  const uint8_t& operator[](size_t i) const { return data()[i]; }
  operator std::span<const uint8_t>() const { return {data(), size()}; }  // NOLINT: implicit
  std::span<const uint8_t> span() const { return *this; }

  // The bytes as a vector of their own: the same buffer if nothing precedes
  // them in it, else a copy.
  std::vector<uint8_t> ToVector() && {
    if (offset_ == 0) return std::move(buffer_);
    return std::vector<uint8_t>(begin(), end());
  }

  friend bool operator==(const PayloadBytes& a, const PayloadBytes& b) {
    return std::ranges::equal(a.span(), b.span());
  }
  friend bool operator==(const PayloadBytes& a, const std::vector<uint8_t>& b) {
    return std::ranges::equal(a.span(), b);
  }

 private:
  std::vector<uint8_t> buffer_;
  size_t offset_ = 0;
};

}  // namespace moat::system

#endif  // MOAT_CORE_SYSTEM_PAYLOAD_BYTES_H_
