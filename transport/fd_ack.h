// moat::transport::FdAckState: the file-descriptor acknowledgement protocol
// (R8) as a pure state machine, with no sockets, so it can be fuzzed and
// property-tested on its own.
//
// Sender side: every descriptor we send is retained (owned UniqueFd) until
// the peer acknowledges it; acknowledgements arrive as the ack_count of any
// frame the peer sends (piggybacked on a MESSAGE or a standalone FD_ACK).
// Beyond LibIPC, the retained count is also a window: a well-behaved sender
// never has more than `window` descriptors unacknowledged, where `window` is
// the receiver's max_unprocessed_fds. Every unacknowledged descriptor is in
// the socket, in the receiver's reassembler, or delivered but not yet acked,
// so the receiver's unprocessed-descriptor limit can never be tripped by an
// honest sender with a large backlog: the sender's queue waits instead.
//
// Receiver side: counts descriptors received in frames and hands the count to
// piggyback on the next outgoing frame (or a standalone FD_ACK).
//
//   FdAckState acks(limits.max_unprocessed_fds);
//   if (acks.CanSend(fds.size())) { sendmsg(...); acks.OnSent(std::move(fds)); }
//   ...
//   MOAT_TRY(acks.OnAckReceived(frame.header.ack_count));   // hostile count
//   MOAT_TRY(acks.OnFdsReceived(frame.header.fd_count));
//   uint32_t piggyback = acks.TakePendingAcks();
#ifndef MOAT_TRANSPORT_FD_ACK_H_
#define MOAT_TRANSPORT_FD_ACK_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

#include "core/checked.h"
#include "core/decoder_registry.h"
#include "core/deferred_close.h"
#include "core/error.h"
#include "core/unique_fd.h"

namespace moat::transport {

class FdAckState {
 public:
  // `window`: most descriptors this side may have unacknowledged at once
  // (the peer's max_unprocessed_fds). Must be > 0. `close_mode`: how
  // retained descriptors are closed once acknowledged or dropped; the
  // transport defers (TRP-12), the fuzzer and models (no threads) close inline.
  explicit FdAckState(uint32_t window, CloseMode close_mode = CloseMode::kInline);
  FdAckState(FdAckState&&) = default;
  // Retained descriptors replaced or destroyed are closed per the close mode
  // (this object's; the moved-in state keeps its own): we sent them, but they
  // may have come from a peer (a relay), and their close() may block as long
  // as that peer likes (TRP-12).
  FdAckState& operator=(FdAckState&& other) noexcept;
  ~FdAckState();

  // ---- sender side ----

  // True when `n` more descriptors fit in the window now. A message with more
  // descriptors than the whole window could never be sent: the caller asserts
  // that separately (it is a programmer error, not a wait).
  bool CanSend(size_t n) const;
  uint32_t window() const { return window_; }
  // Retains descriptors the kernel has accepted. Exceeding the window is a bug
  // in the caller (MOAT_ASSERT): it must check CanSend first.
  void OnSent(std::vector<UniqueFd> fds);
  // As OnSent, for descriptors whose ownership has moved elsewhere (a handed
  // over transport): counted against the window but nothing to close.
  void OnSentWithoutRetaining(uint32_t n);
  size_t retained() const { return retained_.size(); }

  // The peer acknowledges `count` of our descriptors (peer-controlled). More
  // than are outstanding is a protocol violation; nothing is released then.
  MOAT_DECODER(fd_ack)
  Status OnAckReceived(uint32_t count);

  // ---- receiver side ----

  // `count` descriptors arrived with a frame (peer-controlled count, already
  // bounded by the frame limits; overflow of the running total is rejected).
  Status OnFdsReceived(uint32_t count);
  uint32_t pending_acks() const { return pending_acks_.value_unchecked(); }
  // Returns and clears the acknowledgements to send.
  uint32_t TakePendingAcks();

  // Totals since creation, for tests and the property fuzzer.
  uint64_t total_sent() const { return total_sent_; }
  uint64_t total_acked() const { return total_acked_; }

 private:
  void DropRetained();

  uint32_t window_;
  CloseMode close_mode_;
  // Retained sent descriptors, oldest first; an invalid UniqueFd stands for a
  // descriptor counted by OnSentWithoutRetaining.
  std::deque<UniqueFd> retained_;
  Checked<uint32_t> pending_acks_ = 0;
  uint64_t total_sent_ = 0;
  uint64_t total_acked_ = 0;
};

}  // namespace moat::transport

#endif  // MOAT_TRANSPORT_FD_ACK_H_
