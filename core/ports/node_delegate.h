// NodeDelegate: how a ports::Node talks to its embedder.
//
// The node is transport-agnostic: every event for another node goes out
// through ForwardEvent, and the embedder serializes it (event_codec.h) onto
// the transport to that node. Status changes are reported so the embedder can
// signal traps/watchers. Both calls are made without any port lock held, so
// the delegate may call back into the Node (but see ForwardEvent).
//
//   class MyDelegate : public NodeDelegate {
//     void ForwardEvent(const NodeName& n, std::unique_ptr<Event> e) override {
//       channels_[n]->Send(SerializeEvent(*e, &fds));
//     }
//     void PortStatusChanged(const PortRef& p) override { WakeWatchers(p); }
//   };
#ifndef MOAT_CORE_PORTS_NODE_DELEGATE_H_
#define MOAT_CORE_PORTS_NODE_DELEGATE_H_

#include <memory>

#include "core/error.h"
#include "core/ports/event.h"
#include "core/ports/name.h"
#include "core/ports/port_ref.h"

namespace moat::ports {

class NodeDelegate {
 public:
  virtual ~NodeDelegate();

  // Deliver `event` to node `node` (never this node: the Node delivers its
  // own local events itself). Must not synchronously call Node::AcceptEvent
  // on the sending node with the same event (queue it instead).
  virtual void ForwardEvent(const NodeName& node, std::unique_ptr<Event> event) = 0;

  // A port's status changed (message arrived, peer closed). Called without
  // port locks held; may call Node::GetStatus / GetMessage.
  virtual void PortStatusChanged(const PortRef& port) = 0;

  // An event from `node` that had been buffered (it arrived before it could
  // be processed) turned out to violate the protocol while the node was
  // handling another node's event: AcceptEvent cannot return this error to
  // the right caller, so it is reported here. Disconnect `node`.
  virtual void BadEventFrom(const NodeName& node, const Error& error) {}

  // Whether a thread sending on a port (outside AcceptEvent) may block until
  // the peer confirms a new link (PRT-11: a writer that has sent
  // MAX_UNCONFIRMED_LINK_EVENTS on a link the peer has not confirmed yet).
  // Only true if events are delivered (AcceptEvent) by threads other than
  // the senders, e.g. transport IO threads; a single-threaded embedder that
  // delivers events itself must return false (its parked events then wait,
  // unbounded, for the confirmation it delivers later).
  virtual bool SendersMayWaitForPeers() const { return false; }

  // Whether this node has (or can get) a connection to `node` (PRT-14). An
  // event that re-points a port at a node for which this returns false
  // closes that port at once, as if the node had been lost: no connection
  // loss would ever be reported for it. Called without locks held. The
  // default (true) suits embedders that report every loss.
  virtual bool IsNodeReachable(const NodeName& node) const { return true; }

  // Whether a send to `node` now would wait for its transport (above the
  // high-water mark). If true, the delegate later calls Node::OnSendSpace
  // once it has room. Called without port locks held, and only while
  // AnyTransportFull() is true.
  virtual bool WouldWaitToSend(const NodeName& node) const { return false; }
  // Whether WouldWaitToSend may be true for any node now. Lock-free: asked
  // with a port lock held on every GetStatus, so the common case costs no
  // lock at all.
  virtual bool AnyTransportFull() const { return false; }

  // A writer waited NodeOptions::confirm_timeout for a port on `node` to
  // confirm a new link and it never did: `node` is stopped, hung or
  // hostile. The delegate should disconnect it (the waiting writer resumes
  // when its peer is then closed). The default does nothing.
  virtual void PeerUnresponsive(const NodeName& node, const Error& why) {}

  // Whether ports made from `node`'s descriptors are exempt from the
  // per-peer port limit (MAX_PORTS_PER_PEER_NODE, PRT-8): e.g. a child's
  // broker, which relays everyone's ports and can cut the child off anyway.
  // Called with the node's port-map lock held: must not call into the Node.
  virtual bool IsPortQuotaExempt(const NodeName& node) const { return false; }

  // Bytes ForwardEvent puts in front of a serialized event (its envelope
  // header, which it fills in; see SerializeEventAfterPrefix). A writer whose
  // peer is on another node reserves them, with the event's head, in front
  // of the payload (Node::SendHeadroom), so the payload is copied once, from
  // the caller's buffer, and never again on its way to the socket.
  virtual size_t EnvelopeHeadroom() const { return 0; }
};

}  // namespace moat::ports

#endif  // MOAT_CORE_PORTS_NODE_DELEGATE_H_
