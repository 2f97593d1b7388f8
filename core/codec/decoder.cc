#include "core/codec/decoder.h"

#include <utility>

#include "core/checked.h"
#include "core/codec/utf8.h"

namespace moat {
namespace {

Status CheckDecodedSize(uint32_t n, uint32_t max_decoded_size) {
  // Attack: a 20-byte message claiming a 64 MiB+ container, so that we
  // allocate (or reserve) before reading a single element.
  MOAT_REQUIRE(n <= max_decoded_size, ErrorCode::kLimitExceeded, "length ", n,
               " exceeds MAX_DECODED_SIZE ", max_decoded_size);
  return OkStatus();
}

Status CheckSlot(uint32_t slot, size_t expected, size_t available, size_t limit,
                 std::string_view kind) {
  // Attack: more descriptors/handles than one message may carry (EMFILE, or
  // thousands of ports created by one message).
  MOAT_REQUIRE(available <= limit, ErrorCode::kLimitExceeded, "message carries ", available, " ",
               kind, "s, exceeding the limit of ", limit);
  // Attack: reusing or skipping slots so two fields share one descriptor or a
  // field takes the descriptor meant for another.
  MOAT_REQUIRE(slot == expected, ErrorCode::kMalformed, kind, " slot ", slot,
               " out of order (expected slot ", expected, ")");
  // Attack: naming a descriptor/handle that never arrived with the message.
  MOAT_REQUIRE(slot < available, ErrorCode::kMalformed, kind, " slot ", slot,
               " missing: the message carries ", available, " ", kind, "s");
  return OkStatus();
}

}  // namespace

Decoder::Decoder(std::span<const uint8_t> bytes, std::span<UniqueFd> fds,
                 std::span<const uint64_t> handles, const limits::ConnectionLimits& limits)
    : bytes_(bytes), fds_(fds), handles_(handles), limits_(limits) {}

Error Decoder::IncompleteError(size_t need, std::string_view what) const {
  return Error(ErrorCode::kIncomplete,
               internal::Concat(what, ": need ", need, " bytes, have ", remaining()))
      .AtOffset(offset_);
}

Error Decoder::DepthError() const {
  return Error(ErrorCode::kLimitExceeded,
               internal::Concat("nesting depth exceeds MAX_DECODE_DEPTH ", limits::MAX_DECODE_DEPTH))
      .AtOffset(offset_);
}

Status Decoder::Need(size_t n, std::string_view what) {
  // Attack: a length that points past the end of the message (out-of-bounds read).
  if (__builtin_expect(remaining() < n, 0)) return IncompleteError(n, what);
  return OkStatus();
}

Result<bool> Decoder::ReadBool() {
  const size_t at = offset_;
  Result<uint8_t> b = ReadU8();
  if (!b.ok()) return std::move(b).error();
  // Attack: a bool byte other than 0/1 is a second encoding of `true` that a
  // byte-wise comparison or a differently written decoder reads otherwise.
  if (__builtin_expect(*b > 1, 0)) {
    return Error(ErrorCode::kMalformed, internal::Concat("bool byte ", +*b, " is not 0 or 1"))
        .AtOffset(at);
  }
  return *b == 1;
}

Result<double> Decoder::ReadF64() {
  Result<uint64_t> bits = ReadU64();
  if (!bits.ok()) return std::move(bits).error();
  return std::bit_cast<double>(*bits);
}

Result<uint32_t> Decoder::DecodeSize(std::string_view what) {
  const size_t at = offset_;
  if (__builtin_expect(remaining() < 4, 0)) {
    return IncompleteError(4, internal::Concat(what, " length prefix"));
  }
  uint32_t n;
  std::memcpy(&n, bytes_.data() + offset_, 4);
  Status s = CheckDecodedSize(n, limits_.max_decoded_size);
  if (__builtin_expect(!s.ok(), 0)) return std::move(s).error().AtOffset(at);
  offset_ += 4;
  return n;
}

Result<std::span<const uint8_t>> Decoder::ReadRaw(size_t n) {
  MOAT_TRY(Need(n, "raw bytes"));
  std::span<const uint8_t> out = bytes_.subspan(offset_, n);
  offset_ += n;
  return out;
}

Result<std::string> Decoder::ReadString() {
  Result<uint32_t> n = DecodeSize("string");
  if (!n.ok()) return std::move(n).error();
  MOAT_TRY(Need(*n, "string"));
  MOAT_TRY(ChargeMemory(*n, 1, "string"));
  const std::span<const uint8_t> text = bytes_.subspan(offset_, *n);
  // Attack: overlong forms, surrogates and > U+10FFFF smuggle characters past
  // filters (overlong "/" or NUL) and break consumers that assume valid UTF-8.
  if (std::optional<size_t> bad = FindInvalidUtf8(text); __builtin_expect(bad.has_value(), 0)) {
    return Error(ErrorCode::kMalformed, internal::Concat("invalid UTF-8 at string byte ", *bad))
        .AtOffset(offset_ + *bad);
  }
  std::string out(reinterpret_cast<const char*>(text.data()), text.size());
  offset_ += *n;
  return out;
}

Result<std::vector<uint8_t>> Decoder::ReadBytes() {
  Result<uint32_t> n = DecodeSize("bytes");
  if (!n.ok()) return std::move(n).error();
  MOAT_TRY(Need(*n, "bytes"));
  MOAT_TRY(ChargeMemory(*n, 1, "bytes"));
  const uint8_t* begin = bytes_.data() + offset_;
  std::vector<uint8_t> out(begin, begin + *n);  // one pass: no zero-fill then copy
  offset_ += *n;
  return out;
}

Result<std::span<const uint8_t>> Decoder::ReadBytesView() {
  Result<uint32_t> n = DecodeSize("bytes");
  if (!n.ok()) return std::move(n).error();
  MOAT_TRY(Need(*n, "bytes"));
  MOAT_TRY(ChargeMemory(*n, 1, "bytes"));
  const std::span<const uint8_t> out = bytes_.subspan(offset_, *n);
  offset_ += *n;
  return out;
}

Result<UniqueFd> Decoder::TakeFd() {
  const size_t at = offset_;
  Result<uint32_t> slot = ReadU32();
  if (!slot.ok()) return std::move(slot).error();
  Status s = CheckSlot(*slot, next_fd_, fds_.size(), limits_.max_message_fd_count, "descriptor");
  if (!s.ok()) return std::move(s).error().AtOffset(at);
  UniqueFd fd = std::move(fds_[*slot]);
  ++next_fd_;
  // Attack: none from the peer (the transport only delivers real descriptors);
  // this catches a caller handing us an already-taken or empty slot.
  MOAT_REQUIRE(fd.valid(), ErrorCode::kMalformed, "descriptor slot ", *slot, " holds no descriptor");
  return fd;
}

Result<uint64_t> Decoder::TakeHandle() {
  const size_t at = offset_;
  Result<uint32_t> slot = ReadU32();
  if (!slot.ok()) return std::move(slot).error();
  Status s = CheckSlot(*slot, next_handle_, handles_.size(), limits::MAX_MESSAGE_HANDLE_COUNT,
                       "handle");
  if (!s.ok()) return std::move(s).error().AtOffset(at);
  ++next_handle_;
  return handles_[*slot];
}

Status Decoder::ChargeMemory(size_t count, size_t element_size, std::string_view what) {
  const Checked<size_t> total =
      Checked<size_t>(memory_charged_) + Checked<size_t>(count) * Checked<size_t>(element_size);
  // Attack: elements that are tiny on the wire but large in memory (a 4-byte
  // empty string is a 32-byte std::string, a 5-byte map entry a 48-byte tree
  // node) turn a 64 MiB payload into half a GiB of decoded objects.
  MOAT_REQUIRE(!total.has_overflow() && total.value() <= limits_.max_decoded_memory,
               ErrorCode::kLimitExceeded, what, " of ", count, " elements of ", element_size,
               " bytes in memory brings the decoded message past MAX_DECODED_MEMORY ",
               limits_.max_decoded_memory, " bytes");
  memory_charged_ = total.value();
  return OkStatus();
}

Status Decoder::Finish() {
  // Attack: trailing bytes smuggled behind a valid value (a second parser may
  // read them; the same message would have two meanings).
  if (__builtin_expect(remaining() != 0, 0)) {
    return Error(ErrorCode::kMalformed,
                 internal::Concat(remaining(), " trailing bytes after the value"))
        .AtOffset(offset_);
  }
  // Attack: descriptors sent but claimed by no field pile up in the receiver.
  MOAT_REQUIRE(next_fd_ == fds_.size(), ErrorCode::kMalformed, fds_.size() - next_fd_, " of ",
               fds_.size(), " descriptors not consumed by the message");
  // Attack: handles claimed by no field would leave ports nobody owns.
  MOAT_REQUIRE(next_handle_ == handles_.size(), ErrorCode::kMalformed,
               handles_.size() - next_handle_, " of ", handles_.size(),
               " handles not consumed by the message");
  return OkStatus();
}

}  // namespace moat
