#include "core/ports/port.h"

#include <cstddef>

#include "core/check.h"

namespace moat::ports {

bool Port::CanAcceptMoreMessages() const {
  if (state == State::kClosed || state == State::kUninitialized) return false;
  if (peer_closed || remove_proxy_on_last_message) {
    if (peer_lost_unexpectedly) return message_queue.HasNextMessage();
    if (last_sequence_num_to_receive == message_queue.next_sequence_num() - 1) return false;
  }
  return true;
}

bool Port::HasParkedEvents() const {
  if (!parked.empty()) return true;
  for (const RetiredLink& link : retired) {
    if (!link.parked.empty()) return true;
  }
  return false;
}

size_t Port::OutboxCount(std::thread::id owner) const {
  for (const auto& [id, count] : outbox_owners) {
    if (id == owner) return count;
  }
  return 0;
}

void Port::AddOutboxCount(std::thread::id owner, int delta) {
  for (auto it = outbox_owners.begin(); it != outbox_owners.end(); ++it) {
    if (it->first != owner) continue;
    it->second = static_cast<size_t>(static_cast<ptrdiff_t>(it->second) + delta);
    if (it->second == 0) outbox_owners.erase(it);
    return;
  }
  MOAT_ASSERT(delta > 0, "outbox count of a thread with no events");
  outbox_owners.emplace_back(owner, static_cast<size_t>(delta));
}

}  // namespace moat::ports
