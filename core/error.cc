#include "core/error.h"

namespace moat {

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kIncomplete: return "INCOMPLETE";
    case ErrorCode::kLimitExceeded: return "LIMIT_EXCEEDED";
    case ErrorCode::kMalformed: return "MALFORMED";
    case ErrorCode::kProtocolViolation: return "PROTOCOL_VIOLATION";
    case ErrorCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case ErrorCode::kFailedPrecondition: return "FAILED_PRECONDITION";
    case ErrorCode::kBusy: return "BUSY";
    case ErrorCode::kClosed: return "CLOSED";
    case ErrorCode::kPeerClosed: return "PEER_CLOSED";
    case ErrorCode::kQuotaExceeded: return "QUOTA_EXCEEDED";
    case ErrorCode::kNotFound: return "NOT_FOUND";
    case ErrorCode::kShouldWait: return "SHOULD_WAIT";
    case ErrorCode::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case ErrorCode::kIo: return "IO";
    case ErrorCode::kAlreadyExists: return "ALREADY_EXISTS";
    case ErrorCode::kDeadlineExceeded: return "DEADLINE_EXCEEDED";
  }
  return "UNKNOWN";
}

Error& Error::WithField(std::string_view outer) & {
  if (outer.empty()) return *this;
  if (field_.empty()) {
    field_ = std::string(outer);
  } else if (field_.front() == '[') {
    field_ = std::string(outer) + field_;
  } else {
    field_ = std::string(outer) + "." + field_;
  }
  return *this;
}

Error&& Error::WithField(std::string_view outer) && {
  WithField(outer);
  return std::move(*this);
}

Error& Error::AtOffset(size_t offset) & {
  if (!offset_) offset_ = offset;
  return *this;
}

Error&& Error::AtOffset(size_t offset) && {
  AtOffset(offset);
  return std::move(*this);
}

std::string Error::ToString() const {
  std::string out;
  if (!field_.empty()) {
    out += field_;
    out += ": ";
  }
  out += reason_;
  if (offset_) {
    out += " (at byte ";
    out += std::to_string(*offset_);
    out += ")";
  }
  return out;
}

}  // namespace moat
