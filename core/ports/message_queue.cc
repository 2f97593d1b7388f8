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
  queued_bytes_ += event->message->size_in_bytes();
  messages_.emplace(seq, std::move(event));
  while (messages_.contains(first_missing_)) ++first_missing_;
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

std::vector<std::unique_ptr<UserMessageEvent>> MessageQueue::TakeAll() {
  std::vector<std::unique_ptr<UserMessageEvent>> out;
  for (auto& [seq, event] : messages_) out.push_back(std::move(event));
  messages_.clear();
  queued_bytes_ = 0;
  first_missing_ = next_sequence_num_;
  return out;
}

}  // namespace moat::ports
