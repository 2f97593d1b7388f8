#include "core/codec/encoder.h"

#include <limits>
#include <utility>

#include "core/checked.h"
#include "core/codec/utf8.h"

namespace moat {

Encoder::Encoder(const limits::ConnectionLimits& limits) : limits_(limits) {}

void Encoder::WriteSize(size_t n) {
  MOAT_ASSERT(n <= std::numeric_limits<uint32_t>::max(), "container of ", n,
              " elements does not fit the u32 length prefix");
  MOAT_ASSERT(n <= limits_.max_decoded_size, "container length ", n,
              " exceeds MAX_DECODED_SIZE ", limits_.max_decoded_size,
              " (the peer would reject this message)");
  WriteU32(static_cast<uint32_t>(n));
}

void Encoder::WriteString(std::string_view s) {
  const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  const std::optional<size_t> bad = FindInvalidUtf8(bytes);
  MOAT_ASSERT(!bad.has_value(), "encoding a string that is not valid UTF-8 (first bad byte at ",
              bad.value_or(0), ")");
  WriteBytes(bytes);
}

void Encoder::WriteBytes(std::span<const uint8_t> b) {
  WriteSize(b.size());
  ChargeMemory(b.size(), 1);
  WriteRaw(b);
}

void Encoder::ChargeMemory(size_t count, size_t element_size) {
  const Checked<size_t> total =
      Checked<size_t>(memory_charged_) + Checked<size_t>(count) * Checked<size_t>(element_size);
  MOAT_ASSERT(!total.has_overflow() && total.value() <= limits_.max_decoded_memory,
              "the decoded message would hold more than MAX_DECODED_MEMORY ",
              limits_.max_decoded_memory, " bytes in memory (adding ", count, " elements of ",
              element_size, " bytes; the peer would reject this message)");
  memory_charged_ = total.value();
}

void Encoder::WriteRaw(std::span<const uint8_t> b) { bytes_.insert(bytes_.end(), b.begin(), b.end()); }

uint32_t Encoder::AttachFd(UniqueFd fd) {
  MOAT_ASSERT(fd.valid(), "attaching an invalid descriptor (", fd.get(), ")");
  MOAT_ASSERT(fds_.size() < limits_.max_message_fd_count, "attaching descriptor ", fds_.size() + 1,
              " exceeds MAX_MESSAGE_FD_COUNT ", limits_.max_message_fd_count);
  fds_.push_back(std::move(fd));
  return static_cast<uint32_t>(fds_.size() - 1);
}

uint32_t Encoder::AttachHandle(uint64_t handle) {
  MOAT_ASSERT(handles_.size() < limits::MAX_MESSAGE_HANDLE_COUNT, "attaching handle ",
              handles_.size() + 1, " exceeds MAX_MESSAGE_HANDLE_COUNT ",
              limits::MAX_MESSAGE_HANDLE_COUNT);
  handles_.push_back(handle);
  return static_cast<uint32_t>(handles_.size() - 1);
}

void Encoder::SetOsError(Error error) {
  if (!os_error_) os_error_ = std::move(error);
}

void Encoder::AssertPayloadWithinLimit() const {
  MOAT_ASSERT(bytes_.size() <= limits_.max_message_payload_size, "payload of ", bytes_.size(),
              " bytes exceeds MAX_MESSAGE_PAYLOAD_SIZE ", limits_.max_message_payload_size);
}

Status Encoder::Finish() const {
  AssertPayloadWithinLimit();
  if (os_error_) return *os_error_;
  return OkStatus();
}

std::vector<uint8_t> Encoder::TakeBytes() {
  AssertPayloadWithinLimit();
  return std::move(bytes_);
}

}  // namespace moat
