// moat::transport::Transport: a message transport over a SOCK_STREAM Unix
// socket with descriptor passing (R17-R22).
//
// Frames (core/frame.h) go over the stream; descriptors ride beside the first
// byte of their frame via SCM_RIGHTS. An IO thread (epoll) reads into the
// StreamReassembler, decodes whole frames and hands each message to the
// owner: to `on_message` on the IO thread, or, without a handler, to a queue
// that Receive() drains. Anything hostile ends in exactly one disconnect
// event (`on_disconnect`, IO thread) carrying the precise Error; the socket is
// then shut down and every descriptor we hold for that peer is closed.
//
//   auto [transport, handle] = *Transport::CreatePaired();
//   // send `handle` to a child (as a descriptor, see TransportHandle) ...
//   MOAT_TRY(transport->Send(bytes, std::move(fds)));
//   Result<Message> reply = transport->Receive(std::chrono::seconds(5));
//
// Sending: the calling thread writes directly (header + payload as one
// iovec, descriptors in the same sendmsg) when nothing is queued; otherwise
// the frame is queued and the IO thread flushes it on EPOLLOUT (see Send()
// for borrowed vs owned payloads), several frames per sendmsg(). A sender
// that may wait waits once the queue passes send_high_water_bytes (1 MiB),
// until it drains, the peer is gone, or the peer took no byte for
// send_stall_timeout (then the connection fails: DEADLINE_EXCEEDED). IO
// threads and SendWithoutWaiting never wait and stop at
// max_unprocessed_bytes (kResourceExhausted). WouldWaitToSend() and
// on_send_space let a non-blocking writer wait for room itself.
//
// Receiving: a frame of at least StreamReassembler::kDirectFrameMin bytes is
// received straight into a buffer of its own once its header is in, and
// that buffer becomes the message (queue mode) or is offered to on_message
// (MessageView::owned): large payloads are never copied in user space.
//
// Receiving in queue mode: a thread blocked in Receive() reads the socket
// itself while it waits (the IO thread stops watching for input meanwhile),
// which saves the IO-thread wake and condition-variable hop per message.
// Without a deadline it sleeps inside recvmsg() (the socket is in blocking
// mode; every other call passes MSG_DONTWAIT). Between Receive() calls the
// input stays "parked" for the next caller; the IO thread resumes watching
// it after a quiet tick (docs/wire-format-transport.md, "Parked input").
//
// Threads: Send() may be called from any thread, including from inside
// on_message. Receive() from any thread but the IO thread. The destructor and
// ReleaseForTransfer() must not run concurrently with other calls, and not on
// the IO thread (that is a programmer error: MOAT_ASSERT).
//
// IO thread: by default each transport runs its own. With
// TransportOptions::io_loop it runs on a shared IoLoop (io_loop.h) instead:
// one thread serving many transports, each dispatched for one "turn" at a
// time (the same IoTurn the private thread loops over), so everything above
// holds unchanged: order, one disconnect, EPOLLOUT flushing, parking (the
// park tick becomes a loop deadline), handoff. "The IO thread" then means
// the loop thread while it runs this transport's turn: OnIoThread() is true
// there, and OnAnyIoThread() for any transport's turn, so a Send from one
// transport's handler to another never waits (NOD-6), which on a shared
// loop would stall every transport of it. A turn reads at most
// limits::IO_LOOP_READ_BUDGET_BYTES, so one flooding peer cannot starve the
// others (TRP-16). A transport of the loop may be destroyed or released
// from another transport's handler on the loop thread; from any other
// thread the destructor waits until the loop has left this transport's
// handlers.
#ifndef MOAT_TRANSPORT_TRANSPORT_H_
#define MOAT_TRANSPORT_TRANSPORT_H_

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/frame.h"
#include "core/mutex.h"
#include "core/stream_reassembler.h"
#include "core/unique_fd.h"
#include "limits/limits.h"
#include "transport/fd_ack.h"
#include "transport/io_loop.h"
#include "transport/peer_credentials.h"

namespace moat::transport {

// A received message owned by the application.
struct Message {
  std::vector<uint8_t> payload;
  std::vector<UniqueFd> fds;
};

// A received message as on_message sees it: the payload is borrowed from the
// receive buffer (no copy) and valid only during the call; the handler may
// move descriptors out of `fds` (the rest are closed afterwards).
struct MessageView {
  std::span<const uint8_t> payload;
  std::vector<UniqueFd>& fds;
  // Non-null when the payload has a buffer of its own (a large frame is
  // received straight into one): `payload` is all of *owned, and the
  // handler may move it out to keep the bytes without a copy (`payload`
  // stays valid until the call returns).
  std::vector<uint8_t>* owned = nullptr;
};

struct TransportOptions {
  // In force on this connection. The fd-ack window is
  // limits.max_unprocessed_fds: both ends must use the same (or the sender
  // tighter) limits for the window to protect the receiver's budget.
  limits::ConnectionLimits limits = limits::ConnectionLimits::Defaults();
  // Called on the IO thread for every message, in order. Unset: messages are
  // queued for Receive().
  std::function<void(MessageView&)> on_message;
  // Called on the IO thread exactly once when the connection fails (peer
  // closed, peer died, protocol violation, limit exceeded, IO error). Never
  // for local destruction or ReleaseForTransfer().
  std::function<void(const Error&)> on_disconnect;
  // Unsent bytes past which Send() from a thread that may wait waits for the
  // socket to drain (limits::SEND_HIGH_WATER_BYTES). Threads that may not
  // wait (IO threads, SendWithoutWaiting) keep the hard cap
  // limits.max_unprocessed_bytes.
  size_t send_high_water_bytes = limits::SEND_HIGH_WATER_BYTES;
  // A waiting sender fails the connection (kDeadlineExceeded, reported by
  // on_disconnect) when the peer takes no byte for this long: it is stopped,
  // hung or hostile (limits::PEER_STALL_TIMEOUT_MS).
  std::chrono::milliseconds send_stall_timeout{limits::PEER_STALL_TIMEOUT_MS};
  // Called on the IO thread once the send queue is at or below the
  // high-water mark again after WouldWaitToSend() returned true.
  std::function<void()> on_send_space;
  // Unset: the transport runs its own IO thread. Set: its IO work runs on
  // this shared loop's thread instead, with every other transport of the
  // loop (io_loop.h); the callbacks above then run on the loop thread.
  std::shared_ptr<IoLoop> io_loop;
};

class Transport;

namespace detail {
struct OutgoingFrame {
  FrameHeader header;
  std::array<uint8_t, kFrameHeaderSize> wire{};  // encoded at the first write
  std::vector<uint8_t> payload;
  std::vector<UniqueFd> fds;  // go out with the first byte of the frame
  size_t sent = 0;            // bytes of wire + payload already written
  size_t size() const { return kFrameHeaderSize + payload.size(); }
};

// Local state that moves with a released transport (R21).
struct HandoffState {
  std::unique_ptr<StreamReassembler> reassembler;  // bytes/fds of incomplete frames
  std::deque<Message> received;                    // decoded, not yet delivered
  std::deque<OutgoingFrame> unsent;                // queued, not (fully) written
  std::optional<FdAckState> acks;                  // retained fds + pending acks
  std::optional<Error> disconnect;                 // a pending shutdown to report
  limits::ConnectionLimits limits;
  HandoffState() = default;
  HandoffState(HandoffState&&) = default;
  // Descriptors still held go to the closer thread (TRP-12).
  ~HandoffState();
};
}  // namespace detail

// The other end of a connection, not yet a Transport: just the socket (plus,
// after ReleaseForTransfer(), the local state that moves with it). It is
// cheap: no thread, no buffers. Turn it into a Transport where it is used.
class TransportHandle {
 public:
  TransportHandle() = default;
  // Adopts a connected Unix stream socket, e.g. one received in a message.
  // CreateTransport() verifies that it really is one.
  explicit TransportHandle(UniqueFd socket) : socket_(std::move(socket)) {}
  TransportHandle(TransportHandle&&) = default;
  TransportHandle& operator=(TransportHandle&&) = default;

  bool valid() const { return socket_.valid(); }
  // True when local state (messages, queued sends, retained descriptors)
  // travels with this handle.
  bool has_handoff_state() const;

  Result<std::unique_ptr<Transport>> CreateTransport(TransportOptions options = {}) &&;

  // The socket, to attach to a message for another process. Fails with
  // kFailedPrecondition if local state would be left behind (that state can
  // only move within a process; see docs/wire-format-transport.md).
  Result<UniqueFd> TakeSocketForSending() &&;

 private:
  friend class Transport;
  UniqueFd socket_;
  std::unique_ptr<detail::HandoffState> state_;
};

struct TransportPair {
  std::unique_ptr<Transport> transport;
  TransportHandle handle;
};

class Transport {
 public:
  // A connected pair: a live transport and a lightweight handle for the peer.
  static Result<TransportPair> CreatePaired(TransportOptions options = {});

  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Sends one message. Over-limit payload or descriptor count, or an invalid
  // descriptor, is a programmer error (MOAT_ASSERT). Descriptors are owned by
  // the transport from here on (retained until the peer acknowledges them).
  // Errors: kPeerClosed (dead or disconnected peer, e.g. EPIPE), kClosed
  // (released), kResourceExhausted (queue full while on an IO thread, this
  // transport's or another's: see OnAnyIoThread).
  //
  // Borrowed bytes: if the socket fills up mid-frame, the calling thread
  // finishes the frame itself, waiting for the socket (no copy; like a
  // blocking write, it returns when the peer has read enough or is gone). On
  // the IO thread, and when frames are already queued or the fd-ack window
  // is full, the bytes are copied into the queue instead.
  Status Send(std::span<const uint8_t> payload, std::vector<UniqueFd> fds = {});
  // Owned bytes: whatever cannot be written at once is queued by moving the
  // vector (no copy) and flushed by the IO thread on EPOLLOUT; the caller
  // waits only when max_unprocessed_bytes are already queued.
  Status Send(std::vector<uint8_t>&& payload, std::vector<UniqueFd> fds = {});
  // Never waits, on any thread: writes what the socket takes now and copies
  // the rest into the queue; kResourceExhausted if the queue already holds
  // max_unprocessed_bytes (the peer is not reading). For a relay, whose
  // thread serves one peer and must not wait for another (NOD-6).
  Status SendWithoutWaiting(std::span<const uint8_t> payload, std::vector<UniqueFd> fds = {});
  Status SendWithoutWaiting(std::vector<uint8_t>&& payload, std::vector<UniqueFd> fds = {});

  // Whether a Send() from a thread that may wait would wait now (the send
  // queue is above the high-water mark). If so, on_send_space is called once
  // it is not.
  bool WouldWaitToSend() ABSL_LOCKS_EXCLUDED(mu_);
  // As WouldWaitToSend, without a lock and without asking for on_send_space:
  // for a hot path that only needs to notice the queue passing the mark.
  bool AboveHighWater() const { return above_high_water_.load(std::memory_order_relaxed); }

  // Queue mode only (no on_message; else MOAT_ASSERT). The next message;
  // kShouldWait after `timeout`; once the queue is drained after a
  // disconnect, the disconnect Error. nullopt waits forever.
  Result<Message> Receive(std::optional<std::chrono::nanoseconds> timeout = std::nullopt);

  // Stops the IO thread and returns the socket with all local state: received
  // but undelivered messages, unsent queued frames, retained descriptors and
  // pending acks, a pending disconnect. This endpoint reports nothing (the
  // handoff is not a peer EOF) and becomes unusable (Send: kClosed).
  Result<TransportHandle> ReleaseForTransfer();

  Result<PeerCredentials> peer_credentials() const;

  bool is_connected() const;
  std::optional<Error> disconnect_reason() const;

  struct Stats {
    size_t queued_messages = 0;      // received, waiting for Receive()
    size_t queued_bytes = 0;         // their payload bytes
    size_t queued_fds = 0;           // their descriptors
    size_t send_queue_frames = 0;    // frames waiting to be written
    size_t send_queue_bytes = 0;
    size_t retained_fds = 0;         // sent, not yet acknowledged
    size_t buffered_bytes = 0;       // received bytes of frames not yet delivered
    size_t buffer_capacity = 0;      // the reassembly buffer's allocation
    // What the peer makes us hold on the receive side: the queued messages'
    // memory plus the reassembly buffer; <= max_unprocessed_bytes (TRP-15).
    size_t held_bytes = 0;
    bool reading_paused = false;     // backpressure: receive queue full
    bool sender_waiting = false;     // a Send() caller waits for socket space
    // sendmsg() calls that wrote queued frames (several per call when they
    // fit: FlushLocked), since the start. A counter for tests.
    uint64_t queue_writes = 0;
  };
  Stats stats() const;

  // Tests only: transports created without options.io_loop use `loop` (null:
  // their own IO thread again), so a whole test suite can run on a shared
  // loop unchanged. Set before creating transports, not concurrently.
  static void SetDefaultIoLoopForTesting(std::shared_ptr<IoLoop> loop);

 private:
  friend class TransportHandle;
  friend class IoLoop;
  explicit Transport(UniqueFd socket, TransportOptions options);
  Status Init(std::unique_ptr<detail::HandoffState> state);

  // `may_wait`: false on any IO thread and for SendWithoutWaiting.
  Status SendFrame(std::span<const uint8_t> payload, std::vector<uint8_t>* owned,
                   std::vector<UniqueFd> fds, bool may_wait) ABSL_LOCKS_EXCLUDED(mu_, read_mu_);

  void IoThreadMain() ABSL_LOCKS_EXCLUDED(mu_, read_mu_);
  // One turn of the IO work, on the private IO thread or the shared loop's:
  // reports a disconnect, runs the park timer, takes the ready events (the
  // loop's `given`, or else from epoll_, waiting for them if `block`),
  // flushes and reads at most `read_budget` bytes. OnIoThread() is true for
  // its duration.
  struct IoTurnResult {
    bool stopped = false;           // stopping_: no more turns
    bool budget_exhausted = false;  // the read stopped at read_budget
    // When the next turn is due without any event (the park timer).
    std::optional<std::chrono::steady_clock::time_point> deadline;
  };
  IoTurnResult IoTurn(bool block, size_t read_budget, const IoLoop::Events* given)
      ABSL_LOCKS_EXCLUDED(mu_, read_mu_);
  // Handler mode, first turn: messages handed over with a released
  // transport are delivered before anything read from the socket.
  void DeliverHandedOverMessages() ABSL_LOCKS_EXCLUDED(mu_, read_mu_);
  // Ends the IO work for good (destructor, ReleaseForTransfer): joins the
  // private thread or unregisters from the loop (waiting for a running turn).
  void StopIo() ABSL_LOCKS_EXCLUDED(mu_, read_mu_);
  // Reads until EAGAIN (or a pause), delivering frames. Returns false when
  // the connection ended (disconnect recorded).
  // With block_first, the first recvmsg() sleeps until data or EOF (a
  // Receive() waiter without a deadline).
  void ReadAvailable(bool block_first) ABSL_EXCLUSIVE_LOCKS_REQUIRED(read_mu_)
      ABSL_LOCKS_EXCLUDED(mu_);
  // What one read may take: up to `want` bytes, the reassembly buffer's
  // allocation up to `max_capacity` (what the queue leaves of the budget),
  // `taken` the owner's take count when it was computed.
  struct ReadBudget {
    size_t want = 256 * 1024;
    size_t max_capacity = SIZE_MAX;
    uint64_t taken = 0;
  };
  Status ReadOnce(const ReadBudget& budget, bool block, bool* would_block)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(read_mu_) ABSL_LOCKS_EXCLUDED(mu_);
  // Queues whole frames left in the buffer for want of room, if a take made
  // room (drain_requested_). False once disconnected.
  bool DrainHeldFrames() ABSL_EXCLUSIVE_LOCKS_REQUIRED(read_mu_) ABSL_LOCKS_EXCLUDED(mu_);
  void UpdateReassemblerMirrorLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(read_mu_, mu_);
  void ClearReassemblerLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(read_mu_, mu_);
  // IO thread, before reporting a disconnect: queues held-back whole frames
  // and frees the reassembler's state (TRP-13).
  void ReleaseReceiveStateAfterDisconnect() ABSL_LOCKS_EXCLUDED(mu_, read_mu_);
  // The Receive() waiter's turn as reader: wait for input until `deadline`
  // (none: forever), then read what is there.
  void WaitAndRead(std::optional<std::chrono::steady_clock::time_point> deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(read_mu_) ABSL_LOCKS_EXCLUDED(mu_);
  // Delivers whole frames. Queue mode: within_budget holds back those that
  // do not fit (TRP-15); false queues them all (at the end of the stream).
  Status DrainFrames(bool within_budget = true) ABSL_EXCLUSIVE_LOCKS_REQUIRED(read_mu_)
      ABSL_LOCKS_EXCLUDED(mu_);
  Status DeliverFrame(ReceivedFrame& frame) ABSL_EXCLUSIVE_LOCKS_REQUIRED(read_mu_)
      ABSL_LOCKS_EXCLUDED(mu_);

  void FlushLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes what it can of `frame`; false with *error set on a fatal error.
  bool WriteFrameLocked(detail::OutgoingFrame& frame, Error* error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DisconnectLocked(Error error) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A write failed. If the peer merely stopped reading (EPIPE, ECONNRESET)
  // what it wrote before may still wait in our receive buffer: sending stops,
  // reading goes on until its EOF disconnects us (crbug.com/1005510; Mojo's
  // channel does the same). Any other error disconnects at once.
  void WriteFailedLocked(Error error) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateInterestLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool ReadAllowedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TakeMessageLocked(Message& out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After a Receive() waiter's turn: leave the socket's input unwatched for
  // the next waiter (see kParkTick); the IO thread un-parks it when no
  // Receive() turn started for a whole tick.
  void ParkInputLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UnparkInputLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // IO thread: runs the park timer; returns the epoll_wait() timeout (-1: none).
  int ParkTimerLocked(std::optional<std::chrono::steady_clock::time_point>& next_tick,
                      uint64_t& turns_seen) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WakeIoThread();
  // IO thread: whether on_send_space is due (WouldWaitToSend said yes and
  // the queue is back at or below the high-water mark); clears the request.
  bool TakeSendSpaceNoticeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A sender waiting for the queue to drain: fails the connection once the
  // peer took no byte for send_stall_timeout_.
  void WaitForSendSpaceLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool OnIoThread() const;
  // True on any Transport's IO thread. Such a thread serves its own peer and
  // never waits for another transport's peer: Send from it refuses with
  // kResourceExhausted instead of waiting for queue space (NOD-6).
  static bool OnAnyIoThread();

  const limits::ConnectionLimits limits_;
  const std::function<void(MessageView&)> on_message_;
  const std::function<void(const Error&)> on_disconnect_;
  const std::function<void()> on_send_space_;
  const size_t send_high_water_bytes_;
  const std::chrono::milliseconds send_stall_timeout_;
  // Fixed after construction until ReleaseForTransfer() (after the join).
  UniqueFd socket_;
  UniqueFd epoll_;  // private IO thread only: socket + wake_
  UniqueFd wake_;   // eventfd: stop / report a disconnect / re-evaluate interest
  // Exactly one of: a private IO thread, or a registration on io_loop_
  // (whose epoll set then holds socket_ and wake_).
  std::thread io_thread_;
  const std::shared_ptr<IoLoop> io_loop_;
  // Owned by whichever thread runs IoTurn (one at a time: the private thread,
  // or the loop thread, which never runs two turns of one transport at once).
  struct IoTurnState {
    bool started = false;
    std::optional<std::chrono::steady_clock::time_point> next_tick;  // park timer
    uint64_t turns_seen = 0;
  } io_;

  // Lock order: read_mu_ before mu_. read_mu_ is held by whichever thread
  // holds the reader role (the IO thread or an inline Receive() waiter) for
  // the duration of a read + decode; it is acquired only after claiming
  // reader_busy_ under mu_, so it is never contended while mu_ is held.
  Mutex read_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::unique_ptr<StreamReassembler> reassembler_ ABSL_GUARDED_BY(read_mu_);
  // A blocking recvmsg() returned EAGAIN: the file description was made
  // non-blocking behind our back; waiters poll instead.
  bool description_nonblocking_ ABSL_GUARDED_BY(read_mu_) = false;
  // Bytes the reader may still take from the socket in this IO turn (the
  // shared loop's per-turn budget); SIZE_MAX outside loop turns.
  size_t read_allowance_ ABSL_GUARDED_BY(read_mu_) = SIZE_MAX;

  mutable Mutex mu_;
  // Signalled on: message queued, disconnect, reader role released, send
  // queue drained.
  CondVar cv_;
  std::deque<Message> received_ ABSL_GUARDED_BY(mu_);
  size_t received_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  size_t received_fds_ ABSL_GUARDED_BY(mu_) = 0;
  // reassembler_->unprocessed_bytes() as of the last read, for the budget.
  size_t reassembler_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  size_t reassembler_capacity_ ABSL_GUARDED_BY(mu_) = 0;
  // Queue mode, TRP-15: the reader stopped because the queue left no room
  // (no space to read into, or a whole frame it could not queue). Set by the
  // reader, cleared by TakeMessageLocked(), which then sets drain_requested_
  // so that held-back frames are queued without waiting for new input.
  bool receive_blocked_ ABSL_GUARDED_BY(mu_) = false;
  bool drain_requested_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t taken_ ABSL_GUARDED_BY(mu_) = 0;  // messages taken by the owner
  // After a disconnect: the reassembler was drained of held-back frames and
  // cleared; only then does Receive() report the disconnect (nothing
  // accepted is lost).
  bool receive_state_released_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<detail::OutgoingFrame> send_queue_ ABSL_GUARDED_BY(mu_);
  size_t send_queue_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t queue_writes_ ABSL_GUARDED_BY(mu_) = 0;  // Stats::queue_writes
  FdAckState acks_ ABSL_GUARDED_BY(mu_);
  // Connection state: connected -> disconnected (disconnect_ set; reported_
  // once the IO thread has called on_disconnect) or -> released (stopping_ and
  // released_ set; nothing is reported). Both are final.
  std::optional<Error> disconnect_ ABSL_GUARDED_BY(mu_);
  // Set by WriteFailedLocked: nothing more is sent; disconnect_ follows at EOF.
  std::optional<Error> write_error_ ABSL_GUARDED_BY(mu_);
  bool reported_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool released_ ABSL_GUARDED_BY(mu_) = false;
  bool reader_busy_ ABSL_GUARDED_BY(mu_) = false;     // someone holds the reader role
  bool waiter_reading_ ABSL_GUARDED_BY(mu_) = false;  // ... and it is a Receive() waiter
  bool want_write_ ABSL_GUARDED_BY(mu_) = false;      // last write hit EAGAIN
  bool writer_busy_ ABSL_GUARDED_BY(mu_) = false;
  // Bytes of queued frames written so far (a waiting sender's progress).
  uint64_t queue_bytes_written_ ABSL_GUARDED_BY(mu_) = 0;
  // WouldWaitToSend() said yes: on_send_space is owed.
  bool send_space_wanted_ ABSL_GUARDED_BY(mu_) = false;
  // send_queue_bytes_ > send_high_water_bytes_, as of the last send or flush.
  std::atomic<bool> above_high_water_{false};     // a Send() caller owns a partial frame
  bool in_epoll_ ABSL_GUARDED_BY(mu_) = false;
  // Input parking (see ParkInputLocked): input_parked_ implies io_ticking_,
  // i.e. the IO thread runs the park timer and will un-park. io_ticking_ goes
  // false only on the IO thread; whoever sets it true wakes the IO thread.
  bool input_parked_ ABSL_GUARDED_BY(mu_) = false;
  bool io_ticking_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t receive_turns_ ABSL_GUARDED_BY(mu_) = 0;  // reader turns taken by waiters
  uint32_t epoll_events_ ABSL_GUARDED_BY(mu_) = 0;
  // The shared loop's token for us; 0 before Init registered us and after
  // StopIo (then UpdateInterestLocked arms nothing).
  IoLoop::Token loop_token_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace moat::transport

#endif  // MOAT_TRANSPORT_TRANSPORT_H_
