// ports::Node: the transport-agnostic router of one process's message pipes.
//
// A message pipe is two entangled ports. A Node owns the ports of one
// process, delivers user messages exactly once and in order, moves ports that
// are attached to messages to other nodes (leaving a proxy that forwards until
// it is bypassed and removed), propagates peer closure only after every
// earlier message was delivered, fuses pipes (merge), and closes every pipe
// that depended on a node whose connection was lost. It never touches a
// transport: events for other nodes go to NodeDelegate::ForwardEvent, events
// from other nodes come in through AcceptEvent.
//
//   Node node(NodeName::Random(), &delegate);
//   PortRef a, b;
//   MOAT_TRY(node.CreatePortPair(&a, &b));
//   auto m = std::make_unique<UserMessage>();
//   m->payload = {42};
//   MOAT_TRY(node.SendUserMessage(a, std::move(m)));
//   std::unique_ptr<UserMessage> got;
//   MOAT_TRY(node.GetMessage(b, &got));          // got->payload == {42}
//
// Attached ports (UserMessage::ports): on send they must be receiving ports of
// this node other than the sending port and its peer; they move with the
// message and the entries are rewritten to the names the ports get at the
// destination. The receiver's embedder calls GetPort(name) on each entry of a
// message returned by GetMessage to obtain a PortRef, and owns closing it.
// Ports attached to a message that is never delivered (target gone, closed)
// are closed by the node, so their peers observe closure: nothing leaks.
//
// Hostile peers: AcceptEvent validates every event against the target port's
// state. Ring events must come from the port's previous hop, in control
// sequence order (out-of-order ones are buffered, bounded by
// limits::MAX_PORT_BUFFERED_EVENTS); user message sequence numbers must lie in
// a bounded window (limits::MAX_PORT_OUT_OF_ORDER_MESSAGES); the node holds at
// most limits::MAX_PORTS_PER_NODE ports. A violation returns an Error naming
// the rule and the embedder disconnects `from` (then calls
// LostConnectionToNode). Events for ports that no longer exist are dropped
// silently (they are normal in races with closure).
//
// As a sender, the node keeps within those bounds: the ring events of one
// link leave in stamp order whatever threads send them (per-port outbox), and
// a new link to another node carries at most
// limits::MAX_UNCONFIRMED_LINK_EVENTS events until the receiving port has
// confirmed it; the rest are parked (see node.cc and
// NodeDelegate::SendersMayWaitForPeers).
//
// Threading: every method may be called from any thread. Locks: see node.cc.
// A sending thread may wait for another thread's send on the same port to
// finish (its ForwardEvent, possibly blocked on a full transport), except
// inside AcceptEvent/LostConnectionToNode, which never wait. So a transport
// IO thread must reach the Node only through those two (and the callbacks
// they make); calling e.g. SendUserMessage on it directly, for a port other
// threads write to, could wait for a writer that waits for this very thread.
#ifndef MOAT_CORE_PORTS_NODE_H_
#define MOAT_CORE_PORTS_NODE_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <tuple>
#include <memory>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/mutex.h"
#include "core/ports/event.h"
#include "core/ports/name.h"
#include "core/ports/node_delegate.h"
#include "core/ports/port.h"
#include "core/ports/port_ref.h"
#include "core/ports/user_message.h"
#include "limits/limits.h"

namespace moat::ports {

struct PortStatus {
  bool has_messages = false;        // GetMessage would return one now
  bool receiving_messages = false;  // more messages may still arrive
  bool peer_closed = false;
  bool peer_remote = false;         // the peer lives on another node
  size_t queued_message_count = 0;
  size_t queued_num_bytes = 0;
  // Messages this port sent that the peer has not acknowledged reading
  // (only meaningful after SetAcknowledgeRequestInterval).
  size_t unacknowledged_message_count = 0;
  // Payload bytes this port sent that the peer has not acknowledged reading
  // (the unread-bytes window; 0 once the peer closed).
  uint64_t unacknowledged_bytes = 0;
  // A SendUserMessage now would wait (or, without waiting, would overrun a
  // bound the writer keeps): the peer is on another node and its link is
  // unconfirmed past MAX_UNCONFIRMED_LINK_EVENTS, or the unread window is
  // full, or the transport to it is above its high-water mark. The port is
  // reported (PortStatusChanged) when this may have become false.
  bool send_would_wait = false;
};

// Limits a Node applies; the defaults are limits/limits.h.
struct NodeOptions {
  // See limits::PIPE_UNREAD_BYTES_WINDOW and MAX_PIPE_UNREAD_BYTES.
  size_t unread_bytes_window = limits::PIPE_UNREAD_BYTES_WINDOW;
  size_t max_unread_bytes = limits::MAX_PIPE_UNREAD_BYTES;
  // How long a writer waits for a new link's confirmation (PRT-11) before
  // the peer's node is reported unresponsive (NodeDelegate::PeerUnresponsive).
  std::chrono::milliseconds confirm_timeout{limits::PEER_STALL_TIMEOUT_MS};
  // See limits::MAX_PORTS_PER_PEER_NODE (PRT-8).
  size_t max_ports_per_peer_node = limits::MAX_PORTS_PER_PEER_NODE;
};

// While one lives on a thread, ports calls on that thread never wait: not for
// a link confirmation, the unread window or another thread's send turn (the
// events are left for the thread holding the turn). A delegate's
// ForwardEvent must then not wait either (see ThreadMayWait). Non-blocking
// writes run inside one; so do AcceptEvent and LostConnectionToNode.
class ScopedNoWait {
 public:
  ScopedNoWait();
  ~ScopedNoWait();
  ScopedNoWait(const ScopedNoWait&) = delete;
  ScopedNoWait& operator=(const ScopedNoWait&) = delete;
};
// False inside a ScopedNoWait on this thread.
bool ThreadMayWait();

class Node {
 public:
  Node(const NodeName& name, NodeDelegate* delegate, NodeOptions options = {});
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  const NodeName& name() const { return name_; }

  // Two new receiving ports entangled with each other.
  Status CreatePortPair(PortRef* a, PortRef* b) ABSL_LOCKS_EXCLUDED(ports_mu_);

  // kNotFound if no such port lives here.
  Status GetPort(const PortName& name, PortRef* out) ABSL_LOCKS_EXCLUDED(ports_mu_);

  // kNotFound if the port was erased; kFailedPrecondition if it is not receiving.
  Status GetStatus(const PortRef& port, PortStatus* out);

  // Takes ownership of msg (also on error: attached ports then stay usable
  // here unless the error is kPeerClosed after they moved). kPeerClosed if
  // the peer is gone (the message is dropped and its attached ports closed).
  // kInvalidArgument for an invalid attachment (not receiving, the sending
  // port, its peer, duplicates): no state changes.
  Status SendUserMessage(const PortRef& port, std::unique_ptr<UserMessage> msg);

  // The UserMessage::headroom worth reserving for a message sent on `port`:
  // the serialized event's head plus the delegate's EnvelopeHeadroom() if
  // the peer lives on another node, else 0. A hint: if the peer moves before
  // the message leaves, the message is merely copied (remote) or its
  // headroom dropped (local) as it would have been without it.
  size_t SendHeadroom(const PortRef& port);

  // Next in-order message, or nullptr if none is available yet (kOk);
  // kPeerClosed when no more will ever arrive.
  Status GetMessage(const PortRef& port, std::unique_ptr<UserMessage>* msg);

  // Closes a receiving port; queued unread messages are destroyed (and the
  // ports they carry closed). The peer sees peer_closed after it has
  // received every message this port sent.
  Status ClosePort(const PortRef& port);

  // R12: fuses two pipes on this node. a and b must be distinct receiving
  // ports, not each other's peer, that never sent or read a message;
  // otherwise kFailedPrecondition and nothing changes. Afterwards the peers
  // of a and b are one pipe; a and b no longer exist. A message a (or b)
  // still holds that carries (transitively) the port it now goes to, b's
  // peer (or a's), would put that port into its own queue: the port it
  // carries is closed instead of moved (see ForwardQueuedFromProxy).
  Status MergeLocalPorts(const PortRef& a, const PortRef& b);

  // Fuses local port `local` with port `remote` on node `node` (which makes
  // the same checks there). `local` no longer exists afterwards. `node` must
  // have offered `remote` for merging to this node (OfferForMerge): a
  // MergePort naming any other port is a protocol violation there, the
  // sender is disconnected and the named port stays untouched.
  Status MergePorts(const PortRef& local, const NodeName& node, const PortName& remote);

  // MRG-3: allows node `merger` (one node, one merge) to merge with `port`,
  // a receiving port that never sent or read a message (e.g. the bootstrap
  // port a broker gives a new child). kFailedPrecondition otherwise.
  Status OfferForMerge(const PortRef& port, const NodeName& merger);

  // Read-ack backpressure (R13): asks the peer to acknowledge reads every
  // `sequence_num_interval` messages (0 disables).
  Status SetAcknowledgeRequestInterval(const PortRef& port, uint64_t sequence_num_interval);

  // An event that arrived from node `from`. An Error means `from` broke the
  // protocol: the embedder must disconnect it.
  Status AcceptEvent(const NodeName& from, std::unique_ptr<Event> event);

  // The transport to `node` (every node, if null) has room again: ports that
  // reported send_would_wait because of it are reported (PortStatusChanged).
  void OnSendSpace(const NodeName* node);

  // The transport to `node` died: every port whose peer or previous hop lives
  // there is closed cleanly (receiving ports report peer_closed after the
  // messages already queued in order; proxies are removed).
  void LostConnectionToNode(const NodeName& node);

  // For tests and shutdown checks.
  size_t port_count() const ABSL_LOCKS_EXCLUDED(ports_mu_);
  size_t proxy_count() const ABSL_LOCKS_EXCLUDED(ports_mu_);
  bool CanShutdownCleanly() const ABSL_LOCKS_EXCLUDED(ports_mu_);
  // Whether this node still owes other nodes events it has not handed to the
  // delegate, or a port is still moving (kBuffering, kProxying: it holds or
  // forwards what was written before it moved). An orderly shutdown waits
  // for false before dropping its transports (crbug.com/1005510).
  bool HasEventsInFlight() const ABSL_LOCKS_EXCLUDED(ports_mu_);

 private:
  struct Pending;  // events/notifications collected under locks, sent after

  Status AcceptEventFrom(const NodeName& from, std::unique_ptr<Event> event, Pending* out);
  Status DispatchEvent(const PortRef& port, const NodeName& from, std::unique_ptr<Event> event,
                       Pending* out);
  Status OnUserMessage(const PortRef& port, const NodeName& from,
                       std::unique_ptr<UserMessageEvent> event, Pending* out);
  Status OnPortAccepted(const PortRef& port, const NodeName& from, const PortAcceptedEvent& event,
                        Pending* out);
  Status OnObserveProxy(const PortRef& port, std::unique_ptr<ObserveProxyEvent> event,
                        Pending* out);
  Status OnObserveProxyAck(const PortRef& port, const ObserveProxyAckEvent& event, Pending* out);
  Status OnObserveClosure(const PortRef& port, std::unique_ptr<ObserveClosureEvent> event,
                          Pending* out);
  Status OnMergePort(const PortRef& port, const NodeName& from, const MergePortEvent& event,
                     Pending* out);
  Status OnReadAckRequest(const PortRef& port, const UserMessageReadAckRequestEvent& event,
                          Pending* out);
  Status OnReadAck(const PortRef& port, const UserMessageReadAckEvent& event, Pending* out);
  Status OnRouteLost(const PortRef& port, const NodeName& from, const RouteLostEvent& event,
                     Pending* out);
  Status OnUpdatePreviousPeer(const PortRef& port, const NodeName& from,
                              const UpdatePreviousPeerEvent& event, Pending* out);

  NodeName TopBufferingNode(const Port& port, const NodeName& from) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(port.mu);
  Status CheckLocalBuffer(const Port& port, const PortName& self, const Event& event) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(port.mu);
  Status AcceptPorts(const NodeName& from, UserMessageEvent* event, Pending* out);
  // PRT-13: MAX_VOUCHED_UNCONFIRMED_LINKS for the descriptors of `event`.
  Status CheckVouched(const NodeName& from, const UserMessageEvent& event)
      ABSL_LOCKS_EXCLUDED(ports_mu_);
  void ForgetVouched(const NodeName& node) ABSL_LOCKS_EXCLUDED(ports_mu_);
  Status DiscardEvent(const NodeName& from, std::unique_ptr<Event> event, Pending* out);
  void DiscardBuffered(std::vector<Port::BufferedEvent> buffered, Pending* out);
  Status ValidateAttachedPorts(const NodeName& from, const UserMessageEvent& event) const;
  // Checks a descriptor from `from` for a new port `name` (nothing created).
  Status ValidateDescriptor(const NodeName& from, const PortName& name,
                            const PortDescriptor& desc) const;
  Status AcceptPort(const NodeName& from, const PortName& name, const PortDescriptor& desc,
                    Pending* out);
  void ClosePortsByName(const std::vector<PortName>& names, Pending* out);
  Status ClosePortInternal(const PortRef& port, Pending* out);
  // What a port closed under its lock still held: unread messages (their
  // attached ports are closed) and buffered events, handled after the lock
  // by FinishClosing; `erase`: the port may be erased now.
  struct ClosedPortRemains {
    std::vector<std::unique_ptr<UserMessageEvent>> dropped;
    std::vector<Port::BufferedEvent> buffered;
    bool erase = false;
  };
  // Closes `port` and takes what it holds (call FinishClosing after unlocking).
  static ClosedPortRemains MarkClosedLocked(Port* port) ABSL_EXCLUSIVE_LOCKS_REQUIRED(port->mu);
  void FinishClosing(const PortRef& ref, ClosedPortRemains remains, Pending* out);
  // See node.cc; `held`: a port whose lock the caller holds (not searched).
  bool Carries(std::vector<PortName> names, const PortName& target,
               const PortName& held = PortName()) const ABSL_LOCKS_EXCLUDED(ports_mu_);
  Status MergePortsInternal(const PortRef& a, const PortRef& b, bool close_on_failure,
                            Pending* out);
  void ForwardQueuedFromProxy(const PortRef& port, Pending* out);
  // Requires the port's lock.
  void SendOnOldLink(const PortRef& port, bool closure, Pending* out);
  // These five require the port's lock.
  void ConvertToProxy(const PortRef& port, const NodeName& to_node, PortName* new_name,
                      PortDescriptor* desc, Pending* out);
  // Stamps a ring event for the port's peer and sends it (held while
  // kBuffering, parked on an unconfirmed link, see Enqueue).
  void SendToPeer(const PortRef& port, std::unique_ptr<Event> event, Pending* out);
  // A stamped ring event for `to`: local events go to this thread's drain,
  // others into the port's outbox (in stamp order), or are parked if they
  // are beyond MAX_UNCONFIRMED_LINK_EVENTS on an unconfirmed link.
  void Enqueue(const PortRef& port, const NodeName& to, std::unique_ptr<Event> event,
               Pending* out);
  void ReleaseParked(const PortRef& port, const NodeName& to,
                     std::deque<std::unique_ptr<Event>>* parked, Pending* out);
  void MaybeConfirmLink(const NodeName& from, const Event& event, Pending* out);
  // Takes the port's send turn (or hands its events to the thread that has
  // it) and forwards its outbox in order. No lock held.
  void DrainOutbox(const PortRef& port) ABSL_LOCKS_EXCLUDED(ports_mu_);
  void AwaitConfirmations(const std::vector<PortRef>& ports) ABSL_LOCKS_EXCLUDED(ports_mu_);
  void MaybeRequestWindowAck(const PortRef& port, Pending* out);
  void AwaitUnreadWindow(const PortRef& port) ABSL_LOCKS_EXCLUDED(ports_mu_);
  size_t BlockingWriteLimit() const;
  bool SendWouldWaitLocked(const Port* port) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(port->mu);
  void TryRemoveProxy(const PortRef& port, Pending* out);
  void InitiateProxyRemoval(const PortRef& port, Pending* out);

  // Node loss (LostConnectionToNode) for one port; PRT-14 checks.
  void LosePortTo(const PortRef& port, const NodeName& node, Pending* out);
  // PRT-23: tells the previous hop and the peer of `port` (except
  // skip_port@skip_node; any port there if skip_port is invalid) that the
  // pipe's route is gone. Requires the port's lock.
  void SendRouteLost(const PortRef& port, const NodeName& skip_node, const PortName& skip_port,
                     Pending* out);
  void CheckReachable(const PortRef& port, const NodeName& node, Pending* out)
      ABSL_LOCKS_EXCLUDED(ports_mu_);
  bool IsReachable(const NodeName& node) const ABSL_LOCKS_EXCLUDED(ports_mu_);
  void RememberLost(const NodeName& node) ABSL_EXCLUSIVE_LOCKS_REQUIRED(ports_mu_);

  Status AddPort(const PortName& name, std::shared_ptr<Port> port,
                 const NodeName& origin = NodeName()) ABSL_LOCKS_EXCLUDED(ports_mu_);
  void ErasePort(const PortName& name) ABSL_LOCKS_EXCLUDED(ports_mu_);
  PortRef Lookup(const PortName& name) const ABSL_LOCKS_EXCLUDED(ports_mu_);

  // Sends everything collected in `pending` (delegate calls and this node's
  // own events) with no lock held.
  void Flush(Pending* pending) ABSL_LOCKS_EXCLUDED(ports_mu_);

  const NodeName name_;
  NodeDelegate* const delegate_;
  const NodeOptions options_;

  // Lock order: Port::mu (several only in ascending PortName order, as in
  // MergeLocalPorts and sends with attachments; or a proxy's lock, then the
  // not-yet-reachable ports attached to messages it forwards, one at a time,
  // and those attached to messages queued at them: Node::Carries) -> ports_mu_.
  // ports_mu_ is a leaf: nothing is locked while holding it.
  // No lock is held while calling the delegate. A port's send turn
  // (Port::sending, see DrainOutbox) is not a lock: it is taken and given
  // back under Port::mu, held without any lock across ForwardEvent, and
  // waited for only by threads outside AcceptEvent/LostConnectionToNode.
  mutable Mutex ports_mu_;
  std::map<PortName, std::shared_ptr<Port>> ports_ ABSL_GUARDED_BY(ports_mu_);
  // Nodes LostConnectionToNode named (the latest MAX_REMEMBERED_LOST_NODES):
  // their late events are dropped and no port may be re-pointed at them.
  std::set<NodeName> lost_nodes_ ABSL_GUARDED_BY(ports_mu_);
  // PRT-13: ports made here from descriptors of node `origin` whose peer is
  // a port on a third node, by (origin, peer node, peer port), until the
  // peer confirms them (a PortAccepted; even after the port is gone, its
  // events may wait at the peer) or either node is lost. Multisets: the
  // origin chooses the names, and may reuse one once its port is gone.
  using VouchKey = std::tuple<NodeName, NodeName, PortName>;
  std::map<VouchKey, std::multiset<PortName>> vouched_ ABSL_GUARDED_BY(ports_mu_);
  std::multimap<PortName, VouchKey> vouched_by_port_ ABSL_GUARDED_BY(ports_mu_);
  std::deque<NodeName> lost_order_ ABSL_GUARDED_BY(ports_mu_);
  // PRT-23: recently removed proxies (oldest first, at most
  // MAX_REMEMBERED_REMOVED_PROXIES): if `peer_node` is lost, its last
  // forwarded events may be lost with it, and the previous hop is told; the
  // same if the peer (peer_port@peer_node) tells us, with a RouteLost, that
  // it cannot reach the previous hop our last event named.
  struct RemovedProxy {
    PortName name;
    NodeName peer_node;
    PortName peer_port;
    NodeName prev_node;
    PortName prev_port;
  };
  std::deque<RemovedProxy> removed_proxies_ ABSL_GUARDED_BY(ports_mu_);
  // Ports GetStatus told that a write would wait for a full transport
  // (Port::waits_for_send_space), reported by OnSendSpace. At most one entry
  // per port: the flag is set under the port lock when the entry is added.
  std::vector<PortRef> send_space_waiters_ ABSL_GUARDED_BY(ports_mu_);
  // PRT-8: ports made here from descriptors another node sent, per node
  // (NodeDelegate::IsPortQuotaExempt nodes are not counted), and whose they are.
  std::map<NodeName, size_t> ports_by_origin_ ABSL_GUARDED_BY(ports_mu_);
  std::map<PortName, NodeName> port_origins_ ABSL_GUARDED_BY(ports_mu_);
  // A RouteLost for removed proxy `proxy` from its peer: passed on (once) to
  // the proxy's previous hop. Returns whether such a proxy was remembered.
  bool RelayRouteLostForRemovedProxy(const PortName& proxy, const NodeName& from,
                                     const PortName& from_port, Pending* out);

  // Threads inside AcceptEvent/LostConnectionToNode: their events may belong
  // to ports already erased (a removed proxy's last events wait in its
  // outbox until the Flush): see HasEventsInFlight.
  std::atomic<int> accepting_{0};

  // Events this node sends to itself are processed by the thread that sent
  // them (a per-thread FIFO, see Flush), never handed to another thread.
};

}  // namespace moat::ports

#endif  // MOAT_CORE_PORTS_NODE_H_
