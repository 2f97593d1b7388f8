#include "core/system/message_pipe.h"

#include <algorithm>
#include <utility>

#include "core/check.h"
#include "core/checked.h"
#include "core/ports/event.h"
#include "limits/limits.h"

namespace moat::system {
namespace {

uint64_t SaturatingAdd(uint64_t a, uint64_t b) {
  return CheckedAdd<uint64_t>(a, b).value_or(UINT64_MAX);
}

}  // namespace

MessagePipeEndpoint::MessagePipeEndpoint(ports::Node* node, ports::PortRef port)
    : node_(node), port_(std::move(port)) {
  MOAT_ASSERT(node_ != nullptr && port_.is_valid(), "endpoint without a node or port");
}

MessagePipeEndpoint::~MessagePipeEndpoint() {
  bool open;
  {
    MutexLock lock(&mu_);
    open = transit_.usable();
  }
  // Core closes endpoints explicitly; this only keeps an abandoned endpoint
  // from leaving its port open forever.
  if (open) (void)node_->ClosePort(port_);
}

Status MessagePipeEndpoint::Write(std::span<const uint8_t> payload,
                                  std::span<const std::shared_ptr<MessagePipeEndpoint>> handles,
                                  std::vector<UniqueFd> fds) {
  MOAT_ASSERT(handles.size() <= limits::MAX_MESSAGE_HANDLE_COUNT, "writing ", handles.size(),
              " handles exceeds MAX_MESSAGE_HANDLE_COUNT ", limits::MAX_MESSAGE_HANDLE_COUNT);
  MOAT_ASSERT(fds.size() <= limits::MAX_MESSAGE_FD_COUNT, "writing ", fds.size(),
              " descriptors exceeds MAX_MESSAGE_FD_COUNT ", limits::MAX_MESSAGE_FD_COUNT);
  for (const UniqueFd& fd : fds) MOAT_ASSERT(fd.valid(), "writing an invalid descriptor");
  bool unread_quota;
  {
    MutexLock lock(&mu_);
    MOAT_TRY(transit_.CheckUsable("write"));
    if (disconnected_.has_value()) {
      return Error(ErrorCode::kPeerClosed, "write: pipe disconnected: " + *disconnected_);
    }
    unread_quota = quotas_.limit(QuotaType::kUnreadMessageCount) != kNoQuotaLimit;
  }
  for (size_t i = 0; i < handles.size(); ++i) {
    MOAT_ASSERT(handles[i] != nullptr, "null endpoint attached");
    if (handles[i].get() == this) {
      return Error(ErrorCode::kInvalidArgument,
                   "write: an endpoint cannot be attached to its own message")
          .WithField(internal::Concat("handles[", i, "]"));
    }
    for (size_t j = 0; j < i; ++j) {
      if (handles[j] == handles[i]) {
        // As in Mojo: the second use finds the handle already in transit.
        return Error(ErrorCode::kBusy,
                     internal::Concat("write: attached twice (also handles[", j, "])"))
            .WithField(internal::Concat("handles[", i, "]"));
      }
    }
  }
  size_t begun = 0;
  for (; begun < handles.size(); ++begun) {
    Status s = handles[begun]->BeginTransit();
    if (!s.ok()) {
      for (size_t j = 0; j < begun; ++j) handles[j]->CancelTransit();
      return std::move(s).error().WithField(internal::Concat("handles[", begun, "]"));
    }
  }

  auto message = std::make_unique<ports::UserMessage>();
  // Bound for another node: room for the event's headers in front and its
  // tail behind, so the payload is copied here once and not again when the
  // event is serialized (issue 14).
  message->headroom = node_->SendHeadroom(port_);
  message->payload = EncodeSystemMessage(
      payload, handles.size(), message->headroom,
      message->headroom == 0 ? 0 : ports::UserMessageEventTailSize(fds.size(), handles.size()));
  message->ports.reserve(handles.size());
  for (const auto& h : handles) message->ports.push_back(h->port().name());
  message->fds = std::move(fds);

  Status sent = node_->SendUserMessage(port_, std::move(message));
  if (sent.ok() || sent.error().code() == ErrorCode::kPeerClosed) {
    // The attachments left with the message (or were dropped with it because
    // the peer is gone): their handles are gone either way.
    for (const auto& h : handles) h->CompleteTransit();
    if (!sent.ok()) {
      // Make sure nothing stays behind if ports refused before moving them.
      for (const auto& h : handles) (void)node_->ClosePort(h->port());
    }
  } else {
    for (const auto& h : handles) h->CancelTransit();
  }
  // Sending changes only this end's unread count, which only the unread
  // quota turns into a signal (WRITABLE, QUOTA_EXCEEDED); peer closure and
  // arrivals are reported by ports (OnPortStatusChanged).
  if (unread_quota) Publish();
  return sent;
}

Result<bool> MessagePipeEndpoint::WouldWaitToWrite() {
  MutexLock lock(&mu_);
  MOAT_TRY(transit_.CheckUsable("write"));
  if (disconnected_.has_value()) {
    return Error(ErrorCode::kPeerClosed, "write: pipe disconnected: " + *disconnected_);
  }
  ports::PortStatus status;
  if (!node_->GetStatus(port_, &status).ok()) return false;  // closed: Write reports it
  return status.send_would_wait;
}

Result<ReceivedMessage> MessagePipeEndpoint::Read(const MessageSizes* capacity,
                                                  MessageSizes* sizes,
                                                  const PortBoundCheck& is_bound) {
  ReceivedMessage out;
  bool fetch = false;
  {
    MutexLock lock(&mu_);
    MOAT_TRY(transit_.CheckUsable("read"));
    if (disconnected_.has_value()) {
      return Error(ErrorCode::kPeerClosed, "read: pipe disconnected: " + *disconnected_);
    }
    if (reading_) {
      return Error(ErrorCode::kShouldWait, "read: another thread is taking the next message");
    }
    if (pending_.has_value()) {
      MOAT_TRY(TakeLocked(*pending_, capacity, sizes, &out));
      pending_.reset();  // handle descriptors (none for pipes) close here
    } else {
      reading_ = true;
      fetch = true;
    }
  }
  if (fetch) {
    std::unique_ptr<ports::UserMessage> message;
    Status got = node_->GetMessage(port_, &message);
    if (!got.ok() || message == nullptr) {
      {
        MutexLock lock(&mu_);
        reading_ = false;
      }
      if (!got.ok()) {
        if (got.error().code() == ErrorCode::kPeerClosed) {
          return Error(ErrorCode::kPeerClosed, "read: peer closed and no message remains");
        }
        return std::move(got).error();
      }
      // Short enough for std::string's inline buffer: every drain loop ends
      // here, and the answer should not cost an allocation.
      return Error(ErrorCode::kShouldWait, "no message yet");
    }
    Result<Pending> accepted = Accept(std::move(message), is_bound);
    if (!accepted.ok()) {
      {
        MutexLock lock(&mu_);
        reading_ = false;
      }
      Disconnect(accepted.error());
      return std::move(accepted).error();
    }
    std::vector<ports::PortRef> orphans;
    Status taken = OkStatus();
    {
      MutexLock lock(&mu_);
      reading_ = false;
      if (!transit_.usable()) {
        orphans = std::move(accepted->ports);  // closed while we were fetching
      } else {
        // Usually delivered at once, under the lock we hold anyway; a
        // message too big for the caller's buffers waits, first in line.
        taken = TakeLocked(*accepted, capacity, sizes, &out);
        if (!taken.ok()) pending_ = std::move(accepted).value();
      }
    }
    if (!orphans.empty()) {
      for (const auto& p : orphans) (void)node_->ClosePort(p);
      return Error(ErrorCode::kClosed, "read: handle is closed");
    }
    if (!taken.ok()) return std::move(taken).error();
  }
  Publish();
  return out;
}

Status MessagePipeEndpoint::TakeLocked(Pending& p, const MessageSizes* capacity,
                                       MessageSizes* sizes, ReceivedMessage* out) {
  MessageSizes need;
  need.num_bytes = p.parsed.user_payload.size();
  need.num_handles = p.ports.size();
  need.num_fds = p.message->fds.size() - p.parsed.first_user_fd;
  if (sizes != nullptr) *sizes = need;
  if (capacity != nullptr &&
      (need.num_bytes > capacity->num_bytes || need.num_handles > capacity->num_handles ||
       need.num_fds > capacity->num_fds)) {
    return Error(ErrorCode::kResourceExhausted,
                 internal::Concat("read: message needs ", need.num_bytes, " bytes, ",
                                  need.num_handles, " handles, ", need.num_fds,
                                  " fds; buffers hold ", capacity->num_bytes, ", ",
                                  capacity->num_handles, ", ", capacity->num_fds));
  }
  // The reader gets the buffer the bytes arrived in, no copy: the user bytes
  // end the payload, and what precedes them (the headers they arrived
  // behind, a handle table) is skipped, not moved.
  std::vector<uint8_t>& payload = p.message->payload;
  const size_t table = static_cast<size_t>(p.parsed.user_payload.data() - payload.data());
  MOAT_ASSERT(table + need.num_bytes == payload.size(), "user payload does not end the message");
  p.parsed = ParsedSystemMessage{};  // its spans point into what moves next
  out->payload = PayloadBytes(std::move(payload), table);
  out->ports = std::move(p.ports);
  out->source_node = p.message->source_node;
  std::vector<UniqueFd>& fds = p.message->fds;
  const size_t first_user_fd = fds.size() - need.num_fds;
  if (first_user_fd == 0) {
    out->fds = std::move(fds);
  } else {
    for (size_t i = first_user_fd; i < fds.size(); ++i) out->fds.push_back(std::move(fds[i]));
  }
  return OkStatus();
}

Result<MessagePipeEndpoint::Pending> MessagePipeEndpoint::Accept(
    std::unique_ptr<ports::UserMessage> message, const PortBoundCheck& is_bound) {
  // On rejection, close the ports the message brought (never ones a handle
  // owns: a hostile message must not be able to close our other pipes).
  auto reject = [&](Error error) -> Error {
    std::vector<ports::PortName> unowned;
    for (const auto& name : message->ports) {
      if (!is_bound(name)) unowned.push_back(name);
    }
    ClosePorts(unowned);
    return error.WithField("message");
  };
  Result<ParsedSystemMessage> parsed =
      DecodeSystemMessage(message->bytes(), message->ports, message->fds.size());
  if (!parsed.ok()) return reject(std::move(parsed).error());
  Pending p;
  p.ports.reserve(parsed->handles.size());
  for (size_t i = 0; i < parsed->handles.size(); ++i) {
    Result<ports::PortRef> port = DeserializeEndpoint(parsed->handles[i], *node_, is_bound);
    if (!port.ok()) {
      return reject(std::move(port).error().WithField(internal::Concat("handles[", i, "]")));
    }
    p.ports.push_back(std::move(port).value());
  }
  p.parsed = std::move(parsed).value();
  p.message = std::move(message);
  return p;
}

void MessagePipeEndpoint::ClosePorts(const std::vector<ports::PortName>& names) {
  for (const auto& name : names) {
    ports::PortRef ref;
    if (node_->GetPort(name, &ref).ok()) (void)node_->ClosePort(ref);
  }
}

void MessagePipeEndpoint::Disconnect(const Error& why) {
  {
    MutexLock lock(&mu_);
    if (disconnected_.has_value() || !transit_.usable()) return;
    disconnected_ = why.ToString();
  }
  (void)node_->ClosePort(port_);
  Publish();
}

Status MessagePipeEndpoint::Close() {
  WatcherList::Entries watchers;
  std::optional<Pending> pending;
  {
    MutexLock lock(&mu_);
    MOAT_TRY(transit_.Close());
    watchers = watchers_.TakeAll();
    pending = std::move(pending_);
    pending_.reset();
  }
  (void)node_->ClosePort(port_);  // may already be closed by Disconnect
  if (pending.has_value()) {
    for (const auto& p : pending->ports) (void)node_->ClosePort(p);
  }
  WatcherList::NotifyClosed(watchers);
  return OkStatus();
}

Status MessagePipeEndpoint::BeginTransit() {
  MutexLock lock(&mu_);
  MOAT_REQUIRE(!reading_, ErrorCode::kBusy, "begin transit: a read is in progress");
  MOAT_REQUIRE(!pending_.has_value(), ErrorCode::kFailedPrecondition,
               "begin transit: a partially read message is waiting; read it first");
  return transit_.BeginTransit();
}

void MessagePipeEndpoint::CancelTransit() {
  {
    MutexLock lock(&mu_);
    transit_.CancelTransit();
  }
  Publish();
}

void MessagePipeEndpoint::CompleteTransit() {
  WatcherList::Entries watchers;
  {
    MutexLock lock(&mu_);
    transit_.CompleteTransit();
    watchers = watchers_.TakeAll();
  }
  WatcherList::NotifyClosed(watchers);
}

Status MessagePipeEndpoint::SetQuota(QuotaType type, uint64_t limit) {
  uint64_t interval;
  {
    MutexLock lock(&mu_);
    MOAT_TRY(transit_.CheckUsable("set quota"));
    MOAT_TRY(quotas_.Set(type, limit));
    interval = quotas_.AckRequestInterval();
  }
  Status s = node_->SetAcknowledgeRequestInterval(port_, interval);
  Publish();
  return s;
}

Result<QuotaState> MessagePipeEndpoint::QueryQuota(QuotaType type) {
  MOAT_ASSIGN_OR_RETURN(QuotaType checked, QuotaSet::ParseType(static_cast<uint32_t>(type)));
  MutexLock lock(&mu_);
  MOAT_TRY(transit_.CheckUsable("query quota"));
  ports::PortStatus status;
  QuotaUsage usage;
  if (node_->GetStatus(port_, &status).ok()) usage = UsageLocked(status);
  return QuotaState{quotas_.limit(checked), usage.Of(checked)};
}

Result<HandleSignalsState> MessagePipeEndpoint::QuerySignals() {
  MutexLock lock(&mu_);
  MOAT_TRY(transit_.CheckUsable("query signals"));
  return ComputeSignalsLocked();
}

QuotaUsage MessagePipeEndpoint::UsageLocked(const ports::PortStatus& status) {
  QuotaUsage usage;
  usage.receive_queue_length = status.queued_message_count;
  usage.receive_queue_bytes = status.queued_num_bytes;
  usage.unread_message_count = status.unacknowledged_message_count;
  if (pending_.has_value()) {
    usage.receive_queue_length = SaturatingAdd(usage.receive_queue_length, 1);
    usage.receive_queue_bytes =
        SaturatingAdd(usage.receive_queue_bytes, pending_->message->size_in_bytes());
  }
  return usage;
}

HandleSignalsState MessagePipeEndpoint::ComputeSignalsLocked() {
  HandleSignalsState out;
  if (!transit_.usable()) return out;
  if (disconnected_.has_value()) return HandleSignalsState{kSignalPeerClosed, kSignalPeerClosed};
  ports::PortStatus status;
  if (!node_->GetStatus(port_, &status).ok()) {
    // The node closed the port (its peer's node was lost).
    return HandleSignalsState{kSignalPeerClosed, kSignalPeerClosed};
  }
  const bool readable = pending_.has_value() || status.has_messages;
  if (readable) out.satisfied |= kSignalReadable;
  if (readable || status.receiving_messages) out.satisfiable |= kSignalReadable;
  out.satisfiable |= kSignalPeerClosed;
  const QuotaUsage usage = UsageLocked(status);
  const bool any_exceeded = quotas_.AnyExceeded(usage);
  if (status.peer_closed) {
    out.satisfied |= kSignalPeerClosed;
  } else {
    out.satisfiable |= kSignalWritable | kSignalQuotaExceeded;
    // Backpressure: too many unread messages (the embedder's quota) or a
    // write that would wait (the unread-bytes window, an unconfirmed link, a
    // full transport) make this end unwritable.
    if (!quotas_.IsExceeded(QuotaType::kUnreadMessageCount, usage) && !status.send_would_wait) {
      out.satisfied |= kSignalWritable;
    }
  }
  if (any_exceeded) {
    out.satisfied |= kSignalQuotaExceeded;
    out.satisfiable |= kSignalQuotaExceeded;
  }
  return out;
}

void MessagePipeEndpoint::Publish() {
  WatcherList::Entries watchers;
  SignalsSnapshot snapshot;
  {
    MutexLock lock(&mu_);
    if (watchers_.empty()) return;
    snapshot.state = ComputeSignalsLocked();
    // Every watcher has been sent this very state (or the thread that
    // published it is sending it now): telling them again changes nothing.
    // Most publications on a busy pipe are such repeats.
    if (published_ == snapshot.state) return;
    published_ = snapshot.state;
    snapshot.sequence = ++signals_sequence_;
    watchers = watchers_.Snapshot();
  }
  WatcherList::NotifyState(watchers, snapshot);
}

Result<SignalsSnapshot> MessagePipeEndpoint::AddWatcher(std::weak_ptr<Trap> trap,
                                                        uint64_t trigger_id) {
  MutexLock lock(&mu_);
  MOAT_TRY(transit_.CheckUsable("add trigger"));
  watchers_.Add(std::move(trap), trigger_id);
  // The new watcher's state comes from here, not from a publication: the
  // next one must go out even if it repeats the last.
  published_.reset();
  return SignalsSnapshot{ComputeSignalsLocked(), ++signals_sequence_};
}

void MessagePipeEndpoint::RemoveWatcher(const Trap* trap, uint64_t trigger_id) {
  MutexLock lock(&mu_);
  watchers_.Remove(trap, trigger_id);
}

}  // namespace moat::system
