// MessageQueue: a port's incoming user messages, released strictly in
// sequence-number order.
//
// Messages may arrive out of order (forwarded through proxies); the queue
// holds them until the next expected one arrives. The window of messages it
// will hold ahead of the next expected one is bounded
// (limits::MAX_PORT_OUT_OF_ORDER_MESSAGES, and MAX_PORT_OUT_OF_ORDER_BYTES), and duplicates or stale sequence
// numbers are rejected: a hostile node cannot make a port buffer without
// bound or deliver a message twice.
//
//   MessageQueue q;                                   // expects 1 first
//   MOAT_TRY(q.AcceptMessage(std::move(event_seq_2))); // held
//   q.HasNextMessage();                               // false
//   MOAT_TRY(q.AcceptMessage(std::move(event_seq_1)));
//   auto m = q.PopNextMessage();                       // seq 1, then 2
#ifndef MOAT_CORE_PORTS_MESSAGE_QUEUE_H_
#define MOAT_CORE_PORTS_MESSAGE_QUEUE_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "core/error.h"
#include "core/ports/event.h"

namespace moat::ports {

class MessageQueue {
 public:
  explicit MessageQueue(uint64_t next_sequence_num = kInitialSequenceNum)
      : next_sequence_num_(next_sequence_num), first_missing_(next_sequence_num) {}

  // Sequence number of the next message PopNextMessage will return.
  uint64_t next_sequence_num() const { return next_sequence_num_; }
  bool HasNextMessage() const;

  // kProtocolViolation for a stale/duplicate sequence number, kLimitExceeded
  // beyond the out-of-order window. Takes *event only on success.
  Status AcceptMessage(std::unique_ptr<UserMessageEvent>* event);

  // The highest sequence number n such that every message up to n has been
  // popped or is queued (next_sequence_num() - 1 if the next one is missing).
  uint64_t LastContiguousSequenceNum() const;

  // The highest sequence number popped or queued (next_sequence_num() - 1 if
  // none is queued).
  uint64_t HighestSequenceNum() const;
  // Whether `seq` lies inside the out-of-order window (see AcceptMessage).
  bool InWindow(uint64_t seq) const;

  // The next in-order message, or nullptr.
  std::unique_ptr<UserMessageEvent> PopNextMessage();

  size_t queued_message_count() const { return messages_.size(); }
  size_t queued_num_bytes() const { return queued_bytes_; }

  // Appends the names of the ports attached to the queued messages.
  void AppendCarriedPorts(std::vector<PortName>* out) const;

  // Empties the queue (in any order), e.g. to close the ports they carry.
  std::vector<std::unique_ptr<UserMessageEvent>> TakeAll();

 private:
  uint64_t next_sequence_num_;
  // The first sequence number neither popped nor queued: the out-of-order
  // window starts here, not at next_sequence_num_, so in-order messages the
  // embedder has not read yet never count against it (unread messages are
  // bounded by the embedder's quota, R13).
  uint64_t first_missing_;
  std::map<uint64_t, std::unique_ptr<UserMessageEvent>> messages_;
  size_t queued_bytes_ = 0;
  // Bytes of the queued messages after first_missing_ (bounded by
  // limits::MAX_PORT_OUT_OF_ORDER_BYTES).
  size_t out_of_order_bytes_ = 0;
};

}  // namespace moat::ports

#endif  // MOAT_CORE_PORTS_MESSAGE_QUEUE_H_
