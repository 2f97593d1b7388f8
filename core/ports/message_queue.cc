#include "core/ports/message_queue.h"

#include "core/check.h"
#include "core/checked.h"
#include "limits/limits.h"

namespace moat::ports {

bool MessageQueue::HasNextMessage() const {
  return !messages_.empty() && messages_.begin()->first == next_sequence_num_;
}

Status MessageQueue::AcceptMessage(std::unique_ptr<UserMessageEvent>* event_ptr) {
  std::unique_ptr<UserMessageEvent>& event = *event_ptr;
  const uint64_t seq = event->sequence_num;
  // Attack: replaying an already delivered message so it is delivered twice.
  MOAT_REQUIRE(seq >= next_sequence_num_, ErrorCode::kProtocolViolation, "sequence_num ", seq,
               " was already delivered (next expected ", next_sequence_num_, ")");
  Checked<uint64_t> window_end = first_missing_;
  window_end += limits::MAX_PORT_OUT_OF_ORDER_MESSAGES;
  // Attack: sequence numbers far ahead of the next one, buffered without bound.
  MOAT_REQUIRE(window_end.has_overflow() || seq < window_end.value(), ErrorCode::kLimitExceeded,
               "sequence_num ", seq, " is ", seq - first_missing_,
               " ahead of the first missing one, exceeds MAX_PORT_OUT_OF_ORDER_MESSAGES ",
               limits::MAX_PORT_OUT_OF_ORDER_MESSAGES);
  // Attack: two messages with one sequence number (one would be lost or duplicated).
  MOAT_REQUIRE(messages_.find(seq) == messages_.end(), ErrorCode::kProtocolViolation,
               "duplicate sequence_num ", seq);
  const size_t size = event->message->size_in_bytes();
  if (seq != first_missing_) {
    Checked<size_t> ahead = out_of_order_bytes_;
    ahead += size;
    // Attack: a few huge messages ahead of a gap that is never filled: the
    // count window alone would let one port hold ~1024 x 64 MiB.
    MOAT_REQUIRE(!ahead.has_overflow() && ahead.value() <= limits::MAX_PORT_OUT_OF_ORDER_BYTES,
                 ErrorCode::kLimitExceeded, "sequence_num ", seq, " (", size,
                 " bytes) would hold ", out_of_order_bytes_ + size,
                 " bytes of out-of-order messages, MAX_PORT_OUT_OF_ORDER_BYTES ",
                 limits::MAX_PORT_OUT_OF_ORDER_BYTES);
    out_of_order_bytes_ = ahead.value();
  }
  queued_bytes_ += size;
  messages_.emplace(seq, std::move(event));
  if (seq == first_missing_) {
    ++first_missing_;
    // Messages that were ahead of the gap are in order now.
    for (auto it = messages_.find(first_missing_); it != messages_.end() && it->first == first_missing_;
         ++it, ++first_missing_) {
      out_of_order_bytes_ -= it->second->message->size_in_bytes();
    }
  }
  return OkStatus();
}

uint64_t MessageQueue::LastContiguousSequenceNum() const { return first_missing_ - 1; }

uint64_t MessageQueue::HighestSequenceNum() const {
  if (messages_.empty()) return next_sequence_num_ - 1;
  return messages_.rbegin()->first;
}

bool MessageQueue::InWindow(uint64_t seq) const {
  Checked<uint64_t> window_end = first_missing_;
  window_end += limits::MAX_PORT_OUT_OF_ORDER_MESSAGES;
  return window_end.has_overflow() || seq < window_end.value();
}

std::unique_ptr<UserMessageEvent> MessageQueue::PopNextMessage() {
  if (!HasNextMessage()) return nullptr;
  auto it = messages_.begin();
  std::unique_ptr<UserMessageEvent> out = std::move(it->second);
  messages_.erase(it);
  queued_bytes_ -= out->message->size_in_bytes();
  ++next_sequence_num_;
  return out;
}

void MessageQueue::AppendCarriedPorts(std::vector<PortName>* out) const {
  for (const auto& [seq, event] : messages_) {
    out->insert(out->end(), event->message->ports.begin(), event->message->ports.end());
  }
}

std::vector<std::unique_ptr<UserMessageEvent>> MessageQueue::TakeAll() {
  std::vector<std::unique_ptr<UserMessageEvent>> out;
  for (auto& [seq, event] : messages_) out.push_back(std::move(event));
  messages_.clear();
  queued_bytes_ = 0;
  out_of_order_bytes_ = 0;
  first_missing_ = next_sequence_num_;
  return out;
}

}  // namespace moat::ports
