#include "core/ports/event.h"

#include "core/ports/node_delegate.h"

namespace moat::ports {

Event::~Event() = default;
UserMessageEvent::~UserMessageEvent() = default;
UserMessage::~UserMessage() = default;
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
