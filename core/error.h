// moat::Error and moat::Result<T>: the one error type of the codebase.
//
// Every failure that comes from untrusted input, the OS or a closed peer is
// returned as an Error carrying a code, the path of the field that failed
// (outermost first), a human-readable reason naming the limit that was hit,
// and, when known, the byte offset in the input. Errors never carry secrets
// from the peer's payload beyond numbers already on the wire.
//
//   moat::Result<uint32_t> r = decoder.ReadU32();
//   if (!r.ok()) return r.error().WithField("Envelope.count");
//   use(*r);
//
// The rendering is stable so tests and `moat inspect` can show it:
//   "Envelope.items[3].name: length 80000000 exceeds MAX_DECODED_SIZE 67108864 (at byte 24)"
#ifndef MOAT_CORE_ERROR_H_
#define MOAT_CORE_ERROR_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace moat {

enum class ErrorCode : uint8_t {
  kIncomplete = 1,          // Input ended before a complete value (wait for more bytes).
  kLimitExceeded,           // A length/count/size exceeds a configured limit.
  kMalformed,               // Bytes that can never be valid (bad bool, bad UTF-8, ...).
  kProtocolViolation,       // A peer broke the protocol (bogus ack, unknown frame type).
  kInvalidArgument,         // A local caller passed an invalid argument.
  kFailedPrecondition,      // The object is in the wrong state for this call.
  kBusy,                    // The handle is in transit.
  kClosed,                  // The handle or connection is closed locally.
  kPeerClosed,              // The other side went away.
  kQuotaExceeded,           // A per-endpoint quota would be exceeded.
  kNotFound,                // No such port/handle/message.
  kShouldWait,              // Nothing available yet.
  kResourceExhausted,       // Allocation or OS resource failure.
  kIo,                      // An OS call failed.
  kAlreadyExists,           // The name/key is already taken (e.g. a trigger context).
  kDeadlineExceeded,        // A peer did not answer in time (stopped, hung or hostile).
};

// Short stable name of an error code, e.g. "LIMIT_EXCEEDED".
std::string_view ErrorCodeName(ErrorCode code);

class Error {
 public:
  Error(ErrorCode code, std::string reason) : code_(code), reason_(std::move(reason)) {}

  ErrorCode code() const { return code_; }
  const std::string& field() const { return field_; }
  const std::string& reason() const { return reason_; }
  std::optional<size_t> offset() const { return offset_; }

  // Prepends a path component: "name" becomes "Outer.name", "[3]" becomes
  // "Outer[3]". Decoders call this on the way out of each nested value.
  Error&& WithField(std::string_view outer) &&;
  Error& WithField(std::string_view outer) &;

  // Records where in the input the failure was detected (first call wins: the
  // innermost decoder knows the exact byte).
  Error&& AtOffset(size_t offset) &&;
  Error& AtOffset(size_t offset) &;

  // "field: reason (at byte N)", or "reason" if there is no field.
  std::string ToString() const;

 private:
  ErrorCode code_;
  std::string field_;
  std::string reason_;
  std::optional<size_t> offset_;
};

// Either a T or an Error. [[nodiscard]]: an ignored error is a bug.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}    // NOLINT: implicit by design

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  Error& error() & { return std::get<1>(v_); }
  const Error& error() const& { return std::get<1>(v_); }
  Error&& error() && { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : e_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const { return !e_.has_value(); }
  explicit operator bool() const { return ok(); }
  Error& error() & { return *e_; }
  const Error& error() const& { return *e_; }
  Error&& error() && { return std::move(*e_); }

 private:
  std::optional<Error> e_;
};

using Status = Result<void>;

inline Status OkStatus() { return Status(); }

}  // namespace moat

#endif  // MOAT_CORE_ERROR_H_
