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
#include <deque>
#include <memory>
#include <thread>
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
  // The hop whose UpdatePreviousPeer named prev_* (a proxy removing itself):
  // if prev_node is lost, that proxy's node may still reach the previous
  // hop, which sends into the void, and is told (PRT-23, RouteLost).
  NodeName prev_set_by_node ABSL_GUARDED_BY(mu);
  PortName prev_set_by_port ABSL_GUARDED_BY(mu);
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
  // Unread-bytes window (limits::PIPE_UNREAD_BYTES_WINDOW), as sender:
  // payload bytes sent, and the part the reader acknowledged. One read-ack
  // request for it is outstanding at a time: at sequence number
  // `window_ack_seq` (0: none), crediting `window_ack_bytes` when answered.
  uint64_t bytes_sent ABSL_GUARDED_BY(mu) = 0;
  uint64_t bytes_acknowledged ABSL_GUARDED_BY(mu) = 0;
  uint64_t window_ack_seq ABSL_GUARDED_BY(mu) = 0;
  uint64_t window_ack_bytes ABSL_GUARDED_BY(mu) = 0;
  // As receiver: the writer overran limits::MAX_PIPE_UNREAD_BYTES, so the
  // pipe is broken and its later messages are dropped.
  bool unread_cap_exceeded ABSL_GUARDED_BY(mu) = false;
  // GetStatus reported that a write would wait for the transport to the
  // peer's node: Node::OnSendSpace reports this port when it drains.
  bool waits_for_send_space ABSL_GUARDED_BY(mu) = false;
  NodeName send_space_node ABSL_GUARDED_BY(mu);  // whose transport was full

  // Ring events a kBuffering port must send to its (not yet existing) new
  // location, released when proxying begins.
  std::vector<std::unique_ptr<Event>> held_for_peer ABSL_GUARDED_BY(mu);
  // Bypass on the old link (issue 12 item 2). A port that moves
  // (ConvertToProxy) keeps its link to its old peer open until the new port
  // exists (PortAccepted), then sends on it ObserveProxy(self -> new port) and
  // UpdatePreviousPeer(new port), with the two control sequence numbers
  // reserved when it moved. The old peer is where an ObserveProxy travelling
  // the ring from the new port would go next anyway, so the bypass no longer
  // chases an end that keeps moving: when the old peer sends to us (the
  // usual case: it is the other end) it answers at once, and proxies
  // collapse as fast as a bouncing end makes them.
  bool old_link_pending ABSL_GUARDED_BY(mu) = false;
  NodeName old_peer_node ABSL_GUARDED_BY(mu);
  PortName old_peer_port ABSL_GUARDED_BY(mu);
  uint64_t old_link_control_seq ABSL_GUARDED_BY(mu) = 0;
  // Our last user message on the old link (its closure if the new port's
  // node is lost before it confirms).
  uint64_t old_link_last_sequence_num ABSL_GUARDED_BY(mu) = 0;
  // Confirmations still owed for retired links dropped to stay within
  // MAX_PORT_RETIRED_LINKS: such a late PortAccepted is honest, not forged.
  size_t evicted_unconfirmed_links ABSL_GUARDED_BY(mu) = 0;
  // An ObserveProxyAck(retry) to send once this proxy is gone.
  std::unique_ptr<Event> send_on_proxy_removal ABSL_GUARDED_BY(mu);
  NodeName send_on_proxy_removal_node ABSL_GUARDED_BY(mu);

  // Send sequencer (CAPI-6): ring events for other nodes leave in stamp
  // order. They are stamped and appended here under `mu`; the thread holding
  // the send turn (`sending`) forwards them without `mu`. A thread forwards
  // its own events and orphans (events of threads that must not wait, see
  // Node::DrainOutbox) and hands the turn over at another waiting thread's
  // event, so every writer stays subject to its transport's backpressure.
  struct Outgoing {
    NodeName to;
    std::unique_ptr<Event> event;
    std::thread::id owner;
    bool owner_waits;  // false: an orphan, any thread with the turn sends it
  };
  std::deque<Outgoing> outbox ABSL_GUARDED_BY(mu);
  // Events in `outbox` per owning thread (few threads: a linear list).
  std::vector<std::pair<std::thread::id, size_t>> outbox_owners ABSL_GUARDED_BY(mu);
  bool sending ABSL_GUARDED_BY(mu) = false;
  std::thread::id sender ABSL_GUARDED_BY(mu);
  size_t send_waiters ABSL_GUARDED_BY(mu) = 0;
  // Signalled when the send turn is released, when a waiting thread's events
  // have all been sent, and when parked events are released or dropped.
  CondVar send_cv;

  // Link confirmation (PRT-11): a new link to a port on another node (after a
  // move, a merge or a proxy bypass) may reach that port before its previous
  // hop is switched to us, and everything on it is then buffered there,
  // under a cap meant for hostile floods. So we send at most
  // limits::MAX_UNCONFIRMED_LINK_EVENTS events on such a link and park the
  // rest until the peer confirms (a PortAccepted from it, sent when it
  // processes our first event). `parked` holds the current link's events;
  // `retired` the links we moved away from before they were confirmed.
  bool peer_confirmed ABSL_GUARDED_BY(mu) = true;
  std::deque<std::unique_ptr<Event>> parked ABSL_GUARDED_BY(mu);
  struct RetiredLink {
    NodeName node;
    PortName port;
    std::deque<std::unique_ptr<Event>> parked;
  };
  std::deque<RetiredLink> retired ABSL_GUARDED_BY(mu);
  // A closed port stays registered (kClosed) until its parked events are
  // released: they include its last events (e.g. ObserveClosure).
  bool erase_when_unparked ABSL_GUARDED_BY(mu) = false;

  // The proxy this port last bypassed (ObserveProxy): until the new peer
  // confirms the link, that proxy is still on the route, and its RouteLost
  // is honoured (PRT-23).
  NodeName bypassed_node ABSL_GUARDED_BY(mu);
  PortName bypassed_port ABSL_GUARDED_BY(mu);
  // This port passed a RouteLost on (Node::SendRouteLost): at most once.
  bool route_lost_sent ABSL_GUARDED_BY(mu) = false;

  // The one node allowed to merge with this port (Node::OfferForMerge), or
  // invalid: a MergePort from any other node is a protocol violation (MRG-3).
  // Cleared when the merge is accepted (an offer is good for one merge).
  NodeName merge_offered_to ABSL_GUARDED_BY(mu);
  // The node whose descriptor created this port (invalid for ports made
  // here). Its events to ports of this node carry it (Event::origin).
  NodeName origin ABSL_GUARDED_BY(mu);

  // PRT-13: the port was made from a descriptor of another node (origin)
  // naming a peer on a third node, and the node tracks that link until the
  // peer confirms it (Node::vouched_); `vouch_sent`: it sent on that link.
  // A link left before anything was sent on it needs no confirmation:
  // RetireLink clears `vouched` and the node forgets it.
  bool vouched ABSL_GUARDED_BY(mu) = false;
  bool vouch_sent ABSL_GUARDED_BY(mu) = false;

  uint64_t unacknowledged_bytes() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return bytes_sent - bytes_acknowledged;
  }
  bool HasParkedEvents() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  size_t OutboxCount(std::thread::id owner) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  void AddOutboxCount(std::thread::id owner, int delta) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

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
