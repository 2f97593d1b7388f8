// ports::Node implementation. Protocol summary (details: docs/wire-format-ports.md):
//
// The ports of one pipe form a ring along their peer pointers: the two
// receiving ends and any proxies between them. Ring events (user messages and
// control events) travel along it; each port accepts them only from its
// previous hop, in that hop's control-sequence order. When a port's peer
// changes, the port tells its old peer who its new previous hop is
// (UpdatePreviousPeer) as the last event on the old link, so the old peer
// switches streams exactly at the right point and nothing is reordered.
//
// Moving a port: the old port becomes kBuffering and the descriptor travels in
// the message; the new port announces itself (PortAccepted), the old one
// forwards what it holds (kProxying) and asks to be bypassed (ObserveProxy
// travels the ring to the port whose peer is the proxy, which re-points and
// answers ObserveProxyAck with the last message it sent through the proxy).
// Once the proxy has forwarded that message it tells its peer the new
// previous hop and disappears.
//
// New links (PRT-11): the port at the other end of a new link to another node
// buffers what we send until its previous hop switches to us, which happens
// on an event travelling another way. So a port sends at most
// MAX_UNCONFIRMED_LINK_EVENTS on such a link and parks the rest until the
// receiver confirms (PortAccepted, sent when it processes or discards the
// link's first event); an honest sender thus stays far below the receiver's
// anti-flood cap MAX_PORT_BUFFERED_EVENTS.
//
// Send order (CAPI-6): ring events for other nodes go through the port's
// outbox and leave in stamp order (DrainOutbox), whatever thread stamped them.
//
// Locks: see node.h. Every delegate call and every event happens after the
// locks are released, via Pending + Flush.
#include "core/ports/node.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <thread>
#include <utility>

#include "core/check.h"
#include "core/checked.h"
#include "core/ports/port.h"
#include "limits/limits.h"

namespace moat::ports {

using State = Port::State;

struct Node::Pending {
  // Local events and non-ring events for other nodes. Ring events for other
  // nodes wait in their port's outbox (see Enqueue).
  std::vector<std::pair<NodeName, std::unique_ptr<Event>>> events;
  std::vector<PortRef> status_changed;
  std::vector<PortName> ports_to_close;
  std::vector<std::pair<NodeName, Error>> bad_nodes;
  std::vector<PortRef> outboxes;  // ports whose outbox this thread added to
  std::vector<PortRef> parked;    // ports where this thread parked events
  // Ports an event re-pointed at a node: closed if it is unreachable (PRT-14).
  std::vector<std::pair<PortRef, NodeName>> check_reachable;

  void Send(const NodeName& node, std::unique_ptr<Event> event) {
    events.emplace_back(node, std::move(event));
  }
  bool empty() const {
    return events.empty() && status_changed.empty() && ports_to_close.empty() &&
           bad_nodes.empty() && outboxes.empty() && parked.empty() && check_reachable.empty();
  }
};

namespace {

// Locks several ports in ascending name order (the documented lock order).
class ABSL_SCOPED_LOCKABLE MultiPortLock {
 public:
  explicit MultiPortLock(std::vector<PortRef> refs) ABSL_NO_THREAD_SAFETY_ANALYSIS
      : refs_(std::move(refs)) {
    std::sort(refs_.begin(), refs_.end(),
              [](const PortRef& a, const PortRef& b) { return a.name() < b.name(); });
    for (auto& r : refs_) r.port()->mu.Lock();
  }
  ~MultiPortLock() ABSL_UNLOCK_FUNCTION() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    for (auto it = refs_.rbegin(); it != refs_.rend(); ++it) it->port()->mu.Unlock();
  }

 private:
  std::vector<PortRef> refs_;
};

std::string Describe(const NodeName& node, const PortName& port) {
  return port.ToString() + "@" + node.ToString();
}

}  // namespace

Node::Node(const NodeName& name, NodeDelegate* delegate, NodeOptions options)
    : name_(name), delegate_(delegate), options_(options) {
  MOAT_ASSERT(options.unread_bytes_window > 0 &&
                  options.max_unread_bytes <= limits::MAX_PIPE_UNREAD_BYTES &&
                  options.unread_bytes_window <= options.max_unread_bytes,
              "NodeOptions: unread window ", options.unread_bytes_window, " and cap ",
              options.max_unread_bytes, " (the cap may only be tightened, below ",
              limits::MAX_PIPE_UNREAD_BYTES, ")");
  MOAT_ASSERT(name.is_valid(), "a node needs a valid name");
  MOAT_ASSERT(delegate != nullptr, "a node needs a delegate");
}

Node::~Node() = default;

// ---------------------------------------------------------------------------
// Port map.

Status Node::AddPort(const PortName& name, std::shared_ptr<Port> port, const NodeName& origin) {
  MutexLock lock(&ports_mu_);
  // Attack: a hostile node creating ports (attached to messages) without bound.
  MOAT_REQUIRE(ports_.size() < limits::MAX_PORTS_PER_NODE, ErrorCode::kLimitExceeded,
               "node holds ", ports_.size(), " ports, MAX_PORTS_PER_NODE ",
               limits::MAX_PORTS_PER_NODE);
  // Attack: a descriptor reusing an existing port's name to hijack its traffic.
  MOAT_REQUIRE(name.is_valid() && ports_.find(name) == ports_.end(),
               ErrorCode::kProtocolViolation, "port name ", name.ToString(),
               " is invalid or already in use");
  if (origin.is_valid() && !delegate_->IsPortQuotaExempt(origin)) {
    size_t& held = ports_by_origin_[origin];
    // Attack (PRT-8): one hostile node filling the node-wide port limit with
    // ports it sends us, so that nobody else (other peers, our embedder) can
    // create one.
    MOAT_REQUIRE(held < options_.max_ports_per_peer_node, ErrorCode::kLimitExceeded, "node ",
                 origin.ToString(), " already has ", held,
                 " ports here it sent us, MAX_PORTS_PER_PEER_NODE ",
                 options_.max_ports_per_peer_node);
    ++held;
    port_origins_.emplace(name, origin);
  }
  ports_.emplace(name, std::move(port));
  return OkStatus();
}

void Node::ErasePort(const PortName& name) {
  std::shared_ptr<Port> doomed;  // destroyed outside the map lock
  MutexLock lock(&ports_mu_);
  auto it = ports_.find(name);
  if (it == ports_.end()) return;
  doomed = std::move(it->second);
  ports_.erase(it);
  auto origin = port_origins_.find(name);
  if (origin != port_origins_.end()) {
    auto held = ports_by_origin_.find(origin->second);
    if (held != ports_by_origin_.end() && --held->second == 0) ports_by_origin_.erase(held);
    port_origins_.erase(origin);
  }
}

PortRef Node::Lookup(const PortName& name) const {
  MutexLock lock(&ports_mu_);
  auto it = ports_.find(name);
  if (it == ports_.end()) return PortRef();
  return PortRef(name, it->second);
}

size_t Node::port_count() const {
  MutexLock lock(&ports_mu_);
  return ports_.size();
}

size_t Node::proxy_count() const {
  std::vector<std::shared_ptr<Port>> all;
  {
    MutexLock lock(&ports_mu_);
    for (auto& [name, port] : ports_) all.push_back(port);
  }
  size_t n = 0;
  for (auto& port : all) {
    MutexLock lock(&port->mu);
    if (port->state == State::kBuffering || port->state == State::kProxying) ++n;
  }
  return n;
}

bool Node::CanShutdownCleanly() const { return port_count() == 0; }

bool Node::HasEventsInFlight() const {
  if (accepting_.load(std::memory_order_acquire) > 0) return true;
  std::vector<std::shared_ptr<Port>> all;
  {
    MutexLock lock(&ports_mu_);
    for (auto& [name, port] : ports_) all.push_back(port);
  }
  for (auto& port : all) {
    MutexLock lock(&port->mu);
    if (port->state == State::kBuffering || port->state == State::kProxying ||
        port->HasParkedEvents() || !port->outbox.empty() || port->sending) {
      return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------------------
// Flush: events and notifications go out with no lock held.

namespace {

// The local events of the outermost Flush of one node on this thread. Nested
// Flush calls (from handlers or delegate callbacks) only append to it.
struct LocalDrain {
  const Node* node;
  // A FIFO read from `next`: a vector because every Flush makes a LocalDrain
  // and most never queue a local event (a std::deque allocates when made,
  // ~10% of the instructions of a message hop).
  std::vector<std::unique_ptr<Event>> events;
  std::vector<PortRef> parked;  // awaited once this thread's drain is done
  LocalDrain* outer;  // another node's drain further up this thread's stack
  size_t next = 0;
};
thread_local LocalDrain* t_local_drain = nullptr;

// > 0 while this thread is inside AcceptEvent, LostConnectionToNode or a
// ScopedNoWait (a non-blocking write). The first two may run on a
// transport's IO thread, which must never wait for another
// sender: that sender may itself be waiting for this very thread to drain
// its socket. Its outbox events are orphans (see Port::Outgoing).
thread_local int t_no_wait_depth = 0;

}  // namespace

ScopedNoWait::ScopedNoWait() { ++t_no_wait_depth; }
ScopedNoWait::~ScopedNoWait() { --t_no_wait_depth; }
bool ThreadMayWait() { return t_no_wait_depth == 0; }

namespace {
using NoWaitScope = ScopedNoWait;

// Counts the threads between receiving an event and handing everything it
// caused to the delegate (Node::HasEventsInFlight).
class AcceptingScope {
 public:
  explicit AcceptingScope(std::atomic<int>* count) : count_(count) {
    count_->fetch_add(1, std::memory_order_acq_rel);
  }
  ~AcceptingScope() { count_->fetch_sub(1, std::memory_order_acq_rel); }
  AcceptingScope(const AcceptingScope&) = delete;
  AcceptingScope& operator=(const AcceptingScope&) = delete;

 private:
  std::atomic<int>* count_;
};

}  // namespace

// Why per thread: with one node-wide queue drained by whichever thread got
// there first, a writer's events for a local proxy could be handed to a
// transport IO thread that happened to be draining. That thread then
// forwarded the writer's whole burst itself, and an IO thread cannot wait for
// its own socket: its send queue filled and events were refused, i.e. lost.
// Draining on the sending thread keeps the writer subject to backpressure.
// Events of one link may now be processed by two threads in either order;
// their control sequence numbers restore the order (AcceptEventFrom buffers
// every event behind a gap until the preempted sender delivers the missing
// one; self-sent events are not subject to the hostile-node buffer cap).
void Node::Flush(Pending* p) {
  LocalDrain* drain = t_local_drain;
  while (drain != nullptr && drain->node != this) drain = drain->outer;
  LocalDrain own{this, {}, {}, t_local_drain};
  const bool outermost = drain == nullptr;
  if (outermost) drain = &own;

  while (!p->empty()) {
    while (!p->check_reachable.empty()) {
      auto checks = std::move(p->check_reachable);
      p->check_reachable.clear();
      for (auto& [ref, node] : checks) CheckReachable(ref, node, p);
    }
    while (!p->ports_to_close.empty()) {
      std::vector<PortName> names = std::move(p->ports_to_close);
      p->ports_to_close.clear();
      ClosePortsByName(names, p);
    }
    auto events = std::move(p->events);
    p->events.clear();
    auto changed = std::move(p->status_changed);
    p->status_changed.clear();
    auto bad = std::move(p->bad_nodes);
    p->bad_nodes.clear();
    auto outboxes = std::move(p->outboxes);
    p->outboxes.clear();
    drain->parked.insert(drain->parked.end(), p->parked.begin(), p->parked.end());
    p->parked.clear();
    for (auto& [node, event] : events) {
      if (node == name_) {
        drain->events.push_back(std::move(event));
      } else {
        delegate_->ForwardEvent(node, std::move(event));
      }
    }
    for (size_t i = 0; i < outboxes.size(); ++i) {
      if (i == 0 || !(outboxes[i] == outboxes[i - 1])) DrainOutbox(outboxes[i]);
    }
    for (auto& ref : changed) delegate_->PortStatusChanged(ref);
    for (auto& [node, error] : bad) delegate_->BadEventFrom(node, error);
  }
  if (!outermost) return;

  if (!own.events.empty()) {
    t_local_drain = &own;
    while (own.next < own.events.size()) {
      // Nested Flush calls append to own.events meanwhile: index, not iterator.
      std::unique_ptr<Event> event = std::move(own.events[own.next++]);
      Pending inner;
      // Our own events are well-formed; an error here is a benign race (the
      // state moved on), never a reason to disconnect anyone.
      (void)AcceptEventFrom(name_, std::move(event), &inner);
      Flush(&inner);
    }
    t_local_drain = own.outer;
  }
  if (!own.parked.empty()) AwaitConfirmations(own.parked);
}

// ---------------------------------------------------------------------------
// Sending ring events.

void Node::SendToPeer(const PortRef& ref, std::unique_ptr<Event> event, Pending* out) {
  Port* port = ref.port();
  port->mu.AssertHeld();
  port->StampForPeer(event.get(), ref.name());
  if (port->state == State::kBuffering) {
    // The new port does not exist yet: held until it is (PortAccepted).
    port->held_for_peer.push_back(std::move(event));
    return;
  }
  Enqueue(ref, port->peer_node, std::move(event), out);
}

void Node::Enqueue(const PortRef& ref, const NodeName& to, std::unique_ptr<Event> event,
                   Pending* out) {
  Port* port = ref.port();
  port->mu.AssertHeld();
  if (to == name_) {
    // Local: processed by this thread's drain; self-sent events are exempt
    // from the buffer cap, so neither ordering nor confirmation is needed.
    event->origin = port->origin;
    event->origin_is_prev = port->origin.is_valid() && port->prev_node == port->origin;
    out->Send(to, std::move(event));
    return;
  }
  if (port->vouched && to == port->peer_node && event->port_name == port->peer_port) {
    port->vouch_sent = true;
  }
  if (!port->peer_confirmed && to == port->peer_node && event->port_name == port->peer_port &&
      event->control_sequence_num > limits::MAX_UNCONFIRMED_LINK_EVENTS) {
    port->parked.push_back(std::move(event));
    out->parked.push_back(ref);
    return;
  }
  const std::thread::id me = std::this_thread::get_id();
  port->outbox.push_back({to, std::move(event), me, t_no_wait_depth == 0});
  port->AddOutboxCount(me, 1);
  out->outboxes.push_back(ref);
}

// Whoever holds a port's send turn forwards its outbox front to back, so the
// events of one link leave in stamp order whatever thread stamped them. No
// lock is held while forwarding; a thread only waits for a turn that another
// thread holds while it forwards (never for one that is free), and threads
// that must not wait (IO threads) leave their events as orphans for the
// holder. Hence no cycle: a holder blocks only in ForwardEvent, on its
// transport, whose IO thread never waits here.
void Node::DrainOutbox(const PortRef& ref) {
  const std::thread::id me = std::this_thread::get_id();
  const bool may_wait = t_no_wait_depth == 0;
  Port* port = ref.port();
  MutexLock lock(&port->mu);
  for (;;) {
    if (port->sending) {
      // Re-entered from our own ForwardEvent (a transport failure reporting a
      // lost node): the outer loop sends what was added meanwhile.
      if (port->sender == me) return;
      if (!may_wait || port->OutboxCount(me) == 0) return;
      ++port->send_waiters;
      port->send_cv.Wait(&port->mu);
      --port->send_waiters;
      continue;
    }
    // We send our own events and orphans, and another waiting thread's only
    // to reach our own behind it; otherwise that thread sends its own (it is
    // waiting or on its way), which keeps each writer under its transport's
    // backpressure and keeps an IO thread from forwarding a writer's burst.
    auto may_send_front = [&] {
      port->mu.AssertHeld();
      const Port::Outgoing& front = port->outbox.front();
      return front.owner == me || !front.owner_waits || (may_wait && port->OutboxCount(me) > 0);
    };
    if (port->outbox.empty() || !may_send_front()) return;
    port->sending = true;
    port->sender = me;
    while (!port->outbox.empty() && may_send_front()) {
      Port::Outgoing next = std::move(port->outbox.front());
      port->outbox.pop_front();
      port->AddOutboxCount(next.owner, -1);
      const bool owner_done = next.owner != me && port->OutboxCount(next.owner) == 0;
      port->mu.Unlock();
      delegate_->ForwardEvent(next.to, std::move(next.event));
      port->mu.Lock();
      if (owner_done && port->send_waiters > 0) port->send_cv.SignalAll();
    }
    port->sending = false;
    port->sender = std::thread::id();
    if (port->send_waiters > 0) port->send_cv.SignalAll();
    return;
  }
}

// A writer that parked events waits, at the end of its call, until the new
// peer confirms the link and they are released: the writer is held back like
// a full transport would hold it, and parked events stay bounded by one call
// per writer. Only where waiting cannot deadlock: not on a thread that may be
// an IO thread, not while any node's local events wait on this thread, and
// only if the embedder delivers events on other threads.
void Node::AwaitConfirmations(const std::vector<PortRef>& refs) {
  if (t_no_wait_depth > 0 || t_local_drain != nullptr || !delegate_->SendersMayWaitForPeers()) {
    return;
  }
  for (const PortRef& ref : refs) {
    Port* port = ref.port();
    std::optional<NodeName> unresponsive;
    {
      MutexLock lock(&port->mu);
      const auto deadline = std::chrono::steady_clock::now() + options_.confirm_timeout;
      // A closed peer may never confirm (e.g. the proxy before it was lost,
      // so it never switches to us): nothing more is sent then anyway.
      while (port->HasParkedEvents() && !port->peer_closed && port->state != State::kClosed) {
        const auto left = deadline - std::chrono::steady_clock::now();
        if (left <= std::chrono::steady_clock::duration::zero()) {
          unresponsive = port->peer_node;
          break;
        }
        port->send_cv.WaitFor(&port->mu, left);
      }
    }
    if (unresponsive) {
      // A peer that never confirms (stopped, hung or hostile) must not hold
      // this writer forever: its node is cut off, which closes the pipe.
      delegate_->PeerUnresponsive(
          *unresponsive,
          Error(ErrorCode::kDeadlineExceeded,
                ::moat::internal::Concat("port ", ref.name().ToString(), "'s peer on node ",
                                         unresponsive->ToString(), " did not confirm a new link in ",
                                         options_.confirm_timeout.count(), " ms")));
    }
  }
}

void Node::ReleaseParked(const PortRef& ref, const NodeName& to,
                         std::deque<std::unique_ptr<Event>>* parked, Pending* out) {
  Port* port = ref.port();
  port->mu.AssertHeld();
  if (parked->empty()) return;
  // Orphans: the writers that parked them may be gone; the confirming thread
  // (or whoever holds the turn) sends them.
  const std::thread::id me = std::this_thread::get_id();
  for (auto& event : *parked) {
    port->outbox.push_back({to, std::move(event), me, false});
    port->AddOutboxCount(me, 1);
  }
  parked->clear();
  out->outboxes.push_back(ref);
  port->send_cv.SignalAll();
  // A non-blocking writer saw send_would_wait (WRITABLE unsatisfied): here,
  // or, for a proxy, at the local port that writes through it.
  out->status_changed.push_back(ref);
  if ((port->state == State::kProxying || port->state == State::kBuffering) &&
      port->prev_node == name_ && port->prev_port.is_valid()) {
    PortRef writer = Lookup(port->prev_port);  // lock order: port lock, then ports_mu_
    if (writer.is_valid()) out->status_changed.push_back(writer);
  }
}

void Node::MaybeConfirmLink(const NodeName& from, const Event& event, Pending* out) {
  // The first event of a link from another node: its sender may be holding
  // back the rest until we confirm (PRT-11). Sent whether the event was
  // processed or discarded, so the sender never waits forever.
  if (from == name_ || !event.is_ring_event() ||
      event.control_sequence_num != kInitialSequenceNum || !event.from_port.is_valid() ||
      !event.port_name.is_valid()) {
    return;
  }
  out->Send(from, std::make_unique<PortAcceptedEvent>(event.from_port, event.port_name));
}

// The link to the current peer is about to change: keep what is still
// unconfirmed on it, so its confirmation finds (and releases) its events.
static void RetireLink(Port* port, const NodeName& self_node)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(port->mu) {
  // Nothing was sent on a vouched link (PRT-13): no confirmation will come.
  if (port->vouched && !port->vouch_sent) port->vouched = false;
  if (port->peer_node != self_node && !port->peer_confirmed &&
      port->next_control_sequence_num_to_send > kInitialSequenceNum) {
    // Attack: a hostile previous hop re-pointing this port again and again
    // (ObserveProxy) would grow this list, and with it the events parked on
    // each link. The cap bounds all of them: the oldest empty link goes, or
    // else the oldest one with its parked events (an honest pipe never has
    // that many unconfirmed links; the one dropped was re-pointed by the
    // attacker, whose pipe this is).
    if (port->retired.size() >= limits::MAX_PORT_RETIRED_LINKS) {
      auto empty = std::find_if(port->retired.begin(), port->retired.end(),
                                [](const Port::RetiredLink& l) { return l.parked.empty(); });
      port->retired.erase(empty != port->retired.end() ? empty : port->retired.begin());
      ++port->evicted_unconfirmed_links;
    }
    port->retired.push_back({port->peer_node, port->peer_port, std::move(port->parked)});
  }
  port->parked.clear();
  port->peer_confirmed = true;
}

// A closed or removed port stays registered while it has parked events (they
// are its last events; their confirmation is addressed to it). Returns
// whether it may be erased now.
static bool MayEraseNow(Port* port) ABSL_EXCLUSIVE_LOCKS_REQUIRED(port->mu) {
  if (!port->HasParkedEvents()) return true;
  port->erase_when_unparked = true;
  return false;
}

Node::ClosedPortRemains Node::MarkClosedLocked(Port* port) {
  port->state = Port::State::kClosed;
  port->send_cv.SignalAll();  // AwaitConfirmations, AwaitUnreadWindow
  ClosedPortRemains remains;
  remains.dropped = port->message_queue.TakeAll();
  remains.buffered = std::move(port->buffered_events);
  port->buffered_events.clear();
  remains.erase = MayEraseNow(port);
  return remains;
}

void Node::FinishClosing(const PortRef& ref, ClosedPortRemains remains, Pending* out) {
  if (remains.erase) ErasePort(ref.name());
  DiscardBuffered(std::move(remains.buffered), out);
  // Ports that travelled in unread messages are nobody's now.
  for (auto& event : remains.dropped) {
    for (const PortName& p : event->message->ports) out->ports_to_close.push_back(p);
  }
}

// Sends a moved port's last events on its old link (see Port::old_link_pending),
// behind whatever of that link is still parked. `closure`: the new port's node
// was lost before it confirmed; the old peer learns that our side is closed.
void Node::SendOnOldLink(const PortRef& ref, bool closure, Pending* out) {
  Port* port = ref.port();
  port->mu.AssertHeld();
  if (!port->old_link_pending) return;
  port->old_link_pending = false;
  const uint64_t seq = port->old_link_control_seq;
  std::vector<std::unique_ptr<Event>> events;
  if (closure) {
    events.push_back(std::make_unique<ObserveClosureEvent>(port->old_peer_port, ref.name(), seq,
                                                           port->old_link_last_sequence_num));
    // The second reserved number is never used: nothing follows a closure.
  } else {
    events.push_back(std::make_unique<ObserveProxyEvent>(port->old_peer_port, ref.name(), seq, name_,
                                                         ref.name(), port->peer_node,
                                                         port->peer_port));
    events.push_back(std::make_unique<UpdatePreviousPeerEvent>(
        port->old_peer_port, ref.name(), seq + 1, port->peer_node, port->peer_port));
  }
  const NodeName old_node = port->old_peer_node;
  const PortName old_port = port->old_peer_port;
  auto retired = std::find_if(
      port->retired.begin(), port->retired.end(),
      [&](const Port::RetiredLink& l) { return l.node == old_node && l.port == old_port; });
  for (auto& event : events) {
    if (retired != port->retired.end() && !retired->parked.empty()) {
      retired->parked.push_back(std::move(event));  // released when it is confirmed
    } else {
      Enqueue(ref, old_node, std::move(event), out);
    }
  }
}

// ---------------------------------------------------------------------------
// Public API.

Status Node::CreatePortPair(PortRef* a, PortRef* b) {
  MOAT_ASSERT(a != nullptr && b != nullptr);
  PortName na = PortName::Random(), nb = PortName::Random();
  auto pa = std::make_shared<Port>(State::kReceiving);
  auto pb = std::make_shared<Port>(State::kReceiving);
  {
    MutexLock la(&pa->mu);
    pa->peer_node = pa->prev_node = name_;
    pa->peer_port = pa->prev_port = nb;
  }
  {
    MutexLock lb(&pb->mu);
    pb->peer_node = pb->prev_node = name_;
    pb->peer_port = pb->prev_port = na;
  }
  MOAT_TRY(AddPort(na, pa));
  Status s = AddPort(nb, pb);
  if (!s.ok()) {
    ErasePort(na);
    return s;
  }
  *a = PortRef(na, pa);
  *b = PortRef(nb, pb);
  return OkStatus();
}

Status Node::GetPort(const PortName& name, PortRef* out) {
  *out = Lookup(name);
  if (!out->is_valid()) return Error(ErrorCode::kNotFound, "no port " + name.ToString());
  return OkStatus();
}

Status Node::GetStatus(const PortRef& ref, PortStatus* out) {
  MOAT_ASSERT(ref.is_valid(), "GetStatus on an invalid PortRef");
  Port* port = ref.port();
  MutexLock lock(&port->mu);
  if (port->state == State::kClosed) return Error(ErrorCode::kClosed, "port is closed");
  if (port->state != State::kReceiving) {
    return Error(ErrorCode::kFailedPrecondition, "port is not receiving (it moved)");
  }
  out->has_messages = port->message_queue.HasNextMessage();
  out->receiving_messages = port->CanAcceptMoreMessages();
  out->peer_closed = port->peer_closed;
  out->peer_remote = port->peer_node != name_;
  out->queued_message_count = port->message_queue.queued_message_count();
  out->queued_num_bytes = port->message_queue.queued_num_bytes();
  // A closed peer will read nothing more: its closure acknowledges
  // everything (Mojo), so a writer's unread quota clears with PEER_CLOSED.
  out->unacknowledged_message_count =
      port->peer_closed ? 0
                        : port->next_sequence_num_to_send - 1 - port->last_sequence_num_acknowledged;
  out->unacknowledged_bytes = port->peer_closed ? 0 : port->unacknowledged_bytes();
  out->send_would_wait = !port->peer_closed && SendWouldWaitLocked(port);
  if (out->send_would_wait || port->peer_closed) return OkStatus();
  // The usual case, every hop: the peer is remote and no transport is full.
  if (out->peer_remote && !delegate_->AnyTransportFull()) return OkStatus();
  // Where our writes really leave this node: the peer's node, or, if the
  // peer is a local proxy (a pipe just merged with or moved to another
  // process), the node it forwards to, where its own link may be unconfirmed.
  // Asked without our lock (one port lock at a time; the delegate locks its
  // own state).
  const NodeName peer_node = port->peer_node;
  const PortName peer_port = port->peer_port;
  port->mu.Unlock();
  NodeName exit_node = peer_node;
  bool wait = false;
  if (peer_node == name_) {
    exit_node = name_;
    PortRef peer = Lookup(peer_port);
    if (peer.is_valid()) {
      Port* p = peer.port();
      MutexLock peer_lock(&p->mu);
      if (p->state == State::kBuffering || p->state == State::kProxying) {
        exit_node = p->peer_node;
        wait = !p->peer_closed && SendWouldWaitLocked(p);
      }
    }
  }
  const bool transport_full = !wait && exit_node != name_ && delegate_->AnyTransportFull() &&
                              delegate_->WouldWaitToSend(exit_node);
  port->mu.Lock();
  out->send_would_wait = wait || transport_full;
  if (transport_full && !port->waits_for_send_space) {
    // Noted so that OnSendSpace reports this port.
    port->waits_for_send_space = true;
    port->send_space_node = exit_node;
    // Lock order: port lock, then ports_mu_.
    MutexLock nodes_lock(&ports_mu_);
    send_space_waiters_.push_back(ref);
  }
  return OkStatus();
}

// Whether a write on `port` would wait, apart from the transport (GetStatus).
bool Node::SendWouldWaitLocked(const Port* port) const {
  if (port->peer_node == name_) return false;  // local peer: nothing to wait for
  if (port->HasParkedEvents()) return true;
  if (!port->peer_confirmed &&
      port->next_control_sequence_num_to_send > limits::MAX_UNCONFIRMED_LINK_EVENTS) {
    return true;  // the next event would be parked
  }
  return port->unacknowledged_bytes() >= options_.unread_bytes_window;
}

// Only the ports that were told to wait are visited: a peer that makes our
// transport cross its mark again and again costs one visit per waiter.
void Node::OnSendSpace(const NodeName* node) {
  std::vector<PortRef> waiters;
  {
    MutexLock lock(&ports_mu_);
    waiters.swap(send_space_waiters_);
  }
  Pending pending;
  std::vector<PortRef> still_waiting;
  for (const PortRef& ref : waiters) {
    Port* port = ref.port();
    MutexLock lock(&port->mu);
    if (!port->waits_for_send_space) continue;
    if (node != nullptr && port->send_space_node != *node && port->state != State::kClosed) {
      still_waiting.push_back(ref);
      continue;
    }
    port->waits_for_send_space = false;
    pending.status_changed.push_back(ref);
  }
  if (!still_waiting.empty()) {
    MutexLock lock(&ports_mu_);
    send_space_waiters_.insert(send_space_waiters_.end(), still_waiting.begin(),
                               still_waiting.end());
  }
  Flush(&pending);
}

size_t Node::SendHeadroom(const PortRef& ref) {
  MOAT_ASSERT(ref.is_valid(), "SendHeadroom on an invalid PortRef");
  Port* port = ref.port();
  bool remote;
  {
    MutexLock lock(&port->mu);
    remote = port->state == State::kReceiving && port->peer_node != name_;
  }
  return remote ? kUserMessageEventHeadSize + delegate_->EnvelopeHeadroom() : 0;
}

// Turns a receiving port (locked) into a kBuffering port that will forward to
// a new port `*new_name` on `to_node`, created there from `*desc`.
void Node::ConvertToProxy(const PortRef& ref, const NodeName& to_node, PortName* new_name,
                          PortDescriptor* desc, Pending* out) {
  Port* port = ref.port();
  port->mu.AssertHeld();
  const PortName& self = ref.name();
  const NodeName& self_node = name_;
  *new_name = PortName::Random();
  desc->peer_node = port->peer_node;
  desc->peer_port = port->peer_port;
  desc->referring_node = self_node;
  desc->referring_port = self;
  desc->next_sequence_num_to_send = port->next_sequence_num_to_send;
  desc->next_sequence_num_to_receive = port->message_queue.next_sequence_num();
  desc->peer_closed = port->peer_closed;
  desc->last_sequence_num_to_receive = kInvalidSequenceNum;
  if (port->peer_closed) {
    if (port->peer_lost_unexpectedly) {
      port->last_sequence_num_to_receive = port->message_queue.LastContiguousSequenceNum();
    }
    desc->last_sequence_num_to_receive = port->last_sequence_num_to_receive;
    port->remove_proxy_on_last_message = true;
  }
  if (port->peer_closed) {
    // The old peer will hear from the new port from now on.
    SendToPeer(ref, std::make_unique<UpdatePreviousPeerEvent>(kInvalidPortName, kInvalidPortName,
                                                             0, to_node, *new_name),
               out);
  } else {
    // The old link stays open until the new port exists: then it carries
    // our bypass request and the UpdatePreviousPeer (SendOnOldLink).
    port->old_link_pending = true;
    port->old_peer_node = port->peer_node;
    port->old_peer_port = port->peer_port;
    port->old_link_control_seq = port->next_control_sequence_num_to_send;
    port->next_control_sequence_num_to_send += 2;
    port->old_link_last_sequence_num = port->next_sequence_num_to_send - 1;
  }
  // A new port on a lost node never confirms: close now (PRT-14), which
  // tells the old peer on the old link (if it is still open).
  out->check_reachable.emplace_back(ref, to_node);
  RetireLink(port, self_node);
  port->peer_node = to_node;
  port->peer_port = *new_name;
  port->next_control_sequence_num_to_send = kInitialSequenceNum;
  // Confirmed by the new port's PortAccepted, which also ends kBuffering.
  port->peer_confirmed = to_node == self_node;
  port->state = State::kBuffering;
  port->send_cv.SignalAll();  // a writer waiting on this end: it moved
  // A read-ack request the writer is waiting on moves with the reader (Mojo
  // forwards it): otherwise the writer's unread count never falls and a
  // writer blocked on WRITABLE under its unread quota waits forever. Held
  // until the new port exists, which answers it from its own read position.
  if (port->sequence_num_to_acknowledge != 0) {
    SendToPeer(ref,
               std::make_unique<UserMessageReadAckRequestEvent>(
                   kInvalidPortName, kInvalidPortName, 0, port->sequence_num_to_acknowledge),
               out);
    port->sequence_num_to_acknowledge = 0;
  }
}

Status Node::SendUserMessage(const PortRef& ref, std::unique_ptr<UserMessage> msg) {
  MOAT_ASSERT(ref.is_valid(), "SendUserMessage on an invalid PortRef");
  MOAT_ASSERT(msg != nullptr, "SendUserMessage with a null message");
  MOAT_ASSERT(msg->ports.size() <= limits::MAX_MESSAGE_HANDLE_COUNT, "message carries ",
              msg->ports.size(), " ports, MAX_MESSAGE_HANDLE_COUNT ",
              limits::MAX_MESSAGE_HANDLE_COUNT);
  Pending pending;
  bool unread_full = false;
  std::vector<PortRef> attached;
  std::vector<PortRef> all = {ref};
  for (const PortName& name : msg->ports) {
    PortRef a = Lookup(name);
    if (!a.is_valid()) {
      return Error(ErrorCode::kInvalidArgument, "attached port " + name.ToString() + " not found");
    }
    for (const PortRef& other : all) {
      if (other == a) {
        return Error(ErrorCode::kInvalidArgument,
                     "attached port " + name.ToString() + " is the sending port or a duplicate");
      }
    }
    attached.push_back(a);
    all.push_back(a);
  }
  {
    MultiPortLock locks(all);
    Port* port = ref.port();
    port->mu.AssertHeld();
    if (port->state != State::kReceiving) {
      return Error(port->state == State::kClosed ? ErrorCode::kClosed
                                                 : ErrorCode::kFailedPrecondition,
                   "sending port is not receiving");
    }
    if (port->peer_closed) return Error(ErrorCode::kPeerClosed, "peer closed");
    for (const PortRef& a : attached) {
      Port* ap = a.port();
      ap->mu.AssertHeld();
      if (ap->state != State::kReceiving) {
        return Error(ErrorCode::kInvalidArgument,
                     "attached port " + a.name().ToString() + " is not a receiving port");
      }
      if ((port->peer_node == name_ && port->peer_port == a.name()) ||
          (ap->peer_node == name_ && ap->peer_port == ref.name())) {
        return Error(ErrorCode::kInvalidArgument,
                     "cannot send a port's own peer " + a.name().ToString() + " through it");
      }
    }
    // Validated: from here on nothing fails.
    const NodeName dest = port->peer_node;
    port->bytes_sent += msg->size_in_bytes();
    auto event = std::make_unique<UserMessageEvent>(kInvalidPortName, kInvalidPortName, 0,
                                                    port->next_sequence_num_to_send++,
                                                    std::move(msg));
    for (size_t i = 0; i < attached.size(); ++i) {
      Port* ap = attached[i].port();
      ap->mu.AssertHeld();
      PortDescriptor desc;
      ConvertToProxy(attached[i], dest, &event->message->ports[i], &desc, &pending);
      event->port_descriptors.push_back(desc);
    }
    SendToPeer(ref, std::move(event), &pending);
    MaybeRequestWindowAck(ref, &pending);
    unread_full = dest != name_ && port->unacknowledged_bytes() >= BlockingWriteLimit();
  }
  Flush(&pending);
  if (unread_full) AwaitUnreadWindow(ref);
  return OkStatus();
}

// The writer's half of the unread-bytes window: once half a window is
// unacknowledged, ask the reader to acknowledge the last message sent; its
// answer credits everything up to it (OnReadAck). One request at a time, so
// a writer past the window always has one outstanding.
void Node::MaybeRequestWindowAck(const PortRef& ref, Pending* out) {
  Port* port = ref.port();
  port->mu.AssertHeld();
  if (port->window_ack_seq != 0 || port->peer_closed ||
      port->next_sequence_num_to_send == kInitialSequenceNum ||
      port->unacknowledged_bytes() < options_.unread_bytes_window / 2) {
    return;
  }
  port->window_ack_seq = port->next_sequence_num_to_send - 1;
  port->window_ack_bytes = port->bytes_sent;
  SendToPeer(ref,
             std::make_unique<UserMessageReadAckRequestEvent>(kInvalidPortName, kInvalidPortName,
                                                              0, port->window_ack_seq),
             out);
}

// Past the window a pipe is not WRITABLE, and a non-blocking writer sees
// SHOULD_WAIT (PortStatus::send_would_wait); a blocking writer goes on, so
// that writing a burst and then reading it (Mojo programs do) keeps working.
// It waits for the reader only at half the reader's cap, where the next
// (largest) message could otherwise break the pipe; never where waiting
// could deadlock (see AwaitConfirmations).
size_t Node::BlockingWriteLimit() const { return options_.max_unread_bytes / 2; }

void Node::AwaitUnreadWindow(const PortRef& ref) {
  if (t_no_wait_depth > 0 || t_local_drain != nullptr || !delegate_->SendersMayWaitForPeers()) {
    return;
  }
  Port* port = ref.port();
  MutexLock lock(&port->mu);
  while (port->state == State::kReceiving && !port->peer_closed && port->peer_node != name_ &&
         port->unacknowledged_bytes() >= BlockingWriteLimit()) {
    port->send_cv.Wait(&port->mu);
  }
}

Status Node::GetMessage(const PortRef& ref, std::unique_ptr<UserMessage>* msg) {
  MOAT_ASSERT(ref.is_valid() && msg != nullptr);
  msg->reset();
  Pending pending;
  std::unique_ptr<UserMessageEvent> event;
  {
    Port* port = ref.port();
    MutexLock lock(&port->mu);
    if (port->state == State::kClosed) return Error(ErrorCode::kClosed, "port is closed");
    if (port->state != State::kReceiving) {
      return Error(ErrorCode::kFailedPrecondition, "port is not receiving (it moved)");
    }
    if (!port->message_queue.HasNextMessage()) {
      if (!port->CanAcceptMoreMessages()) return Error(ErrorCode::kPeerClosed, "peer closed");
      return OkStatus();
    }
    event = port->message_queue.PopNextMessage();
    if (port->sequence_num_to_acknowledge != 0 &&
        event->sequence_num >= port->sequence_num_to_acknowledge) {
      port->sequence_num_to_acknowledge = 0;
      SendToPeer(ref,
                 std::make_unique<UserMessageReadAckEvent>(kInvalidPortName, kInvalidPortName, 0,
                                                           event->sequence_num),
                 &pending);
    }
  }
  *msg = std::move(event->message);
  Flush(&pending);
  return OkStatus();
}

Status Node::ClosePortInternal(const PortRef& ref, Pending* out) {
  ClosedPortRemains remains;
  {
    Port* port = ref.port();
    MutexLock lock(&port->mu);
    if (port->state == State::kClosed) return Error(ErrorCode::kClosed, "port already closed");
    if (port->state != State::kReceiving) {
      return Error(ErrorCode::kFailedPrecondition, "port is not receiving (it moved)");
    }
    SendToPeer(ref,
               std::make_unique<ObserveClosureEvent>(kInvalidPortName, kInvalidPortName, 0,
                                                     port->next_sequence_num_to_send - 1),
               out);
    remains = MarkClosedLocked(port);
  }
  FinishClosing(ref, std::move(remains), out);
  return OkStatus();
}

Status Node::ClosePort(const PortRef& ref) {
  MOAT_ASSERT(ref.is_valid(), "ClosePort on an invalid PortRef");
  Pending pending;
  Status s = ClosePortInternal(ref, &pending);
  Flush(&pending);
  return s;
}

void Node::ClosePortsByName(const std::vector<PortName>& names, Pending* out) {
  for (const PortName& name : names) {
    PortRef ref = Lookup(name);
    if (ref.is_valid()) (void)ClosePortInternal(ref, out);
  }
}

// Destroys an event that will never be processed without leaking the ports
// it carries: they are created here and closed, so their peers see closure.
// An Error means `from` sent descriptors no real port can have (nothing was
// created): the caller blames `from`.
Status Node::DiscardEvent(const NodeName& from, std::unique_ptr<Event> event, Pending* out) {
  MaybeConfirmLink(from, *event, out);
  if (event->type() == EventType::kUserMessage) {
    auto* m = static_cast<UserMessageEvent*>(event.get());
    if (!m->port_descriptors.empty()) MOAT_TRY(AcceptPorts(from, m, out));
    for (const PortName& p : m->message->ports) out->ports_to_close.push_back(p);
  }
  return OkStatus();
}

// Buffered events from `from` discarded while handling something else: a
// bad one is reported through the delegate (BadEventFrom).
void Node::DiscardBuffered(std::vector<Port::BufferedEvent> buffered, Pending* out) {
  for (auto& b : buffered) {
    Status s = DiscardEvent(b.from, std::move(b.event), out);
    if (!s.ok() && b.from != name_) out->bad_nodes.emplace_back(b.from, std::move(s).error());
  }
}

Status Node::SetAcknowledgeRequestInterval(const PortRef& ref, uint64_t interval) {
  MOAT_ASSERT(ref.is_valid());
  Pending pending;
  {
    Port* port = ref.port();
    MutexLock lock(&port->mu);
    if (port->state != State::kReceiving) {
      return Error(ErrorCode::kFailedPrecondition, "port is not receiving");
    }
    port->sequence_num_acknowledge_interval = interval;
    if (interval != 0 && !port->peer_closed) {
      SendToPeer(ref,
                 std::make_unique<UserMessageReadAckRequestEvent>(
                     kInvalidPortName, kInvalidPortName, 0,
                     port->last_sequence_num_acknowledged + interval),
                 &pending);
    }
  }
  Flush(&pending);
  return OkStatus();
}

// ---------------------------------------------------------------------------
// Merging.

static bool IsUnused(const Port* port) ABSL_EXCLUSIVE_LOCKS_REQUIRED(port->mu) {
  return port->next_sequence_num_to_send == kInitialSequenceNum &&
         port->message_queue.next_sequence_num() == kInitialSequenceNum;
}

// Whether `target` is among `names` or carried (transitively) by a message
// queued at one of them, ports of this node. Locks one port at a time (they
// are in messages: not reachable by any embedder, see the lock order in
// node.h). Bounded: every port is visited once.
bool Node::Carries(std::vector<PortName> names, const PortName& target,
                   const PortName& held) const {
  std::set<PortName> seen;
  while (!names.empty()) {
    const PortName name = names.back();
    names.pop_back();
    if (name == target) return true;
    if (name == held || !seen.insert(name).second) continue;  // held: its lock is ours
    PortRef ref = Lookup(name);
    if (!ref.is_valid()) continue;
    MutexLock lock(&ref.port()->mu);
    ref.port()->message_queue.AppendCarriedPorts(&names);
  }
  return false;
}

Status Node::MergePortsInternal(const PortRef& a, const PortRef& b, bool close_on_failure,
                                Pending* out) {
  auto fail = [&](std::string why) -> Status {
    if (close_on_failure) {
      (void)ClosePortInternal(a, out);
      if (!(a == b)) (void)ClosePortInternal(b, out);
    }
    return Error(ErrorCode::kFailedPrecondition, std::move(why));
  };
  if (a == b) return fail("cannot merge a port with itself");
  std::string problem;
  {
    MultiPortLock locks({a, b});
    Port* pa = a.port();
    Port* pb = b.port();
    pa->mu.AssertHeld();
    pb->mu.AssertHeld();
    if (pa->state != State::kReceiving || pb->state != State::kReceiving) {
      problem = "both ports must be receiving";
    } else if ((pa->peer_node == name_ && pa->peer_port == b.name()) ||
               (pb->peer_node == name_ && pb->peer_port == a.name())) {
      problem = "cannot merge a port with its own peer";
    } else if (!IsUnused(pa) || !IsUnused(pb)) {
      problem = "cannot merge a port that already sent or read messages";
    } else {
      Port* both[2] = {pa, pb};
      const PortRef* refs[2] = {&a, &b};
      for (int i = 0; i < 2; ++i) {
        Port* x = both[i];
        x->mu.AssertHeld();
        // x's old peer will receive from the other port from now on.
        SendToPeer(*refs[i],
                   std::make_unique<UpdatePreviousPeerEvent>(kInvalidPortName, kInvalidPortName,
                                                             0, name_, refs[1 - i]->name()),
                   out);
        RetireLink(x, name_);
      }
      std::swap(pa->peer_node, pb->peer_node);
      std::swap(pa->peer_port, pb->peer_port);
      for (int i = 0; i < 2; ++i) {
        Port* x = both[i];
        x->mu.AssertHeld();
        x->next_control_sequence_num_to_send = kInitialSequenceNum;
        // The new peer switches to x only after the other port's
        // UpdatePreviousPeer, which may itself still be held back.
        x->peer_confirmed = x->peer_node == name_;
        x->state = State::kProxying;
        if (x->sequence_num_to_acknowledge != 0) {
          // The reader is now the other pipe's far end: the request moves on.
          SendToPeer(*refs[i],
                     std::make_unique<UserMessageReadAckRequestEvent>(
                         kInvalidPortName, kInvalidPortName, 0, x->sequence_num_to_acknowledge),
                     out);
          x->sequence_num_to_acknowledge = 0;
        }
        if (x->peer_closed) {
          // x's incoming side is finished: the far end it now feeds must learn.
          if (x->peer_lost_unexpectedly) {
            x->last_sequence_num_to_receive = x->message_queue.LastContiguousSequenceNum();
          }
          x->remove_proxy_on_last_message = true;
          SendToPeer(*refs[i],
                     std::make_unique<ObserveClosureEvent>(kInvalidPortName, kInvalidPortName, 0,
                                                           x->last_sequence_num_to_receive),
                     out);
        }
      }
    }
  }
  if (!problem.empty()) return fail(problem);
  for (const PortRef* r : {&a, &b}) {
    NodeName new_peer;
    {
      MutexLock lock(&r->port()->mu);
      new_peer = r->port()->peer_node;
    }
    // The other port's peer may live on a node that is already lost: then
    // this proxy would forward into the void forever (PRT-14).
    out->check_reachable.emplace_back(*r, new_peer);
    ForwardQueuedFromProxy(*r, out);
    bool remove;
    {
      MutexLock lock(&r->port()->mu);
      remove = r->port()->remove_proxy_on_last_message;
    }
    if (remove) {
      TryRemoveProxy(*r, out);
    } else {
      InitiateProxyRemoval(*r, out);
    }
  }
  return OkStatus();
}

Status Node::MergeLocalPorts(const PortRef& a, const PortRef& b) {
  MOAT_ASSERT(a.is_valid() && b.is_valid());
  Pending pending;
  Status s = MergePortsInternal(a, b, /*close_on_failure=*/false, &pending);
  Flush(&pending);
  return s;
}

Status Node::MergePorts(const PortRef& local, const NodeName& node, const PortName& remote) {
  MOAT_ASSERT(local.is_valid());
  Pending pending;
  {
    Port* port = local.port();
    MutexLock lock(&port->mu);
    if (port->state != State::kReceiving) {
      return Error(ErrorCode::kFailedPrecondition, "port to merge must be receiving");
    }
    if (!IsUnused(port)) {
      return Error(ErrorCode::kFailedPrecondition,
                   "cannot merge a port that already sent or read messages");
    }
    if (node == name_ && ((port->peer_node == name_ && port->peer_port == remote) ||
                          remote == local.name())) {
      return Error(ErrorCode::kFailedPrecondition, "cannot merge a port with itself or its peer");
    }
    PortName new_name;
    PortDescriptor desc;
    ConvertToProxy(local, node, &new_name, &desc, &pending);
    pending.Send(node, std::make_unique<MergePortEvent>(remote, new_name, desc));
    pending.check_reachable.emplace_back(local, node);
  }
  Flush(&pending);
  return OkStatus();
}

Status Node::OfferForMerge(const PortRef& ref, const NodeName& merger) {
  MOAT_ASSERT(ref.is_valid() && merger.is_valid());
  Port* port = ref.port();
  MutexLock lock(&port->mu);
  if (port->state != State::kReceiving || !IsUnused(port)) {
    return Error(ErrorCode::kFailedPrecondition,
                 "only an unused receiving port can be offered for merging");
  }
  port->merge_offered_to = merger;
  return OkStatus();
}

// ---------------------------------------------------------------------------
// Proxies.

void Node::ForwardQueuedFromProxy(const PortRef& ref, Pending* out) {
  Port* port = ref.port();
  MutexLock lock(&port->mu);
  if (port->state != State::kProxying) return;
  while (auto event = port->message_queue.PopNextMessage()) {
    // Ports attached to a message held by a proxy were accepted here and no
    // embedder can reach them; they move on with the message. A proxy's lock
    // may be held while locking them (they are never locked first).
    std::vector<PortName> kept;
    event->port_descriptors.clear();
    for (const PortName& name : event->message->ports) {
      // A port that is (or carries) the port this message goes to would
      // end up in its own queue and be forwarded into itself forever (a
      // merge fed it messages sent before it was checked): closed instead,
      // so its peer sees closure.
      if (port->peer_node == name_ && Carries({name}, port->peer_port, ref.name())) {
        out->ports_to_close.push_back(name);
        continue;
      }
      PortRef a = Lookup(name);
      if (!a.is_valid()) continue;  // lost with its node meanwhile: drop it
      Port* ap = a.port();
      MutexLock alock(&ap->mu);
      if (ap->state != State::kReceiving) continue;
      PortName new_name;
      PortDescriptor desc;
      ConvertToProxy(a, port->peer_node, &new_name, &desc, out);
      kept.push_back(new_name);
      event->port_descriptors.push_back(desc);
    }
    event->message->ports = std::move(kept);
    SendToPeer(ref, std::move(event), out);
  }
}

void Node::InitiateProxyRemoval(const PortRef& ref, Pending* out) {
  Port* port = ref.port();
  MutexLock lock(&port->mu);
  if (port->state != State::kProxying) return;
  SendToPeer(ref,
             std::make_unique<ObserveProxyEvent>(kInvalidPortName, kInvalidPortName, 0, name_,
                                                 ref.name(), port->peer_node, port->peer_port),
             out);
}

void Node::TryRemoveProxy(const PortRef& ref, Pending* out) {
  std::vector<Port::BufferedEvent> buffered;
  bool erase;
  {
    Port* port = ref.port();
    MutexLock lock(&port->mu);
    if (port->state != State::kProxying || !port->remove_proxy_on_last_message) return;
    if (port->last_sequence_num_to_receive != port->message_queue.next_sequence_num() - 1) return;
    if (port->send_on_proxy_removal) {
      SendToPeer(ref, std::move(port->send_on_proxy_removal), out);
    }
    if (!port->peer_closed) {
      // Bypassed: our previous hop now sends to our peer directly.
      SendToPeer(ref,
                 std::make_unique<UpdatePreviousPeerEvent>(kInvalidPortName, kInvalidPortName, 0,
                                                           port->prev_node, port->prev_port),
                 out);
      if (port->peer_node != name_ && port->prev_node != port->peer_node) {
        // Lock order: port lock, then ports_mu_.
        MutexLock nodes_lock(&ports_mu_);
        removed_proxies_.push_back(
            {ref.name(), port->peer_node, port->peer_port, port->prev_node, port->prev_port});
        // Attack: proxy after proxy (a bouncing port) growing this memory.
        if (removed_proxies_.size() > limits::MAX_REMEMBERED_REMOVED_PROXIES) {
          removed_proxies_.pop_front();
        }
      }
    }
    port->state = State::kClosed;
    buffered = std::move(port->buffered_events);
    port->buffered_events.clear();
    erase = MayEraseNow(port);
  }
  if (erase) ErasePort(ref.name());
  DiscardBuffered(std::move(buffered), out);
}

// ---------------------------------------------------------------------------
// Incoming events.

Status Node::AcceptEvent(const NodeName& from, std::unique_ptr<Event> event) {
  MOAT_ASSERT(event != nullptr, "AcceptEvent with a null event");
  NoWaitScope no_wait;
  {
    MutexLock lock(&ports_mu_);
    // A late event from a node already lost (e.g. cut off for a violation)
    // must not recreate state that its loss cleaned up.
    if (lost_nodes_.contains(from)) return OkStatus();
  }
  AcceptingScope accepting(&accepting_);
  Pending pending;
  Status s = AcceptEventFrom(from, std::move(event), &pending);
  Flush(&pending);
  return s;
}

Status Node::AcceptEventFrom(const NodeName& from, std::unique_ptr<Event> event, Pending* out) {
  if (from != name_ && event->type() == EventType::kUserMessage) {
    // Blamed on arrival, before the message is buffered, queued or dropped:
    // whatever later happens to it, its ports can then be created.
    const auto& m = static_cast<const UserMessageEvent&>(*event);
    if (!m.port_descriptors.empty()) MOAT_TRY(ValidateAttachedPorts(from, m));
  }
  PortRef ref = Lookup(event->port_name);
  if (!event->is_ring_event()) return DispatchEvent(ref, from, std::move(event), out);
  if (!ref.is_valid()) {
    // Normal after closure or proxy removal: drop, but close carried ports
    // (invalid ones are the sender's fault all the same).
    return DiscardEvent(from, std::move(event), out);
  }
  Port* port = ref.port();
  {
    MutexLock lock(&port->mu);
    while (port->dispatching) port->dispatch_done.Wait(&port->mu);
    if (port->state == State::kClosed) {
      port->mu.Unlock();
      Status discarded = DiscardEvent(from, std::move(event), out);
      port->mu.Lock();
      return discarded;
    }
    const bool from_prev = from == port->prev_node && event->from_port == port->prev_port;
    const bool in_order = event->control_sequence_num == port->next_control_sequence_num_to_receive;
    if (!from_prev || !in_order) {
      // An event from another hop (node, port) is buffered, never taken as a
      // forgery even if it names the previous hop's port: port names are
      // unique only per node, and an honest node can hold a port of that
      // name that a hostile node made it create (a descriptor naming the
      // port). Blaming `from` would let that node get an honest one cut off.
      if (from_prev) {
        // Attack: replaying an already processed event (a second delivery).
        MOAT_REQUIRE(event->control_sequence_num > port->next_control_sequence_num_to_receive,
                     ErrorCode::kProtocolViolation, "control_sequence_num ",
                     event->control_sequence_num, " already processed (next expected ",
                     port->next_control_sequence_num_to_receive, ")");
      }
      // Attack: flooding a port with events that can never be processed
      // (unknown hop, far-future sequence number), buffered without bound.
      // Only other nodes are capped: this node's own events are trusted, and
      // one preempted local sender legitimately holds back every event that
      // other local threads send meanwhile (they all buffer behind its gap);
      // refusing one of those would lose it and stall the port for good.
      if (from != name_ && port->buffered_events.size() >= limits::MAX_PORT_BUFFERED_EVENTS) {
        // PRT-13: the node that overflows the buffer need not be the one
        // that filled it: a hostile node can make an honest one send here
        // (its descriptors), but only a minority of the cap
        // (MAX_VOUCHED_UNCONFIRMED_LINKS). The node holding most of it is
        // blamed; if that is not `from`, its events here are dropped (they
        // go with it anyway; no port was created from them) to make room.
        const NodeName top = TopBufferingNode(*port, from);
        if (top != from) {
          std::erase_if(port->buffered_events,
                        [&](const Port::BufferedEvent& b) { return b.from == top; });
          out->bad_nodes.emplace_back(
              top, Error(ErrorCode::kLimitExceeded,
                         ::moat::internal::Concat(
                             "port ", ref.name().ToString(), " buffers ",
                             limits::MAX_PORT_BUFFERED_EVENTS,
                             " events not from its previous hop in order, most of them from node ",
                             top.ToString(), ", MAX_PORT_BUFFERED_EVENTS ",
                             limits::MAX_PORT_BUFFERED_EVENTS)));
        }
      }
      MOAT_REQUIRE(from == name_ ||
                       port->buffered_events.size() < limits::MAX_PORT_BUFFERED_EVENTS,
                   ErrorCode::kLimitExceeded, "port ", ref.name().ToString(), " buffers ",
                   port->buffered_events.size(),
                   " events not from its previous hop in order, MAX_PORT_BUFFERED_EVENTS ",
                   limits::MAX_PORT_BUFFERED_EVENTS);
      if (from == name_ && event->origin.is_valid()) {
        // Attack (PRT-16): this node's own events that another node caused
        // (from ports its descriptors created) piling up at one port; that
        // node (the origin) is blamed and the event discarded.
        Status local = CheckLocalBuffer(*port, ref.name(), *event);
        if (!local.ok()) {
          const NodeName origin = event->origin;
          port->mu.Unlock();
          (void)DiscardEvent(from, std::move(event), out);
          port->mu.Lock();
          out->bad_nodes.emplace_back(origin, std::move(local).error());
          return OkStatus();
        }
      }
      port->buffered_events.push_back({from, std::move(event)});
      return OkStatus();
    }
    ++port->next_control_sequence_num_to_receive;
    port->dispatching = true;
  }
  MaybeConfirmLink(from, *event, out);
  Status result = DispatchEvent(ref, from, std::move(event), out);
  // Events that were waiting for this one.
  for (;;) {
    std::unique_ptr<Event> next;
    NodeName next_from;
    {
      MutexLock lock(&port->mu);
      auto it = std::find_if(port->buffered_events.begin(), port->buffered_events.end(),
                             [&](const Port::BufferedEvent& b) {
                               port->mu.AssertHeld();
                               return b.from == port->prev_node &&
                                      b.event->from_port == port->prev_port &&
                                      b.event->control_sequence_num ==
                                          port->next_control_sequence_num_to_receive;
                             });
      if (it == port->buffered_events.end() || port->state == State::kClosed) {
        port->dispatching = false;
        port->dispatch_done.SignalAll();
        break;
      }
      next = std::move(it->event);
      next_from = it->from;
      port->buffered_events.erase(it);
      ++port->next_control_sequence_num_to_receive;
    }
    MaybeConfirmLink(next_from, *next, out);
    Status s = DispatchEvent(ref, next_from, std::move(next), out);
    if (!s.ok()) {
      if (next_from == from) {
        if (result.ok()) result = std::move(s);
      } else if (next_from != name_) {
        out->bad_nodes.emplace_back(next_from, std::move(s).error());
      }
    }
  }
  return result;
}

// The other node with the most events buffered at `port`, counting one more
// for `from` (ties go to `from`).
NodeName Node::TopBufferingNode(const Port& port, const NodeName& from) const {
  std::map<NodeName, size_t> counts;
  counts[from] = 1;
  for (const Port::BufferedEvent& b : port.buffered_events) {
    if (b.from != name_) ++counts[b.from];
  }
  NodeName top = from;
  for (const auto& [node, count] : counts) {
    if (count > counts[top]) top = node;
  }
  return top;
}

// PRT-16: the bounds on this node's own buffered events that node
// event.origin caused (limits::MAX_PORT_BUFFERED_LOCAL_*).
Status Node::CheckLocalBuffer(const Port& port, const PortName& self, const Event& event) const {
  size_t control = 0, messages = 0, bytes = 0;
  auto size_of = [](const Event& e) {
    return e.type() == EventType::kUserMessage
               ? static_cast<const UserMessageEvent&>(e).message->size_in_bytes()
               : size_t{0};
  };
  for (const Port::BufferedEvent& b : port.buffered_events) {
    if (b.from != name_ || b.event->origin != event.origin) continue;
    if (b.event->type() == EventType::kUserMessage) {
      ++messages;
      bytes += size_of(*b.event);
    } else {
      ++control;
    }
  }
  if (event.type() != EventType::kUserMessage) {
    MOAT_REQUIRE(control < limits::MAX_PORT_BUFFERED_LOCAL_CONTROL_EVENTS,
                 ErrorCode::kLimitExceeded, "port ", self.ToString(), " buffers ", control,
                 " control events its own node sent for ports node ", event.origin.ToString(),
                 " created, MAX_PORT_BUFFERED_LOCAL_CONTROL_EVENTS ",
                 limits::MAX_PORT_BUFFERED_LOCAL_CONTROL_EVENTS);
    return OkStatus();
  }
  MOAT_REQUIRE(messages < limits::MAX_PORT_BUFFERED_LOCAL_MESSAGES &&
                   bytes + size_of(event) <= limits::MAX_PORT_BUFFERED_LOCAL_BYTES,
               ErrorCode::kLimitExceeded, "port ", self.ToString(), " buffers ", messages,
               " messages (", bytes, " bytes) its own node sent for ports node ",
               event.origin.ToString(), " created, MAX_PORT_BUFFERED_LOCAL_MESSAGES ",
               limits::MAX_PORT_BUFFERED_LOCAL_MESSAGES, ", MAX_PORT_BUFFERED_LOCAL_BYTES ",
               limits::MAX_PORT_BUFFERED_LOCAL_BYTES);
  return OkStatus();
}

Status Node::DispatchEvent(const PortRef& ref, const NodeName& from, std::unique_ptr<Event> event,
                           Pending* out) {
  switch (event->type()) {
    case EventType::kUserMessage:
      return OnUserMessage(
          ref, from,
          std::unique_ptr<UserMessageEvent>(static_cast<UserMessageEvent*>(event.release())), out);
    case EventType::kPortAccepted:
      return OnPortAccepted(ref, from, *static_cast<PortAcceptedEvent*>(event.get()), out);
    case EventType::kObserveProxy:
      return OnObserveProxy(
          ref, std::unique_ptr<ObserveProxyEvent>(static_cast<ObserveProxyEvent*>(event.release())),
          out);
    case EventType::kObserveProxyAck:
      return OnObserveProxyAck(ref, *static_cast<ObserveProxyAckEvent*>(event.get()), out);
    case EventType::kObserveClosure:
      return OnObserveClosure(
          ref,
          std::unique_ptr<ObserveClosureEvent>(static_cast<ObserveClosureEvent*>(event.release())),
          out);
    case EventType::kMergePort:
      return OnMergePort(ref, from, *static_cast<MergePortEvent*>(event.get()), out);
    case EventType::kUserMessageReadAckRequest:
      return OnReadAckRequest(ref, *static_cast<UserMessageReadAckRequestEvent*>(event.get()),
                              out);
    case EventType::kUserMessageReadAck:
      return OnReadAck(ref, *static_cast<UserMessageReadAckEvent*>(event.get()), out);
    case EventType::kUpdatePreviousPeer:
      return OnUpdatePreviousPeer(ref, from, *static_cast<UpdatePreviousPeerEvent*>(event.get()),
                                  out);
    case EventType::kRouteLost:
      return OnRouteLost(ref, from, *static_cast<RouteLostEvent*>(event.get()), out);
  }
  MOAT_UNREACHABLE("event type ", static_cast<uint32_t>(event->type()));
}

Status Node::ValidateDescriptor(const NodeName& from, const PortName& name,
                                const PortDescriptor& desc) const {
  // Attack: a descriptor naming a proxy on another node, so that node (not the
  // sender) would be asked to forward to the new port.
  MOAT_REQUIRE(desc.referring_node == from, ErrorCode::kProtocolViolation,
               "port descriptor referring_node ", desc.referring_node.ToString(),
               " is not the sending node ", from.ToString());
  // Attack: descriptors in states no real port can have (stale counters,
  // closure before already-delivered messages, missing names).
  MOAT_REQUIRE(name.is_valid() && desc.peer_node.is_valid() && desc.peer_port.is_valid() &&
                   desc.referring_port.is_valid() &&
                   desc.next_sequence_num_to_send >= kInitialSequenceNum &&
                   desc.next_sequence_num_to_receive >= kInitialSequenceNum &&
                   desc.next_sequence_num_to_send != kInvalidSequenceNum &&
                   desc.next_sequence_num_to_receive != kInvalidSequenceNum &&
                   (desc.peer_closed
                        ? (desc.last_sequence_num_to_receive != kInvalidSequenceNum &&
                           desc.last_sequence_num_to_receive + 1 >= desc.next_sequence_num_to_receive)
                        : desc.last_sequence_num_to_receive == kInvalidSequenceNum),
               ErrorCode::kProtocolViolation, "port descriptor for ", name.ToString(),
               " has an impossible state");
  // Attack: a descriptor reusing an existing port's name to hijack its traffic.
  MOAT_REQUIRE(!Lookup(name).is_valid(), ErrorCode::kProtocolViolation, "port name ",
               name.ToString(), " is already in use");
  return OkStatus();
}

Status Node::AcceptPort(const NodeName& from, const PortName& name, const PortDescriptor& desc,
                        Pending* out) {
  MOAT_TRY(ValidateDescriptor(from, name, desc));
  auto port = std::make_shared<Port>(State::kReceiving);
  {
    MutexLock lock(&port->mu);
    port->peer_node = desc.peer_node;
    port->peer_port = desc.peer_port;
    port->prev_node = desc.referring_node;
    port->prev_port = desc.referring_port;
    port->next_sequence_num_to_send = desc.next_sequence_num_to_send;
    port->message_queue = MessageQueue(desc.next_sequence_num_to_receive);
    port->peer_closed = desc.peer_closed;
    port->last_sequence_num_to_receive = desc.last_sequence_num_to_receive;
    // Acks are counted from where the port is now.
    port->last_sequence_num_acknowledged = desc.next_sequence_num_to_send - 1;
    // The peer switches to us on the proxy's UpdatePreviousPeer, which
    // travels from another node: PRT-11.
    port->peer_confirmed = desc.peer_node == name_;
    port->origin = from == name_ ? NodeName() : from;
    port->vouched = from != name_ && desc.peer_node != name_ && desc.peer_node != from;
  }
  std::shared_ptr<Port> keep = port;
  MOAT_TRY(AddPort(name, std::move(port), from == name_ ? NodeName() : from));
  if (from != name_ && desc.peer_node != name_ && desc.peer_node != from &&
      IsReachable(desc.peer_node)) {  // else closed at once (PRT-14): nothing waits there
    MutexLock lock(&ports_mu_);
    const VouchKey key{from, desc.peer_node, desc.peer_port};
    vouched_[key].insert(name);
    vouched_by_port_.emplace(name, key);
  }
  out->Send(desc.referring_node,
            std::make_unique<PortAcceptedEvent>(desc.referring_port, name));
  out->check_reachable.emplace_back(PortRef(name, std::move(keep)), desc.peer_node);
  return OkStatus();
}

Status Node::ValidateAttachedPorts(const NodeName& from, const UserMessageEvent& event) const {
  // The decoder guarantees this for remote events; local ones are built so.
  MOAT_REQUIRE(event.port_descriptors.size() == event.message->ports.size(),
               ErrorCode::kMalformed, "message has ", event.message->ports.size(),
               " ports but ", event.port_descriptors.size(), " descriptors");
  const std::vector<PortName>& names = event.message->ports;
  for (size_t i = 0; i < names.size(); ++i) {
    MOAT_TRY(ValidateDescriptor(from, names[i], event.port_descriptors[i]));
    // Attack: two attached ports with one name, so the second one's creation
    // fails after the first one exists (and must be closed again, sending
    // events to third parties under this node's name).
    for (size_t j = 0; j < i; ++j) {
      MOAT_REQUIRE(names[j] != names[i], ErrorCode::kProtocolViolation, "attached port name ",
                   names[i].ToString(), " appears twice");
    }
  }
  return OkStatus();
}

// Every descriptor is checked before any port exists (PRT-13): a message
// from a hostile node must never make this node create ports and close them
// again, which would send events in this node's name to the nodes the
// descriptors name.
Status Node::AcceptPorts(const NodeName& from, UserMessageEvent* event, Pending* out) {
  Status valid = ValidateAttachedPorts(from, *event);
  if (valid.ok()) valid = CheckVouched(from, *event);
  if (!valid.ok()) {
    event->message->ports.clear();
    event->port_descriptors.clear();
    return valid;
  }
  for (size_t i = 0; i < event->port_descriptors.size(); ++i) {
    Status s = AcceptPort(from, event->message->ports[i], event->port_descriptors[i], out);
    if (!s.ok()) {
      // Only MAX_PORTS_PER_NODE, MAX_PORTS_PER_PEER_NODE (or a name taken
      // meanwhile) gets here.
      std::vector<PortName> created(event->message->ports.begin(),
                                    event->message->ports.begin() + static_cast<ptrdiff_t>(i));
      for (const PortName& p : created) out->ports_to_close.push_back(p);
      event->message->ports.clear();
      event->port_descriptors.clear();
      return s;
    }
  }
  event->port_descriptors.clear();
  return OkStatus();
}

// PRT-13: node `from` may have at most MAX_VOUCHED_UNCONFIRMED_LINKS ports
// made here whose peer is one port P on a third node and that P has not
// confirmed yet: beyond that its descriptors would only make this node send
// P events that wait there forever, and get this node blamed for the flood.
Status Node::CheckVouched(const NodeName& from, const UserMessageEvent& event) {
  std::map<VouchKey, size_t> adding;
  for (const PortDescriptor& d : event.port_descriptors) {
    if (d.peer_node != name_ && d.peer_node != from) ++adding[{from, d.peer_node, d.peer_port}];
  }
  for (const auto& [key, count] : adding) {
    if (!IsReachable(std::get<1>(key))) continue;  // closed at once (PRT-14)
    std::vector<PortName> names;
    {
      MutexLock lock(&ports_mu_);
      auto it = vouched_.find(key);
      if (it != vouched_.end()) names.assign(it->second.begin(), it->second.end());
    }
    // Links left before anything was sent on them need no confirmation.
    std::vector<PortName> unused;
    for (const PortName& n : names) {
      PortRef r = Lookup(n);
      if (!r.is_valid()) continue;  // gone after sending: its events may wait at the peer
      MutexLock lock(&r.port()->mu);
      if (!r.port()->vouched) unused.push_back(n);
    }
    size_t tracked;
    {
      MutexLock lock(&ports_mu_);
      auto& set = vouched_[key];
      for (const PortName& n : unused) {
        auto one = set.find(n);
        if (one != set.end()) set.erase(one);
        auto [lo, hi] = vouched_by_port_.equal_range(n);
        for (auto it = lo; it != hi; ++it) {
          if (it->second == key) {
            vouched_by_port_.erase(it);
            break;
          }
        }
      }
      tracked = set.size();
      if (set.empty()) vouched_.erase(key);
    }
    // Attack: see limits::MAX_VOUCHED_UNCONFIRMED_LINKS (a descriptor flood
    // naming one port on a third node, to get this node blamed there).
    MOAT_REQUIRE(tracked + count <= limits::MAX_VOUCHED_UNCONFIRMED_LINKS,
                 ErrorCode::kLimitExceeded, "node ", from.ToString(), " sends ", count,
                 " descriptors whose peer is ", Describe(std::get<1>(key), std::get<2>(key)),
                 " while ", tracked, " such ports are unconfirmed, MAX_VOUCHED_UNCONFIRMED_LINKS ",
                 limits::MAX_VOUCHED_UNCONFIRMED_LINKS);
  }
  return OkStatus();
}

void Node::ForgetVouched(const NodeName& node) {
  MutexLock lock(&ports_mu_);
  for (auto it = vouched_.begin(); it != vouched_.end();) {
    if (std::get<0>(it->first) == node || std::get<1>(it->first) == node) {
      for (const PortName& n : it->second) {
        auto [lo, hi] = vouched_by_port_.equal_range(n);
        for (auto p = lo; p != hi;) p = p->second == it->first ? vouched_by_port_.erase(p) : ++p;
      }
      it = vouched_.erase(it);
    } else {
      ++it;
    }
  }
}

Status Node::OnUserMessage(const PortRef& ref, const NodeName& from,
                           std::unique_ptr<UserMessageEvent> event, Pending* out) {
  if (!event->port_descriptors.empty()) MOAT_TRY(AcceptPorts(from, event.get(), out));
  bool notify = false, forward = false;
  Status status = OkStatus();
  {
    Port* port = ref.port();
    MutexLock lock(&port->mu);
    if (!port->CanAcceptMoreMessages() || port->unread_cap_exceeded) {
      // Late message for a port that is done: drop (its ports closed below).
    } else if (from != name_ && port->state == State::kReceiving &&
               port->message_queue.queued_num_bytes() + event->message->size_in_bytes() >
                   options_.max_unread_bytes) {
      // Attack: a writer that ignores read acks and fills a slow reader's
      // queue until this process runs out of memory. The pipe breaks: what
      // is queued stays readable, then PEER_CLOSED; the writer learns it by
      // our closure. Nobody is blamed: `from` may be an honest relay.
      port->unread_cap_exceeded = true;
      port->peer_closed = true;
      port->peer_lost_unexpectedly = true;
      port->send_cv.SignalAll();
      SendToPeer(ref,
                 std::make_unique<ObserveClosureEvent>(kInvalidPortName, kInvalidPortName, 0,
                                                       port->next_sequence_num_to_send - 1),
                 out);
      out->status_changed.push_back(ref);
    } else if (port->peer_closed || port->remove_proxy_on_last_message) {
      // Attack: messages claimed to follow the sender's announced last one.
      if (event->sequence_num > port->last_sequence_num_to_receive) {
        status = Error(ErrorCode::kProtocolViolation,
                       ::moat::internal::Concat("sequence_num ", event->sequence_num,
                                        " is after last_sequence_num ",
                                        port->last_sequence_num_to_receive));
      }
    }
    if (status.ok() && port->CanAcceptMoreMessages() && !port->unread_cap_exceeded) {
      status = port->message_queue.AcceptMessage(&event);
      if (status.ok()) {
        notify = port->state == State::kReceiving && port->message_queue.HasNextMessage();
        forward = port->state == State::kProxying;
      }
    }
  }
  if (event) {
    for (const PortName& p : event->message->ports) out->ports_to_close.push_back(p);
  }
  if (forward) {
    ForwardQueuedFromProxy(ref, out);
    TryRemoveProxy(ref, out);
  }
  if (notify) out->status_changed.push_back(ref);
  return status;
}

// Two meanings, told apart by the sender: from a kBuffering port's peer, "the
// new port exists, start forwarding"; otherwise a link confirmation (see
// MaybeConfirmLink) for the current peer or a retired link.
Status Node::OnPortAccepted(const PortRef& ref, const NodeName& from,
                            const PortAcceptedEvent& event, Pending* out) {
  {
    // PRT-13: the peer confirmed a vouched link (also after the port went).
    MutexLock lock(&ports_mu_);
    auto [lo, hi] = vouched_by_port_.equal_range(event.port_name);
    for (auto it = lo; it != hi; ++it) {
      if (std::get<1>(it->second) != from || std::get<2>(it->second) != event.from_port) continue;
      auto set = vouched_.find(it->second);
      if (set != vouched_.end()) {
        auto one = set->second.find(event.port_name);
        if (one != set->second.end()) set->second.erase(one);
        if (set->second.empty()) vouched_.erase(set);
      }
      vouched_by_port_.erase(it);
      break;
    }
  }
  if (!ref.is_valid()) return OkStatus();  // lost (or removed) meanwhile
  bool remove = false, became_proxy = false, erase = false, bypass_sent = false;
  {
    Port* port = ref.port();
    MutexLock lock(&port->mu);
    const bool from_peer = from == port->peer_node && event.from_port == port->peer_port;
    // Oldest first: if we went back to a port we had left, its confirmations
    // arrive in the order of our links to it.
    auto retired = std::find_if(port->retired.begin(), port->retired.end(),
                                [&](const Port::RetiredLink& l) {
                                  return l.node == from && l.port == event.from_port;
                                });
    if (retired != port->retired.end()) {
      ReleaseParked(ref, retired->node, &retired->parked, out);
      port->retired.erase(retired);
    } else if (from_peer && port->state == State::kBuffering) {
      port->state = State::kProxying;
      port->peer_confirmed = true;
      for (auto& held : port->held_for_peer) Enqueue(ref, port->peer_node, std::move(held), out);
      port->held_for_peer.clear();
      remove = port->remove_proxy_on_last_message;
      became_proxy = true;
      // The new port exists: our old peer may send to it directly now.
      bypass_sent = port->old_link_pending;
      SendOnOldLink(ref, /*closure=*/false, out);
    } else if (!from_peer && port->evicted_unconfirmed_links > 0) {
      // The late confirmation of a retired link we stopped tracking (at
      // most one per link dropped): nothing to release.
      --port->evicted_unconfirmed_links;
    } else {
      // Attack: a forged PortAccepted makes a proxy forward before the new
      // port exists, or releases events towards a port that is not (yet) the
      // peer, to be buffered there.
      MOAT_REQUIRE(from_peer, ErrorCode::kProtocolViolation, "PortAccepted for ",
                   ref.name().ToString(), " from ", Describe(from, event.from_port),
                   " which is neither the port it was sent to nor a link awaiting confirmation");
      if (!port->peer_confirmed) {
        port->peer_confirmed = true;
        ReleaseParked(ref, port->peer_node, &port->parked, out);
      }
    }
    erase = port->state == State::kClosed && port->erase_when_unparked &&
            !port->HasParkedEvents();
  }
  if (erase) ErasePort(ref.name());
  if (!became_proxy) return OkStatus();
  ForwardQueuedFromProxy(ref, out);
  if (remove) {
    TryRemoveProxy(ref, out);
  } else if (!bypass_sent) {
    InitiateProxyRemoval(ref, out);
  }
  return OkStatus();
}

Status Node::OnObserveProxy(const PortRef& ref, std::unique_ptr<ObserveProxyEvent> event,
                            Pending* out) {
  // Attack: an ObserveProxy naming no real proxy circulating the ring forever.
  // Only receiving ports count (see MAX_OBSERVE_PROXY_HOPS): every round of
  // the ring passes both ends, while an honest ring's proxies are unbounded.
  MOAT_REQUIRE(event->hops < limits::MAX_OBSERVE_PROXY_HOPS, ErrorCode::kProtocolViolation,
               "ObserveProxy passed ", event->hops, " receiving ports, MAX_OBSERVE_PROXY_HOPS ",
               limits::MAX_OBSERVE_PROXY_HOPS);
  bool changed = false;
  const NodeName event_target_node = event->proxy_target_node;
  {
    Port* port = ref.port();
    MutexLock lock(&port->mu);
    if (port->peer_node == event->proxy_node && port->peer_port == event->proxy_port) {
      if (port->state == State::kReceiving) {
        SendToPeer(ref,
                   std::make_unique<ObserveProxyAckEvent>(kInvalidPortName, kInvalidPortName, 0,
                                                          port->next_sequence_num_to_send - 1),
                   out);
        RetireLink(port, name_);
        port->bypassed_node = port->peer_node;  // PRT-23: its RouteLost still counts
        port->bypassed_port = port->peer_port;
        port->peer_node = event->proxy_target_node;
        port->peer_port = event->proxy_target_port;
        port->next_control_sequence_num_to_send = kInitialSequenceNum;
        // The target switches to us only after the proxy's last event, which
        // travels another way: PRT-11.
        port->peer_confirmed = port->peer_node == name_;
        changed = true;
      } else if (port->state == State::kBuffering || port->state == State::kProxying) {
        // A proxy cannot promise a last sequence number for others: ask the
        // proxy to retry once we are gone (retrying now would spin).
        port->send_on_proxy_removal = std::make_unique<ObserveProxyAckEvent>(
            kInvalidPortName, kInvalidPortName, 0, kInvalidSequenceNum);
      }
    } else {
      if (port->state == State::kReceiving) ++event->hops;
      SendToPeer(ref, std::move(event), out);
    }
  }
  if (changed) {
    out->status_changed.push_back(ref);
    out->check_reachable.emplace_back(ref, event_target_node);
  }
  return OkStatus();
}

Status Node::OnObserveProxyAck(const PortRef& ref, const ObserveProxyAckEvent& event,
                               Pending* out) {
  bool retry = false;
  {
    Port* port = ref.port();
    MutexLock lock(&port->mu);
    // Attack: an ack to a port that never asked, e.g. to make it drop its peer.
    MOAT_REQUIRE(port->state == State::kProxying, ErrorCode::kProtocolViolation,
                 "ObserveProxyAck for ", ref.name().ToString(), " which is not a proxy");
    if (event.last_sequence_num == kInvalidSequenceNum) {
      retry = true;
    } else {
      // Attack: a last sequence number behind what was already forwarded, so
      // the proxy would wait forever (leak).
      MOAT_REQUIRE(event.last_sequence_num + 1 >= port->message_queue.next_sequence_num(),
                   ErrorCode::kProtocolViolation, "ObserveProxyAck last_sequence_num ",
                   event.last_sequence_num, " is before already forwarded ",
                   port->message_queue.next_sequence_num() - 1);
      if (!port->remove_proxy_on_last_message) {
        port->remove_proxy_on_last_message = true;
        port->last_sequence_num_to_receive = event.last_sequence_num;
      }
    }
  }
  if (retry) {
    InitiateProxyRemoval(ref, out);
  } else {
    TryRemoveProxy(ref, out);
  }
  return OkStatus();
}

// PRT-15: the closure's last sequence number must cover every message
// already queued (a smaller one would still deliver them, after the peer
// said it sent no more) and lie in the out-of-order window (a larger one
// would leave the reader waiting for messages that never come). Anything
// else is a protocol violation: the sender is cut off, which closes the
// port after its contiguous messages (peer_lost_unexpectedly).
static Status CheckClosure(const Port* port, const PortName& self, uint64_t last)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(port->mu) {
  const MessageQueue& q = port->message_queue;
  // Attack: a closure claiming fewer messages than were already delivered or
  // queued (those would be delivered after the announced last one).
  MOAT_REQUIRE(last != kInvalidSequenceNum && last >= q.HighestSequenceNum(),
               ErrorCode::kProtocolViolation, "ObserveClosure for ", self.ToString(),
               " last_sequence_num ", last, " is before already received ",
               q.HighestSequenceNum());
  // Attack: a closure announcing messages far beyond any that could still be
  // in flight, so the port never reports that it is done (a hang).
  MOAT_REQUIRE(q.InWindow(last), ErrorCode::kProtocolViolation, "ObserveClosure for ",
               self.ToString(), " last_sequence_num ", last, " is more than ",
               limits::MAX_PORT_OUT_OF_ORDER_MESSAGES, " (MAX_PORT_OUT_OF_ORDER_MESSAGES) past ",
               q.LastContiguousSequenceNum());
  return OkStatus();
}

Status Node::OnObserveClosure(const PortRef& ref, std::unique_ptr<ObserveClosureEvent> event,
                              Pending* out) {
  bool notify = false, try_remove = false;
  {
    Port* port = ref.port();
    MutexLock lock(&port->mu);
    // A second closure notice carries nothing new (and must not loop).
    if (port->peer_closed) return OkStatus();
    if (port->state == State::kReceiving) {
      MOAT_TRY(CheckClosure(port, ref.name(), event->last_sequence_num));
      port->peer_closed = true;
      port->send_cv.SignalAll();  // AwaitConfirmations
      port->last_sequence_num_to_receive = event->last_sequence_num;
      notify = true;
      // Passed on so dead-end proxies behind us learn our last message.
      event->last_sequence_num = port->next_sequence_num_to_send - 1;
      SendToPeer(ref, std::move(event), out);
    } else if (port->state == State::kBuffering || port->state == State::kProxying) {
      // Attack: as above, for a proxy (it would wait forever).
      MOAT_TRY(CheckClosure(port, ref.name(), event->last_sequence_num));
      port->peer_closed = true;
      port->send_cv.SignalAll();  // AwaitConfirmations
      port->remove_proxy_on_last_message = true;
      port->last_sequence_num_to_receive = event->last_sequence_num;
      try_remove = port->state == State::kProxying;
      SendToPeer(ref, std::move(event), out);
    } else {
      port->peer_closed = true;
      port->send_cv.SignalAll();  // AwaitConfirmations
    }
  }
  if (try_remove) TryRemoveProxy(ref, out);
  if (notify) out->status_changed.push_back(ref);
  return OkStatus();
}

Status Node::OnMergePort(const PortRef& ref, const NodeName& from, const MergePortEvent& event,
                         Pending* out) {
  const PortDescriptor& desc = event.new_port_descriptor;
  {
    bool offered = false;
    if (ref.is_valid()) {
      Port* port = ref.port();
      MutexLock lock(&port->mu);
      offered = port->merge_offered_to == from && port->state == State::kReceiving &&
                IsUnused(port);
    }
    // Attack (MRG-3): splicing into (or closing) a pipe the sender does not
    // hold by naming a port it learned, used or not. Only a port offered
    // for merging to this very node may be merged; the named port is left
    // untouched and the sender is disconnected.
    MOAT_REQUIRE(offered, ErrorCode::kProtocolViolation, "MergePort from node ", from.ToString(),
                 " names port ", event.port_name.ToString(),
                 ", which is not an unused port offered for merging to that node");
  }
  MOAT_TRY(ValidateDescriptor(from, event.new_port_name, desc));
  // Attack: a merged port whose peer is the very port it merges with (a
  // one-port loop that would forward to itself).
  MOAT_REQUIRE(!(desc.peer_node == name_ && desc.peer_port == event.port_name),
               ErrorCode::kProtocolViolation, "MergePort descriptor's peer is the merge target ",
               event.port_name.ToString());
  {
    Port* port = ref.port();
    MutexLock lock(&port->mu);
    port->merge_offered_to = NodeName();  // one merge per offer
  }
  MOAT_TRY(AcceptPort(from, event.new_port_name, desc, out));
  PortRef new_ref = Lookup(event.new_port_name);
  // Fails only in a race with a local close of the target: both ports then
  // close, so each far end sees peer_closed.
  (void)MergePortsInternal(ref, new_ref, /*close_on_failure=*/true, out);
  return OkStatus();
}

Status Node::OnReadAckRequest(const PortRef& ref, const UserMessageReadAckRequestEvent& event,
                              Pending* out) {
  Port* port = ref.port();
  MutexLock lock(&port->mu);
  if (port->state == State::kReceiving) {
    const uint64_t last_read = port->message_queue.next_sequence_num() - 1;
    if (event.sequence_num_to_acknowledge <= last_read) {
      port->sequence_num_to_acknowledge = 0;
      SendToPeer(ref,
                 std::make_unique<UserMessageReadAckEvent>(kInvalidPortName, kInvalidPortName, 0,
                                                           last_read),
                 out);
    } else {
      // The latest wins (as in Mojo); a writer whose earlier request this
      // replaces asks again when it hears the answer (OnReadAck).
      port->sequence_num_to_acknowledge = event.sequence_num_to_acknowledge;
    }
  } else if (port->state == State::kBuffering || port->state == State::kProxying) {
    SendToPeer(ref,
               std::make_unique<UserMessageReadAckRequestEvent>(kInvalidPortName, kInvalidPortName,
                                                                0, event.sequence_num_to_acknowledge),
               out);
  }
  return OkStatus();
}

Status Node::OnReadAck(const PortRef& ref, const UserMessageReadAckEvent& event, Pending* out) {
  bool notify = false;
  {
    Port* port = ref.port();
    MutexLock lock(&port->mu);
    if (port->state == State::kReceiving) {
      // Attack: acking messages never sent, to underflow the unacked count
      // and defeat the sender's quota.
      MOAT_REQUIRE(event.sequence_num_acknowledged < port->next_sequence_num_to_send,
                   ErrorCode::kProtocolViolation, "read ack for sequence_num ",
                   event.sequence_num_acknowledged, " but only ",
                   port->next_sequence_num_to_send - 1, " were sent");
      const uint64_t acked = event.sequence_num_acknowledged;
      const uint64_t unacked_before = port->unacknowledged_bytes();
      if (acked == port->next_sequence_num_to_send - 1) {
        port->bytes_acknowledged = port->bytes_sent;  // everything was read
        port->window_ack_seq = 0;
      } else if (port->window_ack_seq != 0 && acked >= port->window_ack_seq) {
        port->bytes_acknowledged = std::max(port->bytes_acknowledged, port->window_ack_bytes);
        port->window_ack_seq = 0;
      }
      if (port->unacknowledged_bytes() != unacked_before) {
        notify = true;
        port->send_cv.SignalAll();  // AwaitUnreadWindow
      }
      if (acked > port->last_sequence_num_acknowledged) {
        port->last_sequence_num_acknowledged = acked;
        notify = true;
        if (port->sequence_num_acknowledge_interval != 0 && !port->peer_closed) {
          SendToPeer(ref,
                     std::make_unique<UserMessageReadAckRequestEvent>(
                         kInvalidPortName, kInvalidPortName, 0,
                         port->last_sequence_num_acknowledged +
                             port->sequence_num_acknowledge_interval),
                     out);
        }
      }
      // The window's request may have been replaced by a later interval
      // request (the reader keeps one): ask again, after it.
      if (port->window_ack_seq != 0 && !port->peer_closed) {
        SendToPeer(ref,
                   std::make_unique<UserMessageReadAckRequestEvent>(
                       kInvalidPortName, kInvalidPortName, 0, port->window_ack_seq),
                   out);
      } else {
        MaybeRequestWindowAck(ref, out);
      }
    } else if (port->state == State::kBuffering || port->state == State::kProxying) {
      SendToPeer(ref,
                 std::make_unique<UserMessageReadAckEvent>(kInvalidPortName, kInvalidPortName, 0,
                                                           event.sequence_num_acknowledged),
                 out);
    }
  }
  if (notify) out->status_changed.push_back(ref);
  return OkStatus();
}

Status Node::OnUpdatePreviousPeer(const PortRef& ref, const NodeName& from,
                                  const UpdatePreviousPeerEvent& event, Pending* out) {
  // Attack: pointing a port's previous hop at nothing, so it can never accept
  // another event (a silent hang instead of a clean closure).
  MOAT_REQUIRE(event.new_prev_node.is_valid() && event.new_prev_port.is_valid(),
               ErrorCode::kProtocolViolation, "UpdatePreviousPeer to an invalid name");
  {
    Port* port = ref.port();
    MutexLock lock(&port->mu);
    port->prev_node = event.new_prev_node;
    port->prev_port = event.new_prev_port;
    port->next_control_sequence_num_to_receive = kInitialSequenceNum;
    port->prev_set_by_node = from;
    port->prev_set_by_port = event.from_port;
  }
  out->check_reachable.emplace_back(ref, event.new_prev_node);
  return OkStatus();
}

bool Node::RelayRouteLostForRemovedProxy(const PortName& proxy, const NodeName& from,
                                         const PortName& from_port, Pending* out) {
  MutexLock lock(&ports_mu_);
  // Attack: a RouteLost naming a removed proxy, to cut the pipe of the port
  // behind it. Only the proxy's own peer (node and port), which was on the
  // route, is heard; it is passed on once (then forgotten: no flood), and
  // the previous hop honours it only while it still counts the proxy as on
  // its route (OnRouteLost, Port::bypassed_*).
  auto it = std::find_if(removed_proxies_.begin(), removed_proxies_.end(),
                         [&](const RemovedProxy& r) {
                           return r.name == proxy && r.peer_node == from && r.peer_port == from_port;
                         });
  if (it == removed_proxies_.end()) return false;
  out->Send(it->prev_node, std::make_unique<RouteLostEvent>(it->prev_port, it->name));
  removed_proxies_.erase(it);
  return true;
}

// PRT-23: our peer (the next hop on our route) lost its own onward route, e.g.
// a proxy whose target's node it lost while we stay connected to both. We
// close as if our peer's node had been lost (what is already queued stays
// readable, in order) and tell our previous hop, so the far end, whose route
// to us may be intact, reports PEER_CLOSED too instead of writing into a
// pipe that never delivers.
Status Node::OnRouteLost(const PortRef& ref, const NodeName& from, const RouteLostEvent& event,
                         Pending* out) {
  if (!ref.is_valid()) {
    // Closed, or a proxy removed meanwhile whose previous hop may need it.
    (void)RelayRouteLostForRemovedProxy(event.port_name, from, event.from_port, out);
    return OkStatus();
  }
  ClosedPortRemains remains;
  {
    Port* port = ref.port();
    MutexLock lock(&port->mu);
    if (port->state == State::kClosed) {
      // A removed proxy still registered for its parked events (lock order:
      // port lock, then ports_mu_).
      (void)RelayRouteLostForRemovedProxy(event.port_name, from, event.from_port, out);
      return OkStatus();
    }
    // Attack: a forged RouteLost to cut someone else's pipe. Only the port's
    // current next hop (node and port) is on its route and could drop its
    // events anyway; anything else is ignored, not blamed: an honest proxy's
    // RouteLost can cross our bypass of it (ObserveProxy) and arrive once our
    // peer has changed, which a forgery cannot be told apart from (PRT-13).
    // Nothing is stored for it, so a flood costs only its processing.
    const bool from_peer = from == port->peer_node && event.from_port == port->peer_port;
    // The proxy we just bypassed is still on our route until the new peer
    // confirms the link (its switch to us travels through that proxy).
    const bool from_bypassed = !port->peer_confirmed && from == port->bypassed_node &&
                               event.from_port == port->bypassed_port;
    // Our previous hop, whose own incoming side died (LosePortTo): it could
    // close us anyway (ObserveClosure, which it sent just before).
    const bool from_prev = from == port->prev_node && event.from_port == port->prev_port;
    if (!from_peer && !from_bypassed && !from_prev) return OkStatus();
    if (event.far_node.is_valid() && event.far_port.is_valid() &&
        !(event.far_node == from && event.far_port == event.from_port)) {
      // The port our peer was moving to, which we may never have heard of
      // (nothing it sent us is processed yet) and which waits for a switch
      // that was lost: it honours this only if we are its peer, so a hostile
      // sender gains nothing over closing our own pipe.
      out->Send(event.far_node, std::make_unique<RouteLostEvent>(event.far_port, ref.name()));
    }
    if (port->state == State::kReceiving) {
      if (port->peer_closed) {
        // Already closed: a second notice carries nothing, except after the
        // closure of a previous hop whose incoming side died (LosePortTo):
        // our peer, the far end, may not know. Told once (no loop, no flood).
        if (from_prev && !port->route_lost_sent) SendRouteLost(ref, from, event.from_port, out);
        return OkStatus();
      }
      port->peer_closed = true;
      port->peer_lost_unexpectedly = true;
      port->send_cv.SignalAll();  // AwaitConfirmations
      // Both our previous hop and (after a bypass) our new peer may be the
      // far end, waiting for the proxy's events that will never come.
      SendRouteLost(ref, from, event.from_port, out);
      out->status_changed.push_back(ref);
    } else if (port->state == State::kBuffering || port->state == State::kProxying) {
      // A proxy on a dead route: its previous hop learns it, and it goes.
      SendRouteLost(ref, from, event.from_port, out);
      if (port->old_link_pending) SendOnOldLink(ref, /*closure=*/true, out);
      port->old_link_pending = false;
      remains = MarkClosedLocked(port);
    }
  }
  FinishClosing(ref, std::move(remains), out);
  return OkStatus();
}

void Node::SendRouteLost(const PortRef& ref, const NodeName& skip_node,
                         const PortName& skip_port, Pending* out) {
  Port* port = ref.port();
  port->mu.AssertHeld();
  // Whoever sends to us (previous hop) and whoever we send to (peer) except
  // the one that told us or lives on the lost node (`skip_*`): each checks
  // that we are its peer, so a port that is neither ignores it. A hop on a
  // lost node is not told (the event would be dropped anyway).
  port->route_lost_sent = true;
  auto tell = [&](const NodeName& node, const PortName& p) {
    if (!node.is_valid() || !p.is_valid()) return;
    if (node == skip_node && (p == skip_port || !skip_port.is_valid())) return;
    out->Send(node, std::make_unique<RouteLostEvent>(p, ref.name()));
  };
  tell(port->prev_node, port->prev_port);
  if (!(port->peer_node == port->prev_node && port->peer_port == port->prev_port)) {
    tell(port->peer_node, port->peer_port);
  }
  // A moved port's old peer may already send to us (it bypassed the proxy
  // before us) while our previous hop is still that proxy.
  if (port->old_peer_node.is_valid() &&
      !(port->old_peer_node == port->prev_node && port->old_peer_port == port->prev_port) &&
      !(port->old_peer_node == port->peer_node && port->old_peer_port == port->peer_port)) {
    tell(port->old_peer_node, port->old_peer_port);
  }
}

// ---------------------------------------------------------------------------
// Node loss.

void Node::LostConnectionToNode(const NodeName& node) {
  NoWaitScope no_wait;
  AcceptingScope accepting(&accepting_);
  Pending pending;
  std::vector<PortRef> all;
  {
    MutexLock lock(&ports_mu_);
    RememberLost(node);
    for (auto& [name, port] : ports_) all.emplace_back(name, port);
    // PRT-23: a proxy removed just before may have had its last events (the
    // previous hop's switch, UpdatePreviousPeer) lost with the link; its
    // previous hop, whose new link is then never confirmed, is told.
    std::erase_if(removed_proxies_, [&](const RemovedProxy& r) {
      if (r.prev_node == node) return true;
      if (r.peer_node != node) return false;
      pending.Send(r.prev_node, std::make_unique<RouteLostEvent>(r.prev_port, r.name));
      return true;
    });
  }
  for (const PortRef& ref : all) LosePortTo(ref, node, &pending);
  ForgetVouched(node);
  Flush(&pending);
}

void Node::RememberLost(const NodeName& node) {
  ports_mu_.AssertHeld();
  if (node == name_ || !lost_nodes_.insert(node).second) return;
  lost_order_.push_back(node);
  // Attack: a hostile node making us lose node after node (names it made up)
  // to grow this memory; the oldest is forgotten (a late event naming it is
  // then caught by the delegate's IsNodeReachable, if it knows).
  if (lost_order_.size() > limits::MAX_REMEMBERED_LOST_NODES) {
    lost_nodes_.erase(lost_order_.front());
    lost_order_.pop_front();
  }
}

bool Node::IsReachable(const NodeName& node) const {
  if (node == name_) return true;
  {
    MutexLock lock(&ports_mu_);
    if (lost_nodes_.contains(node)) return false;
  }
  return delegate_->IsNodeReachable(node);
}

// PRT-14: an event re-pointed a port at `node` (peer or previous hop). If no
// connection to it exists (never did, or it was lost before the event was
// processed), no LostConnectionToNode will ever name it: the port is closed
// now, as if that node had been lost right after the event.
void Node::CheckReachable(const PortRef& ref, const NodeName& node, Pending* out) {
  if (IsReachable(node)) return;
  LosePortTo(ref, node, out);
}

void Node::LosePortTo(const PortRef& ref, const NodeName& node, Pending* out) {
  Port* port = ref.port();
  bool erase = false;
  std::vector<Port::BufferedEvent> own_dead;
  {
    MutexLock lock(&port->mu);
    // Events from the dead node can never become processable, nor can our
    // own ports' events that wait for a switch only it could have sent: the
    // sending port was made from its descriptor, so the dead node was that
    // port's referring proxy (Event::origin; issue 11 class 5), and was still
    // its previous hop when it sent. Not once it had switched away: origin
    // is where the port came from once (e.g. an end bounced through the dead
    // node long ago), its events then wait for a switch from elsewhere.
    for (auto it = port->buffered_events.begin(); it != port->buffered_events.end();) {
      if (it->from == node) {
        it = port->buffered_events.erase(it);  // nothing in it was created here
      } else if (it->from == name_ && it->event->origin == node && it->event->origin_is_prev) {
        own_dead.push_back(std::move(*it));  // may carry ports: discarded below
        it = port->buffered_events.erase(it);
      } else {
        ++it;
      }
    }
    // Nor will it confirm a link; what waits for it is dropped (ports
    // attached to parked messages are proxies for that node, closed below).
    const bool had_parked = port->HasParkedEvents();
    if (port->peer_node == node) {
      port->parked.clear();
      port->peer_confirmed = true;
    }
    std::erase_if(port->retired, [&](const Port::RetiredLink& l) { return l.node == node; });
    if (had_parked && !port->HasParkedEvents()) port->send_cv.SignalAll();
    if (port->state == State::kClosed) {
      erase = port->erase_when_unparked && !port->HasParkedEvents();
    }
  }
  DiscardBuffered(std::move(own_dead), out);
  if (erase) {
    ErasePort(ref.name());
    return;
  }
  ClosedPortRemains remains;
  {
    MutexLock lock(&port->mu);
    if (port->peer_node != node && port->prev_node != node) return;
    if (port->prev_node == node && port->prev_set_by_node.is_valid() &&
        port->prev_set_by_node != node && port->state != State::kClosed) {
      // PRT-23: our previous hop (e.g. a port that just bypassed a proxy to
      // reach us) is cut off from us, not necessarily from the proxy that
      // named it: that proxy's node passes this on to it
      // (RelayRouteLostForRemovedProxy), since it sends into the void now.
      out->Send(port->prev_set_by_node,
                std::make_unique<RouteLostEvent>(port->prev_set_by_port, ref.name()));
    }
    if (port->state == State::kReceiving) {
      if (port->peer_closed && !port->peer_lost_unexpectedly && port->prev_node != node) {
        return;  // already closed cleanly
      }
      const bool was_closed = port->peer_closed;
      port->peer_closed = true;
      port->send_cv.SignalAll();  // AwaitConfirmations
      port->peer_lost_unexpectedly = true;
      if (!was_closed && port->peer_node != node) {
        // Our incoming side died: the (living) far end must not wait for us.
        SendToPeer(ref,
                   std::make_unique<ObserveClosureEvent>(kInvalidPortName, kInvalidPortName, 0,
                                                         port->next_sequence_num_to_send - 1),
                   out);
      }
      if (!was_closed && port->peer_node == node && port->prev_node != node) {
        // Our outgoing side died, our incoming side may live (PRT-23): the
        // far end must not keep writing into a pipe that never delivers.
        SendRouteLost(ref, node, PortName(), out);
      }
      out->status_changed.push_back(ref);
    } else if (port->state == State::kBuffering || port->state == State::kProxying) {
      if (port->peer_node != node && !port->peer_closed) {
        // Not held even while kBuffering: the port is gone after this.
        auto closure = std::make_unique<ObserveClosureEvent>(
            kInvalidPortName, kInvalidPortName, 0, port->message_queue.next_sequence_num() - 1);
        port->StampForPeer(closure.get(), ref.name());
        // Our incoming side died (PRT-23): the far end that sent through the
        // lost node may live and not know (a one-sided loss). Our peer, told
        // that the route is lost, closes and tells its own peer and old peer
        // (a proxy would be gone after the closure, so this goes first).
        // Through our outbox, behind what we forwarded before: a receiving
        // peer still reads all of it.
        Enqueue(ref, port->peer_node, std::make_unique<RouteLostEvent>(port->peer_port, ref.name()),
                out);
        Enqueue(ref, port->peer_node, std::move(closure), out);
      }
      if (port->peer_node == node && port->prev_node != node && !port->peer_closed) {
        // Our onward route died, the hop sending to us lives (PRT-23). A
        // port moving there that never confirmed may already exist and send
        // to our old peer, who has not heard of it: named for it to tell.
        if (port->state == State::kBuffering && port->prev_node.is_valid() &&
            port->prev_port.is_valid()) {
          out->Send(port->prev_node, std::make_unique<RouteLostEvent>(
                                         port->prev_port, ref.name(), port->peer_node,
                                         port->peer_port));
        } else {
          SendRouteLost(ref, node, PortName(), out);
        }
      }
      if (port->peer_node == node && !port->peer_closed && port->old_peer_node.is_valid() &&
          port->old_peer_node != node &&
          (port->prev_node == node || port->prev_node != port->old_peer_node ||
           port->prev_port != port->old_peer_port)) {
        // The same for our old peer (a moved port's peer when it moved), if
        // it is not that living hop: it sends to us (it bypassed the proxy
        // before us) or is about to bypass us (our old-link events), while
        // the moved port may send to it and wait for our switch (PRT-23).
        // It honours this only while we are on its route, i.e. until its
        // link past us is confirmed, which needs the switch we now never send.
        out->Send(port->old_peer_node,
                  std::make_unique<RouteLostEvent>(port->old_peer_port, ref.name(),
                                                   port->peer_node, port->peer_port));
      }
      // A moved port whose new port never confirmed: its old peer still
      // takes events from us only and must learn that nothing follows.
      if (port->old_link_pending && port->old_peer_node != node) {
        SendOnOldLink(ref, /*closure=*/true, out);
      }
      port->old_link_pending = false;
      remains = MarkClosedLocked(port);
    }
  }
  FinishClosing(ref, std::move(remains), out);
}

}  // namespace moat::ports
