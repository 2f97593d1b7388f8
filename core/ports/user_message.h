// UserMessage: what the layer above (core/system) sends through a port.
//
// The ports library never looks inside the payload; it only moves the object
// (in-process) or hands it to the embedder's serializer (across nodes), and it
// moves the attached ports.
//
//   auto msg = std::make_unique<UserMessage>();
//   msg->payload = {1, 2, 3};
//   msg->ports.push_back(handle_port.name());   // moves with the message
//   node.SendUserMessage(port, std::move(msg));
//
// Attached ports: on the sending node `ports` names receiving ports of that
// node (not the sending port, not its local peer). SendUserMessage turns each
// into a proxy and rewrites the entry to the *new* port's name; on the
// receiving node GetMessage returns the message with `ports` naming ports that
// now exist there in the receiving state: the embedder calls Node::GetPort on
// each name to obtain a PortRef (and owns closing it). A message destroyed
// unread on a node whose ports it names does not leak them: the node closes
// them (see Node::GetMessage / ClosePort).
#ifndef MOAT_CORE_PORTS_USER_MESSAGE_H_
#define MOAT_CORE_PORTS_USER_MESSAGE_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "core/ports/name.h"
#include "core/unique_fd.h"

namespace moat::ports {

class UserMessage {
 public:
  UserMessage() = default;
  UserMessage(const UserMessage&) = delete;
  UserMessage& operator=(const UserMessage&) = delete;
  virtual ~UserMessage();

  // The message's bytes are payload[headroom..]; the first `headroom` bytes
  // are unused space in front of them, reserved by a writer whose peer is on
  // another node (Node::SendHeadroom) so that the event carrying the message
  // is serialized around the bytes in place, not copied (issue 14). Code that
  // reads the bytes uses bytes(); 0 unless such a writer set it.
  std::vector<uint8_t> payload;
  size_t headroom = 0;
  std::vector<UniqueFd> fds;
  std::vector<PortName> ports;
  // The node this message arrived from (the authenticated sender of the
  // node-channel message that carried it; set by the embedder's
  // deserializer, NodeController); invalid for a message sent on this node.
  // Not serialized: each receiving node records its own immediate sender.
  // core/system reports bad messages to it (MoatNotifyBadMessage).
  NodeName source_node;

  // Bytes this message accounts for in queue quotas (payload only).
  size_t size_in_bytes() const { return payload.size() - headroom; }

  std::span<const uint8_t> bytes() const {
    return std::span<const uint8_t>(payload).subspan(headroom);
  }
};

}  // namespace moat::ports

#endif  // MOAT_CORE_PORTS_USER_MESSAGE_H_
