// Port: the state of one end of a message pipe on this node (internal to
// Node; embedders hold PortRefs).
//
// State transitions:
//   kReceiving  -> kBuffering   the port was attached to a message for another
//                               location; it holds incoming messages and
//                               ring events until the new port confirms
//                               (PortAccepted).
//   kReceiving  -> kProxying    merged (MergeLocalPorts/MergePort): forwards
//                               at once, no confirmation needed.
//   kBuffering  -> kProxying    PortAccepted arrived: forward everything
//                               queued, then ask to be bypassed (ObserveProxy).
//   kReceiving  -> kClosed      ClosePort.
//   kProxying   -> (erased)     every message up to last_sequence_num_to_receive
//                               was forwarded (after ObserveProxyAck or
//                               ObserveClosure).
//   any         -> (erased)     lost connection to the peer's/previous hop's node.
// kUninitialized is the state before a port is registered.
//
//   Port port(Port::State::kReceiving);
//   MutexLock lock(&port.mu);
//   port.peer_node = ...;
#ifndef MOAT_CORE_PORTS_PORT_H_
#define MOAT_CORE_PORTS_PORT_H_

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "core/mutex.h"
#include "core/ports/event.h"
#include "core/ports/message_queue.h"
#include "core/ports/name.h"

namespace moat::ports {

class Port {
 public:
  enum class State { kUninitialized, kReceiving, kBuffering, kProxying, kClosed };

  explicit Port(State initial) : state(initial) {}

  // Lock order: see Node (node.h): port locks before Node::ports_mu_;
  // several port locks only in ascending PortName order.
  Mutex mu;

  State state ABSL_GUARDED_BY(mu);

  // Where this port sends (its peer, or for a proxy the next hop).
  NodeName peer_node ABSL_GUARDED_BY(mu);
  PortName peer_port ABSL_GUARDED_BY(mu);
  // The hop that sends ring events to this port, and its next control
  // sequence number. Anything else is buffered (bounded) or rejected.
  NodeName prev_node ABSL_GUARDED_BY(mu);
  PortName prev_port ABSL_GUARDED_BY(mu);
  uint64_t next_control_sequence_num_to_receive ABSL_GUARDED_BY(mu) = kInitialSequenceNum;
  uint64_t next_control_sequence_num_to_send ABSL_GUARDED_BY(mu) = kInitialSequenceNum;
  struct BufferedEvent {
    NodeName from;
    std::unique_ptr<Event> event;
  };
  std::vector<BufferedEvent> buffered_events ABSL_GUARDED_BY(mu);
  // One thread at a time dispatches this port's ring events, in order.
  bool dispatching ABSL_GUARDED_BY(mu) = false;
  CondVar dispatch_done;

  // User messages.
  uint64_t next_sequence_num_to_send ABSL_GUARDED_BY(mu) = kInitialSequenceNum;
  MessageQueue message_queue ABSL_GUARDED_BY(mu);
  uint64_t last_sequence_num_to_receive ABSL_GUARDED_BY(mu) = kInvalidSequenceNum;
  bool peer_closed ABSL_GUARDED_BY(mu) = false;
  bool peer_lost_unexpectedly ABSL_GUARDED_BY(mu) = false;
  bool remove_proxy_on_last_message ABSL_GUARDED_BY(mu) = false;

  // Read acks: as sender (interval, last acked) and as receiver (requested).
  uint64_t sequence_num_acknowledge_interval ABSL_GUARDED_BY(mu) = 0;
  uint64_t last_sequence_num_acknowledged ABSL_GUARDED_BY(mu) = kInitialSequenceNum - 1;
  uint64_t sequence_num_to_acknowledge ABSL_GUARDED_BY(mu) = 0;

  // Ring events a kBuffering port must send to its (not yet existing) new
  // location, released when proxying begins.
  std::vector<std::unique_ptr<Event>> held_for_peer ABSL_GUARDED_BY(mu);
  // An ObserveProxyAck(retry) to send once this proxy is gone.
  std::unique_ptr<Event> send_on_proxy_removal ABSL_GUARDED_BY(mu);
  NodeName send_on_proxy_removal_node ABSL_GUARDED_BY(mu);

  // Whether this port could still receive another message.
  bool CanAcceptMoreMessages() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Stamps a ring event for the peer with this port's name and next control
  // sequence number.
  void StampForPeer(Event* event, const PortName& self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    event->port_name = peer_port;
    event->from_port = self;
    event->control_sequence_num = next_control_sequence_num_to_send++;
  }
};

}  // namespace moat::ports

#endif  // MOAT_CORE_PORTS_PORT_H_
