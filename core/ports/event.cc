#include "core/ports/event.h"

#include "core/deferred_close.h"
#include "core/ports/node_delegate.h"

namespace moat::ports {

Event::~Event() = default;
UserMessageEvent::~UserMessageEvent() = default;
// A message's descriptors may have come from a peer, and the last close() of a
// peer's descriptor can block for as long as the peer likes (TRP-12): a
// message destroyed unread (port closed, node lost, decode failed half-way,
// rejected by core/system) must not make the IO thread or the embedder's
// MoatClose wait for it.
UserMessage::~UserMessage() { CloseDeferred(fds); }
NodeDelegate::~NodeDelegate() = default;

std::string_view EventTypeName(EventType type) {
  switch (type) {
    case EventType::kUserMessage: return "UserMessage";
    case EventType::kPortAccepted: return "PortAccepted";
    case EventType::kObserveProxy: return "ObserveProxy";
    case EventType::kObserveProxyAck: return "ObserveProxyAck";
    case EventType::kObserveClosure: return "ObserveClosure";
    case EventType::kMergePort: return "MergePort";
    case EventType::kUserMessageReadAckRequest: return "UserMessageReadAckRequest";
    case EventType::kUserMessageReadAck: return "UserMessageReadAck";
    case EventType::kUpdatePreviousPeer: return "UpdatePreviousPeer";
    case EventType::kRouteLost: return "RouteLost";
  }
  return "Unknown";
}

}  // namespace moat::ports
