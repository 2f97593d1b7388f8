#include "transport/fd_ack.h"

#include <utility>

#include "core/check.h"
#include "core/deferred_close.h"

namespace moat::transport {

FdAckState::FdAckState(uint32_t window, CloseMode close_mode)
    : window_(window), close_mode_(close_mode) {
  MOAT_ASSERT(window > 0, "fd-ack window must be positive");
}

FdAckState& FdAckState::operator=(FdAckState&& other) noexcept {
  if (this != &other) {
    DropRetained();
    window_ = other.window_;
    close_mode_ = other.close_mode_;
    retained_ = std::move(other.retained_);
    pending_acks_ = other.pending_acks_;
    total_sent_ = other.total_sent_;
    total_acked_ = other.total_acked_;
  }
  return *this;
}

FdAckState::~FdAckState() { DropRetained(); }

void FdAckState::DropRetained() {
  for (UniqueFd& fd : retained_) Dispose(close_mode_, std::move(fd));
  retained_.clear();
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
  for (uint32_t i = 0; i < count; ++i) {
    Dispose(close_mode_, std::move(retained_.front()));
    retained_.pop_front();
  }
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
