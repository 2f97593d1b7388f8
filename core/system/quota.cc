#include "core/system/quota.h"

#include "core/check.h"

namespace moat::system {

std::string_view QuotaTypeName(QuotaType type) {
  switch (type) {
    case QuotaType::kReceiveQueueLength: return "RECEIVE_QUEUE_LENGTH";
    case QuotaType::kReceiveQueueMemorySize: return "RECEIVE_QUEUE_MEMORY_SIZE";
    case QuotaType::kUnreadMessageCount: return "UNREAD_MESSAGE_COUNT";
  }
  return "UNKNOWN";
}

uint64_t QuotaUsage::Of(QuotaType type) const {
  switch (type) {
    case QuotaType::kReceiveQueueLength: return receive_queue_length;
    case QuotaType::kReceiveQueueMemorySize: return receive_queue_bytes;
    case QuotaType::kUnreadMessageCount: return unread_message_count;
  }
  MOAT_UNREACHABLE("bad QuotaType");
}

Result<QuotaType> QuotaSet::ParseType(uint32_t raw) {
  MOAT_REQUIRE(raw < kQuotaTypeCount, ErrorCode::kInvalidArgument, "quota type ", raw,
               " is not a known quota type (0..", kQuotaTypeCount - 1, ")");
  return static_cast<QuotaType>(raw);
}

Status QuotaSet::Set(QuotaType type, uint64_t limit) {
  MOAT_ASSIGN_OR_RETURN(QuotaType checked, ParseType(static_cast<uint32_t>(type)));
  MOAT_REQUIRE(limit != 0, ErrorCode::kInvalidArgument, "quota ", QuotaTypeName(checked),
               " limit 0 is meaningless (use at least 1, or no limit)");
  limits_[static_cast<uint32_t>(checked)] = limit;
  return OkStatus();
}

bool QuotaSet::AnyExceeded(const QuotaUsage& usage) const {
  for (uint32_t i = 0; i < kQuotaTypeCount; ++i) {
    if (IsExceeded(static_cast<QuotaType>(i), usage)) return true;
  }
  return false;
}

uint64_t QuotaSet::AckRequestInterval() const {
  uint64_t l = limit(QuotaType::kUnreadMessageCount);
  if (l == kNoQuotaLimit) return 0;
  // (l + 1) / 2 without overflow for l near UINT64_MAX.
  return l / 2 + (l % 2);
}

}  // namespace moat::system
