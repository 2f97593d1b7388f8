#include "transport/fd_ack.h"

#include <utility>

#include "core/check.h"

namespace moat::transport {

FdAckState::FdAckState(uint32_t window) : window_(window) {
  MOAT_ASSERT(window > 0, "fd-ack window must be positive");
}

bool FdAckState::CanSend(size_t n) const {
  return n <= window_ && retained_.size() <= window_ - n;
}

void FdAckState::OnSent(std::vector<UniqueFd> fds) {
  MOAT_ASSERT(CanSend(fds.size()), "sending ", fds.size(), " descriptors with ", retained_.size(),
              " unacknowledged exceeds the fd-ack window ", window_);
  for (auto& fd : fds) retained_.push_back(std::move(fd));
  total_sent_ += fds.size();
}

void FdAckState::OnSentWithoutRetaining(uint32_t n) {
  MOAT_ASSERT(CanSend(n), "restoring ", n, " in-flight descriptors exceeds the fd-ack window ",
              window_);
  for (uint32_t i = 0; i < n; ++i) retained_.emplace_back();
  total_sent_ += n;
}

Status FdAckState::OnAckReceived(uint32_t count) {
  // Attack: acknowledging descriptors we never sent, to pop an empty queue or
  // underflow the outstanding count (LibIPC's Queue::dequeue() VERIFY crash).
  if (count > retained_.size()) {
    return Error(ErrorCode::kProtocolViolation,
                 internal::Concat("ack_count ", count, " exceeds the ", retained_.size(),
                                  " descriptors outstanding"))
        .WithField("ack_count");
  }
  for (uint32_t i = 0; i < count; ++i) retained_.pop_front();
  total_acked_ += count;
  return OkStatus();
}

Status FdAckState::OnFdsReceived(uint32_t count) {
  Checked<uint32_t> next = pending_acks_ + count;
  // Attack: fd_count values that overflow the u32 acknowledgement counter.
  if (next.has_overflow()) {
    return Error(ErrorCode::kProtocolViolation,
                 internal::Concat("received descriptor count ", pending_acks_.value(), " + ",
                                  count, " overflows u32"))
        .WithField("fd_count");
  }
  pending_acks_ = next;
  return OkStatus();
}

uint32_t FdAckState::TakePendingAcks() { return std::exchange(pending_acks_, 0).value(); }

}  // namespace moat::transport
