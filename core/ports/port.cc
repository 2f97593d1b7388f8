#include "core/ports/port.h"

namespace moat::ports {

bool Port::CanAcceptMoreMessages() const {
  if (state == State::kClosed || state == State::kUninitialized) return false;
  if (peer_closed || remove_proxy_on_last_message) {
    if (peer_lost_unexpectedly) return message_queue.HasNextMessage();
    if (last_sequence_num_to_receive == message_queue.next_sequence_num() - 1) return false;
  }
  return true;
}

}  // namespace moat::ports
