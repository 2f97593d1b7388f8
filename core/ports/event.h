// Events: the messages nodes exchange to run the ports protocol.
//
// Every event targets one port (`port_name`) on the receiving node. "Ring"
// events travel along the pipe's peer pointers (a port sends them to its
// peer) and carry the sending port (`from_port`) and a per-link
// `control_sequence_num`; the receiver processes them strictly in that order
// and only from its known previous hop (see Port::prev_*). PortAccepted and
// MergePort are not ring events (from_port invalid, control_sequence_num
// kInvalidSequenceNum); nor is RouteLost, which travels backwards (to the
// port's previous hop) and, like PortAccepted, carries from_port unsequenced.
//
//   auto e = std::make_unique<ObserveClosureEvent>(peer, self, seq, last_seq);
//   delegate->ForwardEvent(peer_node, std::move(e));
//
// Byte layouts: docs/wire-format-ports.md (event_codec.h implements them).
#ifndef MOAT_CORE_PORTS_EVENT_H_
#define MOAT_CORE_PORTS_EVENT_H_

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "core/ports/name.h"
#include "core/ports/user_message.h"

namespace moat::ports {

inline constexpr uint64_t kInitialSequenceNum = 1;
inline constexpr uint64_t kInvalidSequenceNum = UINT64_MAX;

// Wire values are fixed (docs/wire-format-ports.md); never renumber.
enum class EventType : uint32_t {
  kUserMessage = 0,
  kPortAccepted = 1,
  kObserveProxy = 2,
  kObserveProxyAck = 3,
  kObserveClosure = 4,
  kMergePort = 5,
  kUserMessageReadAckRequest = 6,
  kUserMessageReadAck = 7,
  kUpdatePreviousPeer = 8,
  kRouteLost = 9,
};
inline constexpr uint32_t kMaxEventType = 9;
std::string_view EventTypeName(EventType type);

// The state of a port that moves to another node (inside a UserMessage or a
// MergePort). The receiving node creates the port from it.
struct PortDescriptor {
  NodeName peer_node;        // where the moved port sends
  PortName peer_port;
  NodeName referring_node;   // the proxy left behind: the new port's previous hop
  PortName referring_port;
  uint64_t next_sequence_num_to_send = kInitialSequenceNum;
  uint64_t next_sequence_num_to_receive = kInitialSequenceNum;
  uint64_t last_sequence_num_to_receive = kInvalidSequenceNum;  // valid iff peer_closed
  bool peer_closed = false;

  friend bool operator==(const PortDescriptor&, const PortDescriptor&) = default;
};

class Event {
 public:
  virtual ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  EventType type() const { return type_; }
  // True for events that travel along peer pointers and are sequenced per link.
  bool is_ring_event() const {
    return type_ != EventType::kPortAccepted && type_ != EventType::kMergePort &&
           type_ != EventType::kRouteLost;
  }

  // In memory only, never serialized: for an event this node sends to one
  // of its own ports, the node whose port descriptor created the sending
  // port (Port::origin), so that what it caused dies with it (PRT-16).
  NodeName origin;
  // In memory only: the sending port's previous hop was still on `origin`
  // (its referring proxy, which has not switched away yet), so the switch
  // this event may wait for at its target can only come from there.
  bool origin_is_prev = false;

  PortName port_name;                              // target port on the receiving node
  PortName from_port;                              // sending port (ring events)
  uint64_t control_sequence_num = kInvalidSequenceNum;  // per (from_port -> port_name) link

 protected:
  Event(EventType type, const PortName& target, const PortName& from, uint64_t control_seq)
      : port_name(target), from_port(from), control_sequence_num(control_seq), type_(type) {}

 private:
  EventType type_;
};

// Wire bytes of a serialized UserMessageEvent (docs/wire-format-ports.md)
// before its payload: type u32, port_name and from_port (2 x 16),
// control_sequence_num u64, sequence_num u64, payload length u32. And after
// it, at most: fd_count u32 + a u32 slot per descriptor, port_count u32 + per
// port its name (16) and descriptor (at most kMaxPortDescriptorWireSize).
// The codec (event_codec.cc) checks these against what it writes.
inline constexpr size_t kUserMessageEventHeadSize = 4 + 2 * 16 + 8 + 8 + 4;
inline constexpr size_t kMaxPortDescriptorWireSize = 4 * 16 + 3 * 8 + 1;
constexpr size_t UserMessageEventTailSize(size_t num_fds, size_t num_ports) {
  return 4 + 4 * num_fds + 4 + num_ports * (16 + kMaxPortDescriptorWireSize);
}

// A user message. `message->ports[i]` is the name the i-th attached port has
// on the receiving node; `port_descriptors[i]` its state.
class UserMessageEvent : public Event {
 public:
  UserMessageEvent(const PortName& target, const PortName& from, uint64_t control_seq,
                   uint64_t sequence_num, std::unique_ptr<UserMessage> message)
      : Event(EventType::kUserMessage, target, from, control_seq),
        sequence_num(sequence_num),
        message(std::move(message)) {}
  ~UserMessageEvent() override;
  uint64_t sequence_num;
  std::unique_ptr<UserMessage> message;  // never null
  std::vector<PortDescriptor> port_descriptors;
};

// Sent by a port created from a descriptor back to the proxy that sent it:
// "I exist; start forwarding".
class PortAcceptedEvent : public Event {
 public:
  // from: the new port (checked against the proxy's peer), not sequenced.
  PortAcceptedEvent(const PortName& target, const PortName& from)
      : Event(EventType::kPortAccepted, target, from, kInvalidSequenceNum) {}
};

// "proxy_port@proxy_node forwards to proxy_target: whoever sends to the proxy
// should send to the target instead". Travels around the ring until it
// reaches the port whose peer is the proxy.
class ObserveProxyEvent : public Event {
 public:
  ObserveProxyEvent(const PortName& target, const PortName& from, uint64_t control_seq,
                    const NodeName& proxy_node, const PortName& proxy_port,
                    const NodeName& proxy_target_node, const PortName& proxy_target_port)
      : Event(EventType::kObserveProxy, target, from, control_seq),
        proxy_node(proxy_node),
        proxy_port(proxy_port),
        proxy_target_node(proxy_target_node),
        proxy_target_port(proxy_target_port) {}
  NodeName proxy_node;
  PortName proxy_port;
  NodeName proxy_target_node;
  PortName proxy_target_port;
  // Receiving ports that forwarded it so far (bounded: MAX_OBSERVE_PROXY_HOPS);
  // proxies forward it without counting.
  uint32_t hops = 0;
};

// Reply to the proxy: the last user message it will receive. An ack with
// last_sequence_num == kInvalidSequenceNum means "retry later".
class ObserveProxyAckEvent : public Event {
 public:
  ObserveProxyAckEvent(const PortName& target, const PortName& from, uint64_t control_seq,
                       uint64_t last_sequence_num)
      : Event(EventType::kObserveProxyAck, target, from, control_seq),
        last_sequence_num(last_sequence_num) {}
  uint64_t last_sequence_num;
};

// The sender closed after sending last_sequence_num.
class ObserveClosureEvent : public Event {
 public:
  ObserveClosureEvent(const PortName& target, const PortName& from, uint64_t control_seq,
                      uint64_t last_sequence_num)
      : Event(EventType::kObserveClosure, target, from, control_seq),
        last_sequence_num(last_sequence_num) {}
  uint64_t last_sequence_num;
};

// "Merge your port with this one": the sender turned its port into a proxy
// whose state is new_port_descriptor, to be recreated here as new_port_name.
class MergePortEvent : public Event {
 public:
  MergePortEvent(const PortName& target, const PortName& new_port_name,
                 const PortDescriptor& new_port_descriptor)
      : Event(EventType::kMergePort, target, kInvalidPortName, kInvalidSequenceNum),
        new_port_name(new_port_name),
        new_port_descriptor(new_port_descriptor) {}
  PortName new_port_name;
  PortDescriptor new_port_descriptor;
};

// "Tell me when you have read message sequence_num_to_acknowledge."
class UserMessageReadAckRequestEvent : public Event {
 public:
  UserMessageReadAckRequestEvent(const PortName& target, const PortName& from,
                                 uint64_t control_seq, uint64_t sequence_num_to_acknowledge)
      : Event(EventType::kUserMessageReadAckRequest, target, from, control_seq),
        sequence_num_to_acknowledge(sequence_num_to_acknowledge) {}
  uint64_t sequence_num_to_acknowledge;
};

// "I have read every message up to sequence_num_acknowledged."
class UserMessageReadAckEvent : public Event {
 public:
  UserMessageReadAckEvent(const PortName& target, const PortName& from, uint64_t control_seq,
                          uint64_t sequence_num_acknowledged)
      : Event(EventType::kUserMessageReadAck, target, from, control_seq),
        sequence_num_acknowledged(sequence_num_acknowledged) {}
  uint64_t sequence_num_acknowledged;
};

// "After this event, your previous hop is new_prev_port@new_prev_node (its
// control sequence starts again at kInitialSequenceNum)." Sent by a port whose
// peer changes, to that peer.
class UpdatePreviousPeerEvent : public Event {
 public:
  UpdatePreviousPeerEvent(const PortName& target, const PortName& from, uint64_t control_seq,
                          const NodeName& new_prev_node, const PortName& new_prev_port)
      : Event(EventType::kUpdatePreviousPeer, target, from, control_seq),
        new_prev_node(new_prev_node),
        new_prev_port(new_prev_port) {}
  NodeName new_prev_node;
  PortName new_prev_port;
};

// Sent backwards, by a port to its previous hop (the port that sends to it):
// "my onward route to the rest of the pipe is gone" (the node it forwarded
// to, or this port's own peer's node, was lost, while the previous hop's node
// may still be connected to both; PRT-23). The receiver closes as if its peer
// had been lost (peer_lost_unexpectedly) and passes it on to its own previous
// hop, so both ends report PEER_CLOSED. Honoured only from the receiving
// port's current peer (from_port at the sending node): nobody else is on its
// route. Not sequenced (control_sequence_num kInvalidSequenceNum).
// far_port@far_node, if valid, is the port the sender forwarded to when that
// port never confirmed (so the receiver may not know it): the receiver tells
// it too (it honours that only if the receiver is its peer).
class RouteLostEvent : public Event {
 public:
  RouteLostEvent(const PortName& target, const PortName& from, const NodeName& far_node = {},
                 const PortName& far_port = {})
      : Event(EventType::kRouteLost, target, from, kInvalidSequenceNum),
        far_node(far_node),
        far_port(far_port) {}
  NodeName far_node;  // both valid or both invalid
  PortName far_port;
};

}  // namespace moat::ports

#endif  // MOAT_CORE_PORTS_EVENT_H_
