#include "transport/transport.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <utility>

#include "core/check.h"
#include "core/checked.h"
#include "core/deferred_close.h"

namespace moat::transport {
namespace {

// Bytes asked of one recvmsg(): large enough that a 64 KiB message needs
// one receive, small enough not to pin memory for small traffic.
constexpr size_t kReadChunk = 256 * limits::KiB;
// Reads per IO-thread wake before looking at other events (fairness with
// the send side; epoll is level-triggered so nothing is lost).
constexpr int kMaxReadsPerWake = 16;
// How long the socket's input stays parked (unwatched by the IO thread) after
// a Receive() waiter read it, hoping the caller is back soon: each park or
// un-park is an epoll_ctl(), and an armed socket wakes the IO thread for the
// reply a returning waiter wants to read itself. Bounds, while parked, how
// late the IO thread notices a peer EOF or starts reading ahead.
constexpr std::chrono::milliseconds kParkTick{5};
// Room for the most descriptors one recvmsg() can carry: the kernel stops a
// stream receive at the first skb with descriptors, and one sendmsg() carries
// at most SCM_MAX_FD. Anything larger is MSG_CTRUNC, a violation (as is the
// truncation the kernel makes when we are out of descriptor numbers).
constexpr size_t kControlSize = CMSG_SPACE(sizeof(int) * limits::SCM_MAX_FD);
constexpr size_t kSendControlSize = CMSG_SPACE(sizeof(int) * limits::MAX_MESSAGE_FD_COUNT);
// Queued frames one flush writes with one sendmsg() (two iovecs each, far
// below IOV_MAX): a peer reading slowly then costs one syscall per socket
// buffer's worth of frames, not one per frame (issue 14).
constexpr size_t kMaxFramesPerWrite = 32;
static_assert(2 * kMaxFramesPerWrite <= IOV_MAX, "a flush's iovecs must fit one sendmsg");
static_assert(limits::MAX_MESSAGE_FD_COUNT <= limits::SCM_MAX_FD,
              "one frame's descriptors must fit in one sendmsg (R2)");

// The transport whose IO turn this thread is running (Transport::IoTurn).
thread_local const Transport* t_io_thread_owner = nullptr;

// Marks this thread as `owner`'s IO thread for one turn; restores the
// previous owner (none: the loop between turns).
class IoThreadScope {
 public:
  explicit IoThreadScope(const Transport* owner) : previous_(t_io_thread_owner) {
    t_io_thread_owner = owner;
  }
  ~IoThreadScope() { t_io_thread_owner = previous_; }
  IoThreadScope(const IoThreadScope&) = delete;
  IoThreadScope& operator=(const IoThreadScope&) = delete;

 private:
  const Transport* const previous_;
};

// Heap a queued received message really holds (TRP-15): its deque slot
// (sizeof(Message) plus the deque's block overhead), and the payload and
// descriptor vectors' allocations as a glibc-style allocator rounds them
// (8 bytes of header, 16-byte granules). A flood of empty messages, 24 bytes
// on the wire each, is charged what it costs, not what it weighs on the wire.
size_t HeapChunk(size_t bytes) { return bytes == 0 ? 0 : (bytes + 8 + 15) / 16 * 16; }
size_t MessageCharge(size_t payload_size, size_t fd_count) {
  return sizeof(Message) + sizeof(void*) + HeapChunk(payload_size) +
         HeapChunk(fd_count * sizeof(UniqueFd));
}
size_t AccountedSize(const Message& m) { return MessageCharge(m.payload.size(), m.fds.size()); }

void DropFds(std::vector<UniqueFd>& fds) { CloseDeferred(fds); }

Error PeerClosedError(const char* call, int err) {
  return Error(ErrorCode::kPeerClosed,
               ::moat::internal::Concat(call, ": peer closed the connection (", std::strerror(err), ")"));
}

// One sendmsg() of `iov` with `fds` (may be empty) attached to its first
// byte. Returns bytes written (0 on EAGAIN).
Result<size_t> SendIov(int socket, iovec* iov, size_t iovcnt, const std::vector<UniqueFd>& fds) {
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = iovcnt;
  alignas(cmsghdr) char control[kSendControlSize];
  if (!fds.empty()) {
    MOAT_ASSERT(fds.size() <= limits::MAX_MESSAGE_FD_COUNT, "too many descriptors for one sendmsg");
    const size_t len = sizeof(int) * fds.size();
    std::memset(control, 0, sizeof(control));
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(len);
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(len);
    int* out = reinterpret_cast<int*>(CMSG_DATA(cmsg));
    for (size_t i = 0; i < fds.size(); ++i) out[i] = fds[i].get();
  }
  while (true) {
    const ssize_t n = ::sendmsg(socket, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return size_t{0};
    if (errno == EPIPE || errno == ECONNRESET) return PeerClosedError("sendmsg", errno);
    return IoError("sendmsg", errno);
  }
}

// Appends the iovecs of what is left of one frame (wire[sent..], payload[..]).
void AppendFrameIov(std::span<const uint8_t> wire, std::span<const uint8_t> payload, size_t sent,
                    iovec* iov, size_t& iovcnt) {
  if (sent < wire.size()) {
    iov[iovcnt++] = {const_cast<uint8_t*>(wire.data()) + sent, wire.size() - sent};
    if (!payload.empty()) {
      iov[iovcnt++] = {const_cast<uint8_t*>(payload.data()), payload.size()};
    }
  } else {
    const size_t off = sent - wire.size();
    iov[iovcnt++] = {const_cast<uint8_t*>(payload.data()) + off, payload.size() - off};
  }
}

// Writes some of (wire[sent..], payload[..]) with `fds` attached when nothing
// of the frame has been written yet. Returns bytes written (0 on EAGAIN).
Result<size_t> WriteSome(int socket, std::span<const uint8_t> wire,
                         std::span<const uint8_t> payload, size_t sent,
                         const std::vector<UniqueFd>& fds) {
  iovec iov[2];
  size_t iovcnt = 0;
  AppendFrameIov(wire, payload, sent, iov, iovcnt);
  static const std::vector<UniqueFd> kNone;
  return SendIov(socket, iov, iovcnt, sent == 0 ? fds : kNone);
}

}  // namespace

// ---------------------------------------------------------------- handle

detail::HandoffState::~HandoffState() {
  for (Message& m : received) DropFds(m.fds);
  for (OutgoingFrame& f : unsent) DropFds(f.fds);
}

bool TransportHandle::has_handoff_state() const {
  if (!state_) return false;
  const auto& s = *state_;
  return (s.reassembler &&
          (s.reassembler->unprocessed_bytes() > 0 || s.reassembler->unprocessed_fds() > 0)) ||
         !s.received.empty() || !s.unsent.empty() ||
         (s.acks && (s.acks->retained() > 0 || s.acks->pending_acks() > 0)) ||
         s.disconnect.has_value();
}

Result<UniqueFd> TransportHandle::TakeSocketForSending() && {
  MOAT_ASSERT(valid(), "TakeSocketForSending on an empty TransportHandle");
  if (has_handoff_state()) {
    return Error(ErrorCode::kFailedPrecondition,
                 "transport handle carries local state (queued messages, unacknowledged "
                 "descriptors or a pending disconnect) that cannot cross a process boundary");
  }
  state_.reset();
  return std::move(socket_);
}

Result<std::unique_ptr<Transport>> TransportHandle::CreateTransport(TransportOptions options) && {
  MOAT_ASSERT(valid(), "CreateTransport on an empty TransportHandle");
  const int fd = socket_.get();
  // The descriptor may have come from a peer: make sure it is what it claims.
  struct stat st {};
  if (::fstat(fd, &st) != 0) return IoError("fstat", errno);
  // Attack: a peer hands us a pipe or file as a "transport" to confuse the IO loop.
  MOAT_REQUIRE(S_ISSOCK(st.st_mode), ErrorCode::kInvalidArgument,
               "transport descriptor is not a socket");
  int domain = 0, type = 0;
  socklen_t len = sizeof(domain);
  if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) {
    return IoError("getsockopt(SO_DOMAIN)", errno);
  }
  len = sizeof(type);
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
    return IoError("getsockopt(SO_TYPE)", errno);
  }
  // Attack: a datagram or non-Unix socket, where framing and SCM_RIGHTS differ.
  MOAT_REQUIRE(domain == AF_UNIX && type == SOCK_STREAM, ErrorCode::kInvalidArgument,
               "transport socket must be AF_UNIX/SOCK_STREAM, got domain ", domain, " type ",
               type);
  int listening = 0;
  len = sizeof(listening);
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0) {
    return IoError("getsockopt(SO_ACCEPTCONN)", errno);
  }
  // Attack: a listening socket as a "transport": it reads as EOF-less
  // readiness forever (each peer connecting makes it readable) and never carries a frame.
  MOAT_REQUIRE(listening == 0, ErrorCode::kInvalidArgument,
               "transport socket is a listening socket, not a connection");
  sockaddr_un peer{};
  socklen_t peer_len = sizeof(peer);
  // Attack: an unconnected socket as a "transport": no peer will ever be
  // there, so it would look alive (no EOF) while carrying nothing.
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) {
    MOAT_REQUIRE(errno != ENOTCONN, ErrorCode::kInvalidArgument,
                 "transport socket is not connected");
    return IoError("getpeername", errno);
  }
  // Blocking mode, so a Receive() waiter can sleep inside recvmsg() itself
  // (one syscall instead of poll + recvmsg). Every other socket operation
  // passes MSG_DONTWAIT and never depends on this flag: it belongs to the open
  // file description, which whoever handed us the socket may share and flip.
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
    return IoError("fcntl(~O_NONBLOCK)", errno);
  }
  if (::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) return IoError("fcntl(FD_CLOEXEC)", errno);

  std::unique_ptr<Transport> transport(new Transport(std::move(socket_), std::move(options)));
  MOAT_TRY(transport->Init(std::move(state_)));
  return transport;
}

// ------------------------------------------------------------- transport

namespace {
std::shared_ptr<IoLoop>& DefaultIoLoopForTesting() {
  static auto* loop = new std::shared_ptr<IoLoop>();  // never destroyed
  return *loop;
}
}  // namespace

void Transport::SetDefaultIoLoopForTesting(std::shared_ptr<IoLoop> loop) {
  DefaultIoLoopForTesting() = std::move(loop);
}

Result<TransportPair> Transport::CreatePaired(TransportOptions options) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return IoError("socketpair", errno);
  }
  UniqueFd local(sv[0]);
  UniqueFd remote(sv[1]);
  MOAT_ASSIGN_OR_RETURN(std::unique_ptr<Transport> transport,
                        TransportHandle(std::move(local)).CreateTransport(std::move(options)));
  return TransportPair{std::move(transport), TransportHandle(std::move(remote))};
}

Transport::Transport(UniqueFd socket, TransportOptions options)
    : limits_(options.limits),
      on_message_(std::move(options.on_message)),
      on_disconnect_(std::move(options.on_disconnect)),
      on_send_space_(std::move(options.on_send_space)),
      send_high_water_bytes_(std::min(options.send_high_water_bytes, limits_.max_unprocessed_bytes)),
      send_stall_timeout_(options.send_stall_timeout),
      socket_(std::move(socket)),
      io_loop_(options.io_loop ? std::move(options.io_loop) : DefaultIoLoopForTesting()),
      reassembler_(std::make_unique<StreamReassembler>(limits_, CloseMode::kDeferred)),
      acks_(std::max<uint32_t>(limits_.max_unprocessed_fds, 1), CloseMode::kDeferred) {}

Status Transport::Init(std::unique_ptr<detail::HandoffState> state) {
  wake_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_.valid()) return IoError("eventfd", errno);
  if (!io_loop_) {
    epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_.valid()) return IoError("epoll_create1", errno);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = wake_.get();
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev) != 0) {
      return IoError("epoll_ctl", errno);
    }
  }
  size_t restored_bytes = 0;
  size_t restored_capacity = 0;
  if (state) {
    MutexLock read_lock(&read_mu_);
    if (state->reassembler) reassembler_ = std::move(state->reassembler);
    restored_bytes = reassembler_->unprocessed_bytes();
    restored_capacity = reassembler_->buffer_capacity();
  }
  {
    MutexLock lock(&mu_);
    reassembler_bytes_ = restored_bytes;
    reassembler_capacity_ = restored_capacity;
    // Whole frames may wait in the handed-over buffer (held back for want of
    // room): the IO thread drains them without waiting for new input.
    drain_requested_ = restored_bytes > 0;
    if (state) {
      received_ = std::move(state->received);
      for (const Message& m : received_) {
        received_bytes_ += AccountedSize(m);
        received_fds_ += m.fds.size();
      }
      send_queue_ = std::move(state->unsent);
      for (const auto& f : send_queue_) send_queue_bytes_ += f.size() - f.sent;
      if (state->acks) acks_ = std::move(*state->acks);
      if (state->disconnect) disconnect_ = std::move(state->disconnect);
    }
    if (!send_queue_.empty()) FlushLocked();
    UpdateInterestLocked();
  }
  if (io_loop_) {
    // Only now, with the state above in place, can a turn run (the private
    // thread likewise starts here); until then UpdateInterestLocked left the
    // socket out of the loop's epoll set.
    MOAT_ASSIGN_OR_RETURN(IoLoop::Token token, io_loop_->Register(this, wake_.get()));
    {
      MutexLock lock(&mu_);
      loop_token_ = token;
      UpdateInterestLocked();
    }
    // The first turn: handed-over messages, a handed-over disconnect.
    WakeIoThread();
  } else {
    io_thread_ = std::thread([this] { IoThreadMain(); });
  }
  return OkStatus();
}

void Transport::StopIo() {
  if (io_thread_.joinable()) {
    {
      MutexLock lock(&mu_);
      stopping_ = true;
    }
    WakeIoThread();
    io_thread_.join();
    return;
  }
  IoLoop::Token token;
  {
    MutexLock lock(&mu_);
    token = loop_token_;
    if (token == 0) return;
    stopping_ = true;
    UpdateInterestLocked();  // disarms the socket: no more events for the loop
  }
  // Returns once no turn of ours runs or will run (io_loop.h).
  io_loop_->Unregister(token);
  MutexLock lock(&mu_);
  // Our socket leaves the shared epoll set explicitly: closing it would not
  // remove it while another process shares its open file description.
  if (in_epoll_) ::epoll_ctl(io_loop_->epoll_fd(), EPOLL_CTL_DEL, socket_.get(), nullptr);
  in_epoll_ = false;
  epoll_events_ = 0;
  loop_token_ = 0;
}

Transport::~Transport() {
  MOAT_ASSERT(!OnIoThread(), "a Transport destroyed from its own IO thread");
  StopIo();
  // Whatever we still hold for the peer, its descriptors included, goes to
  // the closer thread: a peer's descriptor must not make the owner's
  // destructor wait (TRP-12). The reassembler and fd-ack state do the same.
  MutexLock lock(&mu_);
  for (Message& m : received_) DropFds(m.fds);
  for (detail::OutgoingFrame& f : send_queue_) DropFds(f.fds);
}

bool Transport::OnIoThread() const { return t_io_thread_owner == this; }
bool Transport::OnAnyIoThread() { return t_io_thread_owner != nullptr; }

void Transport::WakeIoThread() {
  const uint64_t one = 1;
  // A full eventfd counter still wakes the thread, so EAGAIN is harmless.
  [[maybe_unused]] ssize_t n = ::write(wake_.get(), &one, sizeof(one));
}

bool Transport::ReadAllowedLocked() const {
  if (disconnect_ || stopping_) return false;
  // Backpressure (queue mode): queued messages and the reassembly buffer's
  // allocation share one max_unprocessed_bytes budget (TRP-15); when the
  // reader found it spent (no room to read, or a whole frame it could not
  // queue) we stop reading until the owner takes a message, and the peer's
  // writes block. Honest senders slow down; nothing here grows without
  // bound. With an empty queue the reassembler enforces the budget alone (a
  // frame that cannot fit is hostile).
  return on_message_ || received_.empty() || !receive_blocked_;
}

void Transport::UpdateInterestLocked() {
  uint32_t want = 0;
  if (!disconnect_ && !stopping_ && socket_.valid()) {
    if (!waiter_reading_ && !input_parked_ && ReadAllowedLocked()) want |= EPOLLIN | EPOLLRDHUP;
    if (want_write_ && !writer_busy_) want |= EPOLLOUT;
  }
  if (want == epoll_events_ && (in_epoll_ || want == 0)) return;
  // On a shared loop: its epoll set, keyed by our token (none yet during
  // Init, none any more after StopIo: nothing to arm).
  if (io_loop_ && loop_token_ == 0) return;
  epoll_event ev{};
  // Wanting nothing keeps the socket registered but disarmed: EPOLLONESHOT
  // with no events reports a hang-up at most once (the kernel always adds
  // EPOLLHUP/EPOLLERR), so it cannot spin the IO thread, and re-arming is a
  // cheap EPOLL_CTL_MOD rather than a DEL + ADD on every Receive().
  ev.events = want != 0 ? want : EPOLLONESHOT;
  int epoll_fd;
  if (io_loop_) {
    epoll_fd = io_loop_->epoll_fd();
    ev.data.u64 = IoLoop::SocketKey(loop_token_);
  } else {
    epoll_fd = epoll_.get();
    ev.data.fd = socket_.get();
  }
  const int rc =
      ::epoll_ctl(epoll_fd, in_epoll_ ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, socket_.get(), &ev);
  MOAT_ASSERT(rc == 0, "epoll_ctl on the transport socket failed: ", std::strerror(errno));
  in_epoll_ = true;
  epoll_events_ = want;
}

void Transport::DisconnectLocked(Error error) {
  if (disconnect_ || released_) return;
  disconnect_ = std::move(error);
  ::shutdown(socket_.get(), SHUT_RDWR);
  // The peer is gone: nothing queued for it will be sent, and descriptors it
  // never acknowledged are closed now rather than at destruction.
  for (detail::OutgoingFrame& f : send_queue_) DropFds(f.fds);
  send_queue_.clear();
  send_queue_bytes_ = 0;
  want_write_ = false;
  acks_ = FdAckState(acks_.window(), CloseMode::kDeferred);
  UpdateInterestLocked();
  cv_.SignalAll();
  WakeIoThread();  // it reports on_disconnect
}

void Transport::WriteFailedLocked(Error error) {
  if (error.code() != ErrorCode::kPeerClosed) {
    DisconnectLocked(std::move(error));
    return;
  }
  if (disconnect_ || released_ || write_error_) return;
  write_error_ = std::move(error);
  ::shutdown(socket_.get(), SHUT_WR);
  send_queue_.clear();
  send_queue_bytes_ = 0;
  want_write_ = false;
  UpdateInterestLocked();
  cv_.SignalAll();
}

// ------------------------------------------------------------------ send

Status Transport::Send(std::span<const uint8_t> payload, std::vector<UniqueFd> fds) {
  return SendFrame(payload, nullptr, std::move(fds), !OnAnyIoThread());
}

Status Transport::Send(std::vector<uint8_t>&& payload, std::vector<UniqueFd> fds) {
  return SendFrame(payload, &payload, std::move(fds), !OnAnyIoThread());
}

Status Transport::SendWithoutWaiting(std::vector<uint8_t>&& payload, std::vector<UniqueFd> fds) {
  return SendFrame(payload, &payload, std::move(fds), /*may_wait=*/false);
}

bool Transport::WouldWaitToSend() {
  MutexLock lock(&mu_);
  if (send_queue_bytes_ <= send_high_water_bytes_ || disconnect_ || write_error_ || released_) {
    return false;
  }
  send_space_wanted_ = true;
  return true;
}

bool Transport::TakeSendSpaceNoticeLocked() {
  if (!send_space_wanted_ || send_queue_bytes_ > send_high_water_bytes_) return false;
  send_space_wanted_ = false;
  return true;
}

void Transport::WaitForSendSpaceLocked() {
  uint64_t seen = queue_bytes_written_;
  auto deadline = std::chrono::steady_clock::now() + send_stall_timeout_;
  while (send_queue_bytes_ > send_high_water_bytes_ && !disconnect_ && !write_error_ &&
         !stopping_ && !released_) {
    const auto now = std::chrono::steady_clock::now();
    if (queue_bytes_written_ != seen) {
      seen = queue_bytes_written_;
      deadline = now + send_stall_timeout_;
    } else if (now >= deadline) {
      // A peer that is stopped, hung or hostile must not hold this writer
      // (and every writer behind it) forever: the connection fails.
      DisconnectLocked(Error(
          ErrorCode::kDeadlineExceeded,
          ::moat::internal::Concat("the peer took no byte from its socket in ",
                                   send_stall_timeout_.count(), " ms with ", send_queue_bytes_,
                                   " bytes queued (send high-water mark ",
                                   send_high_water_bytes_, ")")));
      return;
    }
    cv_.WaitFor(&mu_, deadline - now);
  }
}

Status Transport::SendWithoutWaiting(std::span<const uint8_t> payload, std::vector<UniqueFd> fds) {
  return SendFrame(payload, nullptr, std::move(fds), /*may_wait=*/false);
}

Status Transport::SendFrame(std::span<const uint8_t> payload, std::vector<uint8_t>* owned,
                            std::vector<UniqueFd> fds, bool may_wait) {
  // Sending-side misuse is a programmer error: we never send what the peer must reject.
  MOAT_ASSERT(payload.size() <= limits_.max_message_payload_size, "sending payload of ",
              payload.size(), " bytes exceeds MAX_MESSAGE_PAYLOAD_SIZE ",
              limits_.max_message_payload_size);
  MOAT_ASSERT(fds.size() <= limits_.max_message_fd_count, "sending ", fds.size(),
              " descriptors exceeds MAX_MESSAGE_FD_COUNT ", limits_.max_message_fd_count);
  MOAT_ASSERT(fds.size() <= limits_.max_unprocessed_fds, "sending ", fds.size(),
              " descriptors exceeds the fd-ack window MAX_UNPROCESSED_FDS ",
              limits_.max_unprocessed_fds);
  for (const UniqueFd& fd : fds) MOAT_ASSERT(fd.valid(), "sending an invalid descriptor");

  MutexLock lock(&mu_);
  if (released_) return Error(ErrorCode::kClosed, "transport was released for transfer");
  if (disconnect_ || write_error_) {
    return Error(ErrorCode::kPeerClosed,
                 ::moat::internal::Concat("send on a disconnected transport: ",
                                          (disconnect_ ? disconnect_ : write_error_)->ToString()));
  }
  const size_t frame_size = kFrameHeaderSize + payload.size();
  if (!may_wait && send_queue_bytes_ + frame_size > limits_.max_unprocessed_bytes) {
    // The IO thread cannot wait for itself to flush, and a relay must not wait
    // for a peer that is not its own: refuse instead of growing.
    return Error(ErrorCode::kResourceExhausted,
                 ::moat::internal::Concat("send queue of ", send_queue_bytes_,
                                  " bytes is full (MAX_UNPROCESSED_BYTES ",
                                  limits_.max_unprocessed_bytes, "); the peer is not reading"));
  }

  detail::OutgoingFrame frame;
  frame.header = FrameHeader{.type = FrameType::kMessage,
                             .payload_size = static_cast<uint32_t>(payload.size()),
                             .fd_count = static_cast<uint32_t>(fds.size())};
  if (send_queue_.empty() && !writer_busy_ && acks_.CanSend(fds.size())) {
    // Fast path (R19): write from the caller's thread, header and payload as
    // one iovec, no copy, piggybacking our pending acknowledgements.
    frame.header.ack_count = acks_.TakePendingAcks();
    frame.wire = EncodeFrameHeader(frame.header, limits_);
    size_t sent = 0;
    while (sent < frame_size) {
      Result<size_t> n = WriteSome(socket_.get(), frame.wire, payload, sent, fds);
      if (!n.ok()) {
        Error error = n.error();
        WriteFailedLocked(std::move(n).error());
        return error;
      }
      if (*n == 0) break;  // EAGAIN
      if (sent == 0 && !fds.empty()) acks_.OnSent(std::move(fds));
      fds.clear();
      sent += *n;
    }
    if (sent == frame_size) return OkStatus();
    if (owned == nullptr && may_wait) {
      // The socket is full and the bytes are borrowed. Finish this frame
      // from the caller's buffer (no copy), waiting for POLLOUT with the lock
      // released; other senders queue behind it meanwhile. It ends when the
      // peer reads or is gone (shutdown wakes the poll).
      writer_busy_ = true;
      // The peer may itself be blocked writing to us: someone must read.
      UnparkInputLocked();
      UpdateInterestLocked();
      Status status = OkStatus();
      while (sent < frame_size) {
        mu_.Unlock();
        pollfd pfd{socket_.get(), POLLOUT, 0};
        int ready;
        while ((ready = ::poll(&pfd, 1, static_cast<int>(send_stall_timeout_.count()))) < 0 &&
               errno == EINTR) {
        }
        mu_.Lock();
        if (ready == 0 && !disconnect_ && !released_ && !write_error_) {
          // As WaitForSendSpaceLocked: a peer that takes nothing fails the connection.
          DisconnectLocked(Error(ErrorCode::kDeadlineExceeded,
                                 ::moat::internal::Concat("the peer took no byte from its socket in ",
                                                          send_stall_timeout_.count(),
                                                          " ms in the middle of a ", frame_size,
                                                          "-byte frame")));
        }
        if (disconnect_ || released_ || write_error_) {
          status = Error(ErrorCode::kPeerClosed,
                         ::moat::internal::Concat("send on a disconnected transport: ",
                                                  disconnect_ ? disconnect_->ToString()
                                                              : std::string("released")));
          break;
        }
        Result<size_t> n = WriteSome(socket_.get(), frame.wire, payload, sent, fds);
        if (!n.ok()) {
          status = n.error();
          WriteFailedLocked(std::move(n).error());
          break;
        }
        if (sent == 0 && *n > 0 && !fds.empty()) acks_.OnSent(std::move(fds));
        if (*n > 0) fds.clear();
        sent += *n;
      }
      writer_busy_ = false;
      if (!send_queue_.empty()) FlushLocked();  // frames queued behind us
      UpdateInterestLocked();
      cv_.SignalAll();
      return status;
    }
    frame.sent = sent;
    want_write_ = true;
  }
  // Slow path: queue (taking ownership of the payload) and let the IO thread
  // flush on EPOLLOUT, or the fd-ack window reopen on the peer's acks.
  if (owned != nullptr) {
    frame.payload = std::move(*owned);
  } else {
    frame.payload.assign(payload.begin(), payload.end());
  }
  frame.fds = std::move(fds);
  // Queued frames wait for the peer to read or to acknowledge descriptors:
  // its acks and its own writes must be read promptly, not at the next tick.
  UnparkInputLocked();
  const bool socket_full = want_write_;
  send_queue_bytes_ += frame.size() - frame.sent;
  send_queue_.push_back(std::move(frame));
  if (socket_full) {
    UpdateInterestLocked();  // the IO thread writes on EPOLLOUT
  } else {
    FlushLocked();
  }
  // Bound our own memory against a peer that stops reading: a thread that
  // may wait waits (up to send_stall_timeout_ without progress) until the
  // queue is back at the high-water mark or the peer is gone.
  if (may_wait) WaitForSendSpaceLocked();
  above_high_water_.store(send_queue_bytes_ > send_high_water_bytes_, std::memory_order_relaxed);
  if (disconnect_ && !send_queue_.empty()) {
    return Error(ErrorCode::kPeerClosed,
                 ::moat::internal::Concat("send on a disconnected transport: ", disconnect_->ToString()));
  }
  return OkStatus();
}

void Transport::FlushLocked() {
  // A sender is finishing a partial frame from its own buffer: nothing may be
  // written before it; it flushes the queue when done.
  if (writer_busy_) return;
  while (!disconnect_ && !released_ && !write_error_) {
    if (send_queue_.empty()) {
      if (acks_.pending_acks() == 0) break;
      detail::OutgoingFrame ack;
      ack.header = FrameHeader{.type = FrameType::kFdAck};
      send_queue_bytes_ += ack.size();
      send_queue_.push_back(std::move(ack));
    }
    detail::OutgoingFrame& frame = send_queue_.front();
    if (frame.sent == 0) {
      if (!acks_.CanSend(frame.fds.size())) {
        // Window full: our descriptors wait for the peer's acks. Our own acks
        // must not wait behind them (both sides could wait forever), so they
        // go out now as a standalone FD_ACK at this frame boundary.
        if (acks_.pending_acks() > 0) {
          detail::OutgoingFrame ack;
          ack.header = FrameHeader{.type = FrameType::kFdAck};
          send_queue_bytes_ += ack.size();
          send_queue_.push_front(std::move(ack));
          continue;
        }
        want_write_ = false;
        break;
      }
      if (acks_.pending_acks() > 0) {
        Checked<uint32_t> total = Checked<uint32_t>(frame.header.ack_count) + acks_.pending_acks();
        if (!total.has_overflow()) {
          frame.header.ack_count = total.value();
          acks_.TakePendingAcks();
        }
      }
      if (frame.header.type == FrameType::kFdAck && frame.header.ack_count == 0) {
        // Its acks were piggybacked elsewhere meanwhile: nothing to send.
        send_queue_bytes_ -= frame.size();
        send_queue_.pop_front();
        continue;
      }
      frame.wire = EncodeFrameHeader(frame.header, limits_);
    }
    // One sendmsg() for the front frame and the frames behind it, up to the
    // first that carries descriptors: those ride on the first byte of their
    // own sendmsg() (the receiver attributes descriptors by the receive that
    // carried them: core/stream_reassembler.h), so such a frame always
    // starts a write. The front frame's descriptors (if
    // none of it is written yet) go with this one.
    iovec iov[2 * kMaxFramesPerWrite];
    size_t iovcnt = 0;
    size_t frames = 1;
    size_t total = frame.size() - frame.sent;
    AppendFrameIov(frame.wire, frame.payload, frame.sent, iov, iovcnt);
    while (frames < send_queue_.size() && frames < kMaxFramesPerWrite) {
      detail::OutgoingFrame& next = send_queue_[frames];
      MOAT_ASSERT(next.sent == 0, "a frame behind the front one was partly written");
      if (!next.fds.empty()) break;
      if (next.header.type == FrameType::kFdAck && next.header.ack_count == 0) break;  // see above
      if (acks_.pending_acks() > 0) {
        Checked<uint32_t> acks = Checked<uint32_t>(next.header.ack_count) + acks_.pending_acks();
        if (!acks.has_overflow()) {
          next.header.ack_count = acks.value();
          acks_.TakePendingAcks();
        }
      }
      // Encoded again if it is not reached this time (with any acks added then).
      next.wire = EncodeFrameHeader(next.header, limits_);
      AppendFrameIov(next.wire, next.payload, 0, iov, iovcnt);
      total += next.size();
      ++frames;
    }
    static const std::vector<UniqueFd> kNoFds;
    Result<size_t> n = SendIov(socket_.get(), iov, iovcnt, frame.sent == 0 ? frame.fds : kNoFds);
    if (!n.ok()) {
      WriteFailedLocked(std::move(n).error());
      return;
    }
    if (*n == 0) {
      want_write_ = true;
      break;
    }
    ++queue_writes_;
    if (frame.sent == 0 && !frame.fds.empty()) acks_.OnSent(std::move(frame.fds));
    frame.fds.clear();
    MOAT_ASSERT(*n <= total, "sendmsg wrote more than it was given");
    send_queue_bytes_ -= *n;
    queue_bytes_written_ += *n;
    for (size_t left = *n; left > 0;) {
      detail::OutgoingFrame& f = send_queue_.front();
      const size_t take = std::min(left, f.size() - f.sent);
      f.sent += take;
      left -= take;
      if (f.sent < f.size()) break;
      send_queue_.pop_front();
    }
    cv_.SignalAll();  // senders waiting for queue space
  }
  if (send_queue_.empty()) want_write_ = false;
  UpdateInterestLocked();
  above_high_water_.store(send_queue_bytes_ > send_high_water_bytes_, std::memory_order_relaxed);
  // The queue is back at the mark: the IO thread (its next turn, which this
  // wake brings about also on a shared loop) reports the space it owes.
  if (send_space_wanted_ && send_queue_bytes_ <= send_high_water_bytes_) WakeIoThread();
}

// --------------------------------------------------------------- receive

Status Transport::ReadOnce(const ReadBudget& budget, bool block, bool* would_block) {
  *would_block = false;
  // A large frame's payload goes straight into its own buffer (the
  // message's payload: no copy), followed by at most the next header.
  StreamReassembler::ReadSpace space = reassembler_->PrepareRead(budget.want, budget.max_capacity);
  if (space.first.empty()) {
    if (budget.max_capacity != SIZE_MAX) {
      // What the queue leaves of the budget is spent: pause until the owner
      // takes a message (unless it already did since `budget` was taken).
      MutexLock lock(&mu_);
      if (taken_ == budget.taken) receive_blocked_ = true;
      *would_block = true;
      return OkStatus();
    }
    const size_t have = reassembler_->unprocessed_bytes();
    // Attack: one never-completing frame (or a stream of partial ones) filling our budget.
    MOAT_REQUIRE(have < limits_.max_unprocessed_bytes, ErrorCode::kLimitExceeded,
                 "unprocessed bytes ", have, " reached MAX_UNPROCESSED_BYTES ",
                 limits_.max_unprocessed_bytes);
    return Error(ErrorCode::kResourceExhausted, "cannot allocate the receive buffer");
  }
  iovec iov[2] = {{space.first.data(), space.first.size()},
                  {space.second.data(), space.second.size()}};
  const size_t space_size = space.first.size() + space.second.size();
  alignas(cmsghdr) char control[kControlSize];
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = space.second.empty() ? 1 : 2;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  while (true) {
    n = ::recvmsg(socket_.get(), &msg, MSG_CMSG_CLOEXEC | (block ? 0 : MSG_DONTWAIT));
    if (n >= 0) break;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      // A blocking receive that would block: someone sharing the open file
      // description set O_NONBLOCK. Waiters poll from now on (no spinning).
      if (block) description_nonblocking_ = true;
      *would_block = true;
      return OkStatus();
    }
    if (errno == ECONNRESET) {
      // Attack: a peer that dies mid-frame without reading what we wrote
      // (easy: we write FD_ACKs unasked) turns its EOF into a reset; a
      // truncated frame must not pass for a clean close (FRM-7).
      const int err = errno;
      MOAT_TRY(DrainFrames(/*within_budget=*/false));  // as at EOF
      Status truncated = reassembler_->Finish();
      if (!truncated.ok()) {
        const Error& e = truncated.error();
        return Error(e.code(), ::moat::internal::Concat(e.reason(), " (recvmsg: ",
                                                        std::strerror(err), ")"));
      }
      return PeerClosedError("recvmsg", err);
    }
    return IoError("recvmsg", errno);
  }
  // Own every received descriptor before looking at anything else, so each
  // error below closes them (R18) - on the closer thread (TRP-12).
  std::vector<UniqueFd> fds;
  struct DropOnExit {
    std::vector<UniqueFd>& fds;
    ~DropOnExit() { DropFds(fds); }
  } drop_on_exit{fds};
  bool unexpected_control = false;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      const uint8_t* data = CMSG_DATA(c);
      for (size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, data + i * sizeof(int), sizeof(int));
        fds.emplace_back(fd);
      }
    } else {
      unexpected_control = true;
    }
  }
  // Attack: descriptors the kernel could not hand us (more than one receive
  // can carry, or this process is out of descriptor numbers: a peer flooding
  // descriptors across connections can cause that). It closed the excess, so
  // the stream's descriptor accounting can no longer be trusted.
  MOAT_REQUIRE((msg.msg_flags & MSG_CTRUNC) == 0, ErrorCode::kProtocolViolation,
               "control data truncated (MSG_CTRUNC): the kernel dropped descriptors (more than SCM_MAX_FD ",
               limits::SCM_MAX_FD, " in one receive, or none left under RLIMIT_NOFILE)");
  // Attack: control messages other than SCM_RIGHTS smuggled into the stream.
  MOAT_REQUIRE(!unexpected_control, ErrorCode::kProtocolViolation,
               "unexpected control message (only SCM_RIGHTS is allowed)");
  if (n == 0) {
    // End of stream: a partial frame or unclaimed descriptors mean the peer
    // died (or lied) mid-frame; otherwise it closed cleanly.
    // Whole frames held back for want of room were accepted: queue them
    // (nothing accepted is lost; the buffer is freed right after).
    MOAT_TRY(DrainFrames(/*within_budget=*/false));
    MOAT_TRY(reassembler_->Finish());
    return Error(ErrorCode::kPeerClosed, "peer closed the connection");
  }
  if (!fds.empty()) {
    // Attack: descriptors piled up in an unfinished frame on top of those
    // queued for an owner that does not read: the budget covers the sum at
    // every receive, not only when a frame completes (TRP-14).
    size_t queued = 0;
    {
      MutexLock lock(&mu_);
      queued = received_fds_;
    }
    const size_t buffered = reassembler_->unprocessed_fds();
    const Checked<size_t> total = Checked<size_t>(queued) + buffered + fds.size();
    MOAT_REQUIRE(!total.has_overflow() && total.value() <= limits_.max_unprocessed_fds,
                 ErrorCode::kLimitExceeded, "unprocessed descriptors ", queued, " queued + ",
                 buffered, " buffered + ", fds.size(), " received exceed MAX_UNPROCESSED_FDS ",
                 limits_.max_unprocessed_fds);
  }
  if (read_allowance_ != SIZE_MAX) {
    read_allowance_ -= std::min(read_allowance_, static_cast<size_t>(n));
  }
  MOAT_TRY(reassembler_->CommitWrite(static_cast<size_t>(n), std::move(fds)));
  // A short read almost always means the socket is drained: skip the extra
  // recvmsg() that would only say EAGAIN (epoll is level-triggered, so
  // anything that did arrive meanwhile is reported again).
  if (static_cast<size_t>(n) < space_size) *would_block = true;
  return DrainFrames();
}

Status Transport::DrainFrames(bool within_budget) {
  const bool queue_mode = !on_message_;
  while (true) {
    std::function<bool(const FrameHeader&)> admit;
    if (queue_mode && within_budget) {
      // TRP-15: a whole frame is queued only if the queue, the copy and the
      // buffer (still allocated) fit the budget together; otherwise it stays
      // in the buffer, reading pauses, and it is queued once the owner has
      // taken messages. An empty queue always takes one (the buffer alone
      // is bounded by the reassembler).
      // A large frame's own buffer becomes the queued message: not counted twice.
      const size_t capacity = reassembler_->buffer_capacity() - reassembler_->direct_capacity();
      admit = [this, capacity](const FrameHeader& h) {
        if (h.type == FrameType::kFdAck) return true;
        MutexLock lock(&mu_);
        if (received_.empty()) return true;
        const Checked<size_t> held =
            Checked<size_t>(received_bytes_) + MessageCharge(h.payload_size, h.fd_count) + capacity;
        if (!held.has_overflow() && held.value() <= limits_.max_unprocessed_bytes) return true;
        receive_blocked_ = true;
        return false;
      };
    }
    Result<std::optional<ReceivedFrame>> next = reassembler_->Next(admit);
    if (!next.ok()) return std::move(next).error();
    if (!next->has_value()) return OkStatus();
    ReceivedFrame& frame = **next;
    Status delivered = DeliverFrame(frame);
    DropFds(frame.fds);  // what a handler left, or a rejected frame's (TRP-12)
    MOAT_TRY(delivered);
    if (queue_mode) {
      // The frame's bytes are now a queued copy: hand back what the buffer
      // no longer needs, so queue + buffer stay within the budget.
      size_t queued;
      {
        MutexLock lock(&mu_);
        queued = received_bytes_;
      }
      reassembler_->ShrinkTo(queued < limits_.max_unprocessed_bytes
                                 ? limits_.max_unprocessed_bytes - queued
                                 : 0);
    }
  }
}

Status Transport::DeliverFrame(ReceivedFrame& frame) {
  {
    MutexLock lock(&mu_);
    if (frame.header.ack_count > 0) {
      Status acked = acks_.OnAckReceived(frame.header.ack_count);
      if (!acked.ok()) return std::move(acked).error().WithField("frame");
      if (!send_queue_.empty()) FlushLocked();  // the window may have reopened
    }
    if (frame.header.type == FrameType::kFdAck) return OkStatus();
    if (!on_message_) {
      Checked<size_t> fds = Checked<size_t>(received_fds_) + frame.fds.size() +
                            reassembler_->unprocessed_fds();
      // Attack: a sender that ignores the fd-ack window, piling descriptors
      // into our receive queue while the owner is not reading.
      MOAT_REQUIRE(!fds.has_overflow() && fds.value() <= limits_.max_unprocessed_fds,
                   ErrorCode::kLimitExceeded, "unprocessed descriptors ", received_fds_, " + ",
                   frame.fds.size(), " + ", reassembler_->unprocessed_fds(),
                   " exceed MAX_UNPROCESSED_FDS ", limits_.max_unprocessed_fds);
      Message message;
      if (!frame.owned.empty()) {
        message.payload = std::move(frame.owned);  // received in place: no copy
      } else {
        message.payload.assign(frame.payload.begin(), frame.payload.end());
      }
      message.fds = std::move(frame.fds);
      received_bytes_ += AccountedSize(message);
      received_fds_ += message.fds.size();
      received_.push_back(std::move(message));
      cv_.SignalAll();
      return OkStatus();
    }
    // The descriptors leave the transport now, so acknowledge them now: a
    // reply sent from inside the handler piggybacks the ack.
    MOAT_TRY(acks_.OnFdsReceived(frame.header.fd_count));
  }
  MessageView view{frame.payload, frame.fds, frame.owned.empty() ? nullptr : &frame.owned};
  on_message_(view);
  return OkStatus();
}

bool Transport::DrainHeldFrames() {
  {
    MutexLock lock(&mu_);
    if (!drain_requested_) return true;
    drain_requested_ = false;
    if (disconnect_ || stopping_) return false;
  }
  Status status = DrainFrames();
  MutexLock lock(&mu_);
  UpdateReassemblerMirrorLocked();
  if (!status.ok()) {
    DisconnectLocked(std::move(status).error());
    ClearReassemblerLocked();
    return false;
  }
  return true;
}

void Transport::UpdateReassemblerMirrorLocked() {
  reassembler_bytes_ = reassembler_->unprocessed_bytes();
  reassembler_capacity_ = reassembler_->buffer_capacity();
}

void Transport::ClearReassemblerLocked() {
  // TRP-13: what the peer left in an unfinished frame (descriptors, buffer)
  // is released at the disconnect, not when the owner destroys the transport.
  reassembler_->Clear();
  UpdateReassemblerMirrorLocked();
  receive_state_released_ = true;
  cv_.SignalAll();  // Receive() may now report the disconnect
}

void Transport::ReadAvailable(bool block_first) {
  // Whole frames held back for want of room go first (no input needed).
  if (!DrainHeldFrames()) return;
  for (int i = 0; i < kMaxReadsPerWake; ++i) {
    // The shared loop's turn budget is spent: the rest waits for our next turn.
    if (read_allowance_ == 0) return;
    ReadBudget budget;
    budget.want = std::min(kReadChunk, read_allowance_);
    {
      MutexLock lock(&mu_);
      if (!ReadAllowedLocked()) return;
      // An inline waiter returns as soon as it has something to deliver.
      if (waiter_reading_ && !received_.empty()) return;
      if (!on_message_ && !received_.empty()) {
        // The buffer's allocation may use what the queue leaves of the budget.
        budget.max_capacity = received_bytes_ < limits_.max_unprocessed_bytes
                                  ? limits_.max_unprocessed_bytes - received_bytes_
                                  : 0;
      }
      budget.taken = taken_;
    }
    bool would_block = false;
    Status status = ReadOnce(budget, block_first && i == 0, &would_block);
    MutexLock lock(&mu_);
    UpdateReassemblerMirrorLocked();
    if (!status.ok()) {
      DisconnectLocked(std::move(status).error());
      ClearReassemblerLocked();
      return;
    }
    if (would_block) return;
  }
}

void Transport::TakeMessageLocked(Message& out) {
  out = std::move(received_.front());
  received_.pop_front();
  received_bytes_ -= AccountedSize(out);
  received_fds_ -= out.fds.size();
  ++taken_;
  if (receive_blocked_) {
    // Room again: whole frames held back in the buffer may be queued now,
    // even if the peer sends nothing more.
    receive_blocked_ = false;
    drain_requested_ = true;
    WakeIoThread();
  }
  if (!out.fds.empty()) {
    Status counted = acks_.OnFdsReceived(static_cast<uint32_t>(out.fds.size()));
    if (!counted.ok()) DisconnectLocked(std::move(counted).error());
    // Ack promptly once half the window is owed; smaller debts ride on our
    // next frame or go out before the owner next blocks in Receive().
    if (acks_.pending_acks() >= acks_.window() / 2) FlushLocked();
  }
  UpdateInterestLocked();  // reading may resume after backpressure
}

Result<Message> Transport::Receive(std::optional<std::chrono::nanoseconds> timeout) {
  MOAT_ASSERT(!on_message_, "Receive() on a transport with an on_message handler");
  MOAT_ASSERT(!OnIoThread(), "Receive() on the transport's IO thread");
  using Clock = std::chrono::steady_clock;
  const std::optional<Clock::time_point> deadline =
      timeout ? std::optional(Clock::now() + *timeout) : std::nullopt;
  while (true) {
    {
      MutexLock lock(&mu_);
      while (true) {
        if (!received_.empty()) {
          Message message;
          TakeMessageLocked(message);
          return message;
        }
        // Whole frames held back in the buffer are queued before the
        // disconnect is reported (ReleaseReceiveStateAfterDisconnect).
        if (disconnect_ && (receive_state_released_ || stopping_)) return *disconnect_;
        if (released_ || stopping_) {
          return Error(ErrorCode::kClosed, "transport was released for transfer");
        }
        // Acks not yet piggybacked go out before we block: the peer may be
        // waiting for its window to reopen.
        if (acks_.pending_acks() > 0) FlushLocked();
        const Clock::time_point now = deadline ? Clock::now() : Clock::time_point();
        if (deadline && now >= *deadline) {
          return Error(ErrorCode::kShouldWait, "no message before the timeout");
        }
        if (!reader_busy_ && ReadAllowedLocked()) {
          // Become the reader: the IO thread stops watching for input and
          // this thread reads the socket itself (no thread hop).
          reader_busy_ = true;
          waiter_reading_ = true;
          ++receive_turns_;
          UpdateInterestLocked();
          break;
        }
        if (deadline) {
          cv_.WaitFor(&mu_, *deadline - now);
        } else {
          cv_.Wait(&mu_);
        }
      }
    }
    {
      MutexLock read_lock(&read_mu_);
      WaitAndRead(deadline);
    }
    MutexLock lock(&mu_);
    reader_busy_ = false;
    waiter_reading_ = false;
    ParkInputLocked();
    UpdateInterestLocked();
    cv_.SignalAll();
  }
}

void Transport::ParkInputLocked() {
  // Queued frames wait for the peer's acks or reads: keep watching.
  if (disconnect_ || stopping_ || !send_queue_.empty() || writer_busy_) return;
  input_parked_ = true;
  if (!io_ticking_) {
    // The IO thread sleeps without a timeout: have it start the park timer
    // (once per burst of Receive() calls, not per message).
    io_ticking_ = true;
    WakeIoThread();
  }
}

void Transport::UnparkInputLocked() {
  if (!input_parked_) return;
  input_parked_ = false;
  UpdateInterestLocked();
}

int Transport::ParkTimerLocked(std::optional<std::chrono::steady_clock::time_point>& next_tick,
                               uint64_t& turns_seen) {
  using Clock = std::chrono::steady_clock;
  if (!io_ticking_) {
    next_tick.reset();
    return -1;
  }
  const Clock::time_point now = Clock::now();
  if (!next_tick) {
    next_tick = now + kParkTick;
    turns_seen = receive_turns_;
  } else if (now >= *next_tick) {
    if (receive_turns_ == turns_seen) {
      // No new Receive() turn for a whole tick: the caller is busy elsewhere
      // (or in one long wait). Watch the socket again and stop ticking; the
      // next park restarts the timer.
      io_ticking_ = false;
      next_tick.reset();
      UnparkInputLocked();
      return -1;
    }
    turns_seen = receive_turns_;
    next_tick = now + kParkTick;
  }
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(*next_tick - now);
  return static_cast<int>(std::max<int64_t>(left.count(), 0));
}

void Transport::WaitAndRead(std::optional<std::chrono::steady_clock::time_point> deadline) {
  // Held-back frames need no input: never sleep while they could be queued.
  if (!DrainHeldFrames()) return;
  {
    MutexLock lock(&mu_);
    if (!received_.empty() || !ReadAllowedLocked()) return;
  }
  if (!deadline && !description_nonblocking_) {
    // Sleep in recvmsg() itself: the reply wakes this thread directly, one
    // syscall. A local shutdown (disconnect from another thread) wakes it too.
    ReadAvailable(/*block_first=*/true);
    return;
  }
  pollfd pfd{socket_.get(), POLLIN, 0};
  timespec ts{};
  timespec* tsp = nullptr;
  if (deadline) {
    const auto left =
        std::max(std::chrono::steady_clock::duration::zero(), *deadline - std::chrono::steady_clock::now());
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    tsp = &ts;
  }
  // EINTR or timeout: Receive() re-checks the deadline.
  if (::ppoll(&pfd, 1, tsp, nullptr) > 0) ReadAvailable(/*block_first=*/false);
}

// -------------------------------------------------------------- IO thread

void Transport::IoThreadMain() {
  while (!IoTurn(/*block=*/true, /*read_budget=*/SIZE_MAX, /*given=*/nullptr).stopped) {
  }
}

void Transport::DeliverHandedOverMessages() {
  while (true) {
    Message message;
    {
      MutexLock lock(&mu_);
      if (received_.empty() || stopping_) break;
      TakeMessageLocked(message);
    }
    MessageView view{message.payload, message.fds, &message.payload};
    on_message_(view);
    DropFds(message.fds);
  }
}

Transport::IoTurnResult Transport::IoTurn(bool block, size_t read_budget,
                                          const IoLoop::Events* given) {
  IoThreadScope scope(this);
  IoTurnResult result;
  if (given != nullptr && given->woken) {
    uint64_t value;
    [[maybe_unused]] ssize_t r = ::read(wake_.get(), &value, sizeof(value));
  }
  if (!io_.started) {
    io_.started = true;
    if (on_message_) DeliverHandedOverMessages();
  }
  std::optional<Error> report;
  int timeout_ms;
  bool send_space = false;
  {
    MutexLock lock(&mu_);
    if (stopping_) {
      result.stopped = true;
      return result;
    }
    if (disconnect_ && !reported_) {
      reported_ = true;
      report = *disconnect_;
    }
    send_space = !report && TakeSendSpaceNoticeLocked();
    timeout_ms = ParkTimerLocked(io_.next_tick, io_.turns_seen);
  }
  // Writers that saw a full queue (WouldWaitToSend) hear it has room.
  if (send_space && on_send_space_) on_send_space_();
  result.deadline = io_.next_tick;
  if (report) {
    ReleaseReceiveStateAfterDisconnect();
    if (on_disconnect_) on_disconnect_(*report);
    // Private thread: the next turn re-evaluates at once (the wake that
    // announced the disconnect is still pending). Shared loop: this turn
    // goes on with the events the loop saw.
    if (given == nullptr) return result;
  }
  bool readable = false;
  bool writable = false;
  if (given != nullptr) {
    readable = given->readable;
    writable = given->writable;
  } else {
    epoll_event events[4];
    const int n = ::epoll_wait(epoll_.get(), events, 4, block ? timeout_ms : 0);
    if (n < 0) {
      MOAT_ASSERT(errno == EINTR, "epoll_wait failed: ", std::strerror(errno));
      return result;
    }
    for (int i = 0; i < n; ++i) {
      if (events[i].data.fd == wake_.get()) {
        uint64_t value;
        [[maybe_unused]] ssize_t r = ::read(wake_.get(), &value, sizeof(value));
        continue;
      }
      const uint32_t e = events[i].events;
      if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readable = true;
      if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) writable = true;
    }
  }
  bool read = false;
  {
    MutexLock lock(&mu_);
    if (stopping_) {
      result.stopped = true;
      return result;
    }
    if (writable && want_write_) FlushLocked();
    if ((readable || drain_requested_) && !reader_busy_ && ReadAllowedLocked()) {
      reader_busy_ = true;
      read = true;
    }
  }
  if (!read) return result;
  {
    MutexLock read_lock(&read_mu_);
    read_allowance_ = read_budget;
    ReadAvailable(/*block_first=*/false);
    // Input left unread stays ready (level-triggered): the loop comes back
    // to it after the other transports' turns.
    result.budget_exhausted = read_allowance_ == 0;
    read_allowance_ = SIZE_MAX;
  }
  MutexLock lock(&mu_);
  reader_busy_ = false;
  // Handler mode: descriptors were acknowledged at delivery; what no reply
  // piggybacked goes out now.
  if (acks_.pending_acks() > 0 && on_message_) FlushLocked();
  UpdateInterestLocked();
  cv_.SignalAll();
  return result;
}

void Transport::ReleaseReceiveStateAfterDisconnect() {
  // However the disconnect came about (a write error, a violation read by a
  // Receive() waiter), nothing of the peer's unfinished frame is kept.
  MutexLock read_lock(&read_mu_);
  // Whole frames held back for want of room were accepted: queue them before
  // the buffer goes (queue mode only; a handler has seen every whole frame).
  // A write error says nothing about the bytes still unread in the socket,
  // so an unfinished frame is not reported as truncated here (only a read
  // that reached the reset or EOF can tell, Transport::ReadOnce).
  if (!on_message_) (void)DrainFrames(/*within_budget=*/false);
  MutexLock lock(&mu_);
  ClearReassemblerLocked();
}

// ------------------------------------------------------------- handoff etc.

Result<TransportHandle> Transport::ReleaseForTransfer() {
  MOAT_ASSERT(!OnIoThread(), "ReleaseForTransfer() on the transport's IO thread");
  {
    MutexLock lock(&mu_);
    if (released_) return Error(ErrorCode::kClosed, "transport was already released");
    // Marked before the IO thread stops, so nothing about this endpoint's
    // shutdown is reported as a peer EOF (R21).
    released_ = true;
    stopping_ = true;
    UpdateInterestLocked();  // a shared loop stops seeing our socket at once
    cv_.SignalAll();
  }
  StopIo();

  auto state = std::make_unique<detail::HandoffState>();
  state->limits = limits_;
  {
    MutexLock read_lock(&read_mu_);
    state->reassembler = std::move(reassembler_);
    reassembler_ = std::make_unique<StreamReassembler>(limits_, CloseMode::kDeferred);
  }
  {
    MutexLock lock(&mu_);
    state->received = std::move(received_);
    received_.clear();
    received_bytes_ = received_fds_ = reassembler_bytes_ = 0;
    state->unsent = std::move(send_queue_);
    send_queue_.clear();
    send_queue_bytes_ = 0;
    state->acks.emplace(std::move(acks_));
    acks_ = FdAckState(state->acks->window(), CloseMode::kDeferred);
    state->disconnect = std::move(disconnect_);
    disconnect_.reset();
    if (in_epoll_) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, socket_.get(), nullptr);
    in_epoll_ = false;
    epoll_events_ = 0;
  }
  TransportHandle handle;
  handle.socket_ = std::move(socket_);
  handle.state_ = std::move(state);
  return handle;
}

Result<PeerCredentials> Transport::peer_credentials() const {
  MutexLock lock(&mu_);
  if (released_) return Error(ErrorCode::kClosed, "transport was released for transfer");
  return GetPeerCredentials(socket_.get());
}

bool Transport::is_connected() const {
  MutexLock lock(&mu_);
  return !disconnect_ && !released_;
}

std::optional<Error> Transport::disconnect_reason() const {
  MutexLock lock(&mu_);
  return disconnect_;
}

Transport::Stats Transport::stats() const {
  MutexLock lock(&mu_);
  Stats s;
  s.queued_messages = received_.size();
  s.queued_bytes = 0;
  for (const Message& m : received_) s.queued_bytes += m.payload.size();
  s.queued_fds = received_fds_;
  s.send_queue_frames = send_queue_.size();
  s.send_queue_bytes = send_queue_bytes_;
  s.retained_fds = acks_.retained();
  s.buffered_bytes = reassembler_bytes_;
  s.buffer_capacity = reassembler_capacity_;
  s.held_bytes = received_bytes_ + reassembler_capacity_;
  s.reading_paused = !disconnect_ && !on_message_ && !ReadAllowedLocked();
  s.sender_waiting = writer_busy_;
  s.queue_writes = queue_writes_;
  return s;
}

}  // namespace moat::transport
