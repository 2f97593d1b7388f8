// Per-endpoint quotas (R13): the embedder's defence against a peer that floods
// a pipe.
//
// Three quotas can be set on a message-pipe endpoint:
//   kReceiveQueueLength      messages queued on this end, not yet read
//   kReceiveQueueMemorySize  payload bytes of those messages
//   kUnreadMessageCount      messages this end SENT that the peer has not yet
//                            read (known through read acks, see below)
// A quota is *exceeded* when the current usage is strictly greater than the
// limit; the endpoint then raises kSignalQuotaExceeded so a trap can react.
// Quotas never drop or refuse messages by themselves: they are signals.
//
// Cross-process backpressure: with an unread-count limit L set, the endpoint
// asks its port to request a read acknowledgement from the peer every
// (L + 1) / 2 messages (AckRequestInterval), so the count of unread messages
// is learned without an ack per message. The acks come from the peer and are
// validated by the ports layer (Node::OnReadAck): an ack for a message never
// sent is a protocol violation, a stale or duplicated one is ignored, so the
// count can neither underflow nor go backwards.
//
//   QuotaSet q;
//   MOAT_TRY(q.Set(QuotaType::kUnreadMessageCount, 10));   // interval 5
//   if (q.Exceeded(usage)) signals |= kSignalQuotaExceeded;
#ifndef MOAT_CORE_SYSTEM_QUOTA_H_
#define MOAT_CORE_SYSTEM_QUOTA_H_

#include <array>
#include <cstdint>
#include <string_view>

#include "core/error.h"

namespace moat::system {

enum class QuotaType : uint32_t {
  kReceiveQueueLength = 0,
  kReceiveQueueMemorySize = 1,
  kUnreadMessageCount = 2,
};
inline constexpr uint32_t kQuotaTypeCount = 3;

// Limit value meaning "no quota" (also what Query reports for an unset quota).
inline constexpr uint64_t kNoQuotaLimit = UINT64_MAX;

std::string_view QuotaTypeName(QuotaType type);

// Current usage of every quota-tracked resource of one endpoint.
struct QuotaUsage {
  uint64_t receive_queue_length = 0;
  uint64_t receive_queue_bytes = 0;
  uint64_t unread_message_count = 0;

  uint64_t Of(QuotaType type) const;
};

class QuotaSet {
 public:
  // Validates a quota type coming through the C API. kInvalidArgument for a
  // value that names no quota.
  static Result<QuotaType> ParseType(uint32_t raw);

  // Sets (or with kNoQuotaLimit removes) a limit. A limit of zero is
  // kInvalidArgument: it would hold the quota exceeded by any single message
  // and, for the unread count, gives no ack interval at all.
  Status Set(QuotaType type, uint64_t limit);

  uint64_t limit(QuotaType type) const { return limits_[static_cast<uint32_t>(type)]; }

  bool IsExceeded(QuotaType type, const QuotaUsage& usage) const {
    return usage.Of(type) > limit(type);
  }
  // True if any quota is exceeded.
  bool AnyExceeded(const QuotaUsage& usage) const;

  // How often (in messages) the port must request a read ack: (L + 1) / 2 for
  // an unread-count limit L, or 0 for "never" when no such quota is set.
  uint64_t AckRequestInterval() const;

 private:
  std::array<uint64_t, kQuotaTypeCount> limits_ = {kNoQuotaLimit, kNoQuotaLimit, kNoQuotaLimit};
};

}  // namespace moat::system

#endif  // MOAT_CORE_SYSTEM_QUOTA_H_
