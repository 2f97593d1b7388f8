#include "core/node/node_controller.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "core/check.h"
#include "core/ports/event_codec.h"

extern char** environ;

namespace moat::node {

// One transport to another node.
class NodeController::Channel {
 public:
  // Handshake state. Child side: kAwaitingHello -> kReady (on the broker's
  // hello). Broker side: kAwaitingHelloReply -> kReady (on the child's reply).
  // Only the channel's IO thread changes it after construction.
  enum class State { kAwaitingHello, kAwaitingHelloReply, kReady };

  Channel(const ports::NodeName& peer, State state) : peer(peer), state(state) {}

  // Broker side: the name given to the child. Child side: set (on the IO
  // thread) from the hello; read only there.
  ports::NodeName peer;
  std::atomic<State> state;
  // Broker side: the port the child merges its bootstrap pipe with.
  ports::PortName bootstrap_port;
  // Set once the connection is being dropped: later messages are ignored.
  std::atomic<bool> closed{false};
  // Its transport passed the send high-water mark (counted in
  // NodeController::congested_channels_) and owes an on_send_space.
  std::atomic<bool> congested{false};

  // Publishes the transport (or its absence) to callers waiting in transport().
  void SetTransport(std::unique_ptr<transport::Transport> t) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    transport_ = std::move(t);
    transport_set_ = true;
    published_.store(transport_.get(), std::memory_order_release);
    cv_.SignalAll();
  }

  // The transport; waits until SetTransport ran (a message can arrive on the
  // IO thread before CreateTransport has returned to us). Null if it failed.
  // The pointer stays valid while the caller holds a reference to the channel
  // or runs on its IO thread.
  transport::Transport* transport() ABSL_LOCKS_EXCLUDED(mu_) {
    // Every event sent takes this path: once set, no lock.
    if (transport::Transport* t = published_.load(std::memory_order_acquire)) return t;
    MutexLock lock(&mu_);
    while (!transport_set_) cv_.Wait(&mu_);
    return transport_.get();
  }

  Status Send(std::span<const uint8_t> payload, std::vector<UniqueFd> fds = {}) {
    transport::Transport* t = transport();
    if (t == nullptr) return Error(ErrorCode::kClosed, "node channel has no transport");
    return t->Send(payload, std::move(fds));
  }
  Status Send(std::vector<uint8_t>&& payload, std::vector<UniqueFd> fds = {}) {
    transport::Transport* t = transport();
    if (t == nullptr) return Error(ErrorCode::kClosed, "node channel has no transport");
    return t->Send(std::move(payload), std::move(fds));
  }
  // For the broker's relay and loss reports: a thread serving one child must
  // never wait for another child's socket (NOD-6).
  Status SendWithoutWaiting(std::span<const uint8_t> payload, std::vector<UniqueFd> fds = {}) {
    transport::Transport* t = transport();
    if (t == nullptr) return Error(ErrorCode::kClosed, "node channel has no transport");
    return t->SendWithoutWaiting(payload, std::move(fds));
  }
  Status SendWithoutWaiting(std::vector<uint8_t>&& payload, std::vector<UniqueFd> fds = {}) {
    transport::Transport* t = transport();
    if (t == nullptr) return Error(ErrorCode::kClosed, "node channel has no transport");
    return t->SendWithoutWaiting(std::move(payload), std::move(fds));
  }

 private:
  // Lock order: leaf.
  Mutex mu_;
  CondVar cv_;
  std::unique_ptr<transport::Transport> transport_ ABSL_GUARDED_BY(mu_);
  bool transport_set_ ABSL_GUARDED_BY(mu_) = false;
  // transport_.get() once set (set once, never changed: the transport lives
  // as long as the channel), readable without mu_.
  std::atomic<transport::Transport*> published_{nullptr};
};

// The system Core of this node, reporting bad buffered events to us.
class NodeController::NodeCore : public system::Core {
 public:
  NodeCore(NodeController* controller, const ports::NodeName& name,
           const NodeControllerOptions& options)
      : system::Core(
            [controller](const ports::NodeName& node, std::unique_ptr<ports::Event> event) {
              controller->ForwardEvent(node, std::move(event));
            },
            name, PortsOptionsFor(options)),
        controller_(controller) {}

  static ports::NodeOptions PortsOptionsFor(const NodeControllerOptions& options) {
    ports::NodeOptions o;
    o.unread_bytes_window = options.unread_bytes_window;
    o.max_unread_bytes = options.max_unread_bytes;
    o.confirm_timeout = options.peer_stall_timeout;
    return o;
  }

  bool WouldWaitToSend(const ports::NodeName& node) const override {
    return controller_->WouldWaitToSend(node);
  }
  bool AnyTransportFull() const override {
    return controller_->congested_channels_.load(std::memory_order_relaxed) != 0;
  }

  void PeerUnresponsive(const ports::NodeName& node, const Error& why) override {
    controller_->DisconnectNode(node, why);
  }

  // PRT-8: a child does not count its broker's ports against a per-peer
  // limit (the broker relays everyone's and can cut the child off anyway).
  // broker_name_ is set before this Core exists and never changes.
  bool IsPortQuotaExempt(const ports::NodeName& node) const override {
    return !controller_->is_broker_ && node == controller_->broker_name_;
  }

  void BadEventFrom(const ports::NodeName& node, const Error& error) override {
    controller_->BadEventFrom(node, error);
  }

  // Events arrive on the transports' IO threads, never on a writer's: a
  // writer may wait for a new link's confirmation (PRT-11).
  bool SendersMayWaitForPeers() const override { return true; }

  // ForwardEvent writes the envelope header in front of the event in place.
  size_t EnvelopeHeadroom() const override { return kNodeChannelHeaderSize; }

  // PRT-14: a port re-pointed at a node we cannot reach is closed at once.
  bool IsNodeReachable(const ports::NodeName& node) const override {
    return controller_->IsNodeReachable(node);
  }

 private:
  NodeController* const controller_;
};

void NodeController::ChannelDeleter::operator()(Channel* channel) const {
  // Never destroy a transport here: this may be its own IO thread.
  MutexLock lock(&controller->reaper_mu_);
  controller->graveyard_.push_back(channel);
  controller->reaper_cv_.Signal();
}

namespace {
std::unique_ptr<transport::IoLoopPool> CreateIoLoops(bool is_broker,
                                                     std::optional<size_t> loops) {
  // A child has one transport (to the broker): one loop is all it can use.
  const size_t n = loops.value_or(is_broker ? limits::NODE_IO_LOOPS : 1);
  if (n == 0) return nullptr;
  auto pool = transport::IoLoopPool::Create(n);
  MOAT_ASSERT(pool.ok(), "cannot start the node's IO loops: ",
              pool.ok() ? std::string() : pool.error().ToString());
  return std::move(*pool);
}
}  // namespace

NodeController::NodeController(bool is_broker, NodeControllerOptions options)
    : is_broker_(is_broker),
      options_(std::move(options)),
      io_loops_(CreateIoLoops(is_broker, options_.io_loops)) {
  reaper_ = std::thread([this] { ReaperMain(); });
}

void NodeController::FlushBeforeShutdown() {
  if (!core_) return;  // a child whose handshake never finished
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(limits::NODE_SHUTDOWN_FLUSH_TIMEOUT_MS);
  for (;;) {
    std::vector<ChannelPtr> live;
    {
      MutexLock lock(&mu_);
      for (const auto& [name, channel] : channels_) {
        if (!channel->closed) live.push_back(channel);
      }
      if (broker_channel_ && !broker_channel_->closed) live.push_back(broker_channel_);
    }
    if (live.empty()) return;  // nobody left to hand anything to
    bool busy = core_->node().HasEventsInFlight();
    for (const ChannelPtr& channel : live) {
      if (busy) break;
      transport::Transport* t = channel->transport();
      busy = t != nullptr && t->is_connected() && t->stats().send_queue_frames > 0;
    }
    if (!busy || std::chrono::steady_clock::now() >= deadline) return;
    // Polled: progress comes from other threads (IO threads confirming moved
    // ports, flushing sockets) that have no reason to tell us; only an exiting
    // node with work in flight waits here.
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

NodeController::~NodeController() {
  // crbug.com/1005510: what was written before the shutdown must still reach
  // its peers (a port sent just before exit is a proxy holding its messages
  // until the receiver confirms it).
  FlushBeforeShutdown();
  std::vector<ChannelPtr> channels;
  {
    MutexLock lock(&mu_);
    shutting_down_ = true;
    for (auto& [name, channel] : channels_) channels.push_back(std::move(channel));
    channels_.clear();
    if (broker_channel_) channels.push_back(std::move(broker_channel_));
    handshake_cv_.SignalAll();
  }
  for (ChannelPtr& c : channels) c->closed = true;
  channels.clear();  // to the reaper
  {
    MutexLock lock(&reaper_mu_);
    reaper_stop_ = true;
    reaper_cv_.Signal();
  }
  reaper_.join();
  // Every transport is gone: nothing calls into the Core any more except its
  // own teardown (whose events ForwardEvent now drops).
  core_.reset();
}

void NodeController::ReaperMain() {
  reaper_mu_.Lock();
  for (;;) {
    while (!graveyard_.empty()) {
      Channel* channel = graveyard_.front();
      graveyard_.pop_front();
      reaper_mu_.Unlock();
      delete channel;  // waits until the loop is not inside its transport's callbacks
      reaper_mu_.Lock();
      --live_channels_;
    }
    if (reaper_stop_ && live_channels_ == 0) break;
    reaper_cv_.Wait(&reaper_mu_);
  }
  reaper_mu_.Unlock();
}

std::unique_ptr<NodeController> NodeController::CreateBroker(NodeControllerOptions options) {
  std::unique_ptr<NodeController> c(new NodeController(/*is_broker=*/true, std::move(options)));
  c->name_ = ports::NodeName::Random();
  c->core_ = std::make_unique<NodeCore>(c.get(), c->name_, c->options_);
  return c;
}

Result<NodeController::ChannelPtr> NodeController::NewChannel(const ports::NodeName& peer) {
  {
    MutexLock lock(&reaper_mu_);
    ++live_channels_;
  }
  const Channel::State state =
      is_broker_ ? Channel::State::kAwaitingHelloReply : Channel::State::kAwaitingHello;
  return ChannelPtr(new Channel(peer, state), ChannelDeleter{this});
}

transport::TransportOptions NodeController::TransportOptionsFor(Channel* channel) {
  transport::TransportOptions o;
  o.limits = options_.limits;
  // The raw pointer is safe: the channel owns the transport, whose
  // destruction unregisters it from its loop, waiting for a running callback.
  if (io_loops_) o.io_loop = io_loops_->Next();
  o.on_message = [this, channel](transport::MessageView& m) { OnMessage(channel, m); };
  o.on_disconnect = [this, channel](const Error& e) { OnDisconnect(channel, e); };
  o.send_stall_timeout = options_.peer_stall_timeout;
  // Writers that saw WRITABLE unsatisfied because this transport was full
  // hear that it has room (on a child every remote node is behind it).
  o.on_send_space = [this, channel] {
    if (channel->congested.exchange(false)) congested_channels_.fetch_sub(1);
    if (!core_) return;
    if (is_broker_) {
      core_->node().OnSendSpace(&channel->peer);
    } else {
      core_->node().OnSendSpace(nullptr);
    }
  };
  return o;
}

Result<std::unique_ptr<NodeController>> NodeController::ConnectToBroker(
    UniqueFd socket, std::chrono::nanoseconds timeout, NodeControllerOptions options) {
  std::unique_ptr<NodeController> c(new NodeController(/*is_broker=*/false, std::move(options)));
  MOAT_ASSIGN_OR_RETURN(ChannelPtr channel, c->NewChannel(ports::kInvalidNodeName));
  {
    MutexLock lock(&c->mu_);
    c->broker_channel_ = channel;
  }
  auto t = transport::TransportHandle(std::move(socket))
               .CreateTransport(c->TransportOptionsFor(channel.get()));
  if (!t.ok()) {
    channel->SetTransport(nullptr);
    return std::move(t).error();
  }
  channel->SetTransport(std::move(*t));
  channel.reset();

  const auto deadline = std::chrono::steady_clock::now() + timeout;
  MutexLock lock(&c->mu_);
  while (!c->handshake_done_ && !c->handshake_error_.has_value()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      return Error(ErrorCode::kShouldWait, "no hello from the broker within the timeout");
    }
    c->handshake_cv_.WaitFor(&c->mu_, deadline - now);
  }
  if (c->handshake_error_.has_value()) return *c->handshake_error_;
  return c;
}

ports::NodeName NodeController::NewChildName() const {
  ports::NodeName child;
  do {
    child = ports::NodeName::Random();
  } while (child == name_);  // channels_ collisions: 2^-128, asserted in Greet
  return child;
}

Result<system::Handle> NodeController::Greet(const ChannelPtr& channel) {
  const ports::NodeName child = channel->peer;
  MOAT_ASSIGN_OR_RETURN(auto pipe, core_->CreateMessagePipe());
  auto port = core_->ReleaseForRemoteMerge(pipe.second);
  if (!port.ok()) {
    (void)core_->Close(pipe.first);
    DropChannel(channel.get(), port.error());
    return std::move(port).error();
  }
  channel->bootstrap_port = *port;
  {
    // MRG-3: this child, and only it, may merge with the port (once).
    ports::PortRef ref;
    Status offered = core_->node().GetPort(*port, &ref);
    if (offered.ok()) offered = core_->node().OfferForMerge(ref, child);
    MOAT_ASSERT(offered.ok(), "offering a fresh bootstrap port failed: ",
                offered.ok() ? std::string() : offered.error().ToString());
  }
  {
    MutexLock lock(&mu_);
    MOAT_ASSERT(!channels_.contains(child), "node name collision");
    channels_[child] = channel;
  }
  NodeChannelHeader hello;
  hello.type = NodeChannelMessageType::kHello;
  hello.sender = name_;
  hello.target = child;
  hello.subject_hi = port->hi;
  hello.subject_lo = port->lo;
  Status sent = channel->Send(EncodeNodeChannelMessage(hello));
  if (!sent.ok()) {
    DropChannel(channel.get(), sent.error());
    (void)core_->Close(pipe.first);
    return std::move(sent).error();
  }
  return pipe.first;
}

Result<Invitation> NodeController::InviteChild() {
  MOAT_ASSERT(is_broker_, "InviteChild on a child node");
  MOAT_ASSIGN_OR_RETURN(ChannelPtr channel, NewChannel(NewChildName()));
  auto pair = transport::Transport::CreatePaired(TransportOptionsFor(channel.get()));
  if (!pair.ok()) {
    channel->SetTransport(nullptr);
    return std::move(pair).error();
  }
  auto socket = std::move(pair->handle).TakeSocketForSending();
  if (!socket.ok()) {
    channel->SetTransport(nullptr);
    return std::move(socket).error();  // pair->transport is destroyed here, on our thread
  }
  channel->SetTransport(std::move(pair->transport));
  MOAT_ASSIGN_OR_RETURN(system::Handle bootstrap, Greet(channel));
  return Invitation{std::move(*socket), channel->peer, bootstrap};
}

Result<LaunchedChild> NodeController::AddChild(UniqueFd socket) {
  MOAT_ASSERT(is_broker_, "AddChild on a child node");
  MOAT_ASSIGN_OR_RETURN(ChannelPtr channel, NewChannel(NewChildName()));
  auto t = transport::TransportHandle(std::move(socket))
               .CreateTransport(TransportOptionsFor(channel.get()));
  if (!t.ok()) {
    channel->SetTransport(nullptr);
    return std::move(t).error();
  }
  channel->SetTransport(std::move(*t));
  MOAT_ASSIGN_OR_RETURN(system::Handle bootstrap, Greet(channel));
  return LaunchedChild{-1, channel->peer, bootstrap};
}

Result<LaunchedChild> NodeController::LaunchChild(const std::string& path,
                                                  const std::vector<std::string>& args,
                                                  const LaunchOptions& options) {
  MOAT_ASSIGN_OR_RETURN(Invitation inv, InviteChild());
  auto pid = LaunchChildProcess(path, args, std::move(inv.child_socket), options);
  if (!pid.ok()) {
    DisconnectNode(inv.child_name, pid.error());
    (void)core_->Close(inv.bootstrap);
    return std::move(pid).error();
  }
  return LaunchedChild{*pid, inv.child_name, inv.bootstrap};
}

std::optional<Error> NodeController::BrokerLoss() const {
  MutexLock lock(&mu_);
  return broker_loss_;
}

std::vector<ports::NodeName> NodeController::ConnectedNodes() const {
  MutexLock lock(&mu_);
  std::vector<ports::NodeName> out;
  for (const auto& [name, channel] : channels_) {
    if (channel->state == Channel::State::kReady) out.push_back(name);
  }
  if (broker_channel_ && handshake_done_) out.push_back(broker_name_);
  return out;
}

void NodeController::OnMessage(Channel* channel, transport::MessageView& message) {
  if (channel->closed) return;  // being dropped; the transport closes the fds
  Status s = HandleMessage(channel, message);
  if (!s.ok()) CutOff(channel, s.error());
}

void NodeController::CutOff(Channel* channel, const Error& why) {
  // Tell the peer why, if the handshake gave us both names (best effort: a
  // peer that stopped reading does not get it, and nobody waits for it).
  if (!channel->closed && channel->peer.is_valid() && name_.is_valid() &&
      channel->state == Channel::State::kReady) {
    (void)channel->SendWithoutWaiting(EncodeDisconnectMessage(name_, channel->peer, why.ToString()));
  }
  DropChannel(channel, why);
}

Error NodeController::CutOffBy(const NodeChannelMessage& message) {
  const std::string_view reason(reinterpret_cast<const char*>(message.body.data()),
                                message.body.size());
  return Error(ErrorCode::kPeerClosed,
               ::moat::internal::Concat("node ", message.header.sender.ToString(),
                                        " cut this node off: ", reason));
}

void NodeController::OnDisconnect(Channel* channel, const Error& error) {
  DropChannel(channel, error);
}

Status NodeController::HandleMessage(Channel* channel, transport::MessageView& raw) {
  MOAT_ASSIGN_OR_RETURN(NodeChannelMessage message,
                        DecodeNodeChannelMessage(raw.payload, raw.fds.size()));
  if (channel->state == Channel::State::kAwaitingHello) return HandleHello(channel, message);
  if (is_broker_) return HandleAsBroker(channel, message, raw);
  return HandleAsChild(channel, message, raw);
}

Status NodeController::HandleHello(Channel* channel, const NodeChannelMessage& message) {
  const NodeChannelHeader& h = message.header;
  // A broker refusing us before the greeting says why; that is the error.
  if (h.type == NodeChannelMessageType::kDisconnect) return CutOffBy(message);
  // Attack: a peer skipping the handshake, e.g. events before this node has a name.
  MOAT_REQUIRE(h.type == NodeChannelMessageType::kHello, ErrorCode::kProtocolViolation,
               "expected hello as the broker's first message, got ",
               NodeChannelMessageTypeName(h.type));
  name_ = h.target;
  broker_name_ = h.sender;
  channel->peer = h.sender;
  core_ = std::make_unique<NodeCore>(this, name_, options_);
  MOAT_ASSIGN_OR_RETURN(auto pipe, core_->CreateMessagePipe());
  channel->state = Channel::State::kReady;

  NodeChannelHeader reply;
  reply.type = NodeChannelMessageType::kHelloReply;
  reply.sender = name_;
  reply.target = broker_name_;
  // The reply goes out before the merge's events: the broker accepts events
  // only from a child that has answered.
  MOAT_TRY(channel->Send(EncodeNodeChannelMessage(reply)));
  MOAT_TRY(core_->MergeWithRemotePort(pipe.second, broker_name_, h.subject_port()));
  bootstrap_ = pipe.first;
  MutexLock lock(&mu_);
  handshake_done_ = true;
  handshake_cv_.SignalAll();
  return OkStatus();
}

namespace {

// A send an IO thread could not make without waiting: the peer stopped
// reading and its queue is full (Transport::OnAnyIoThread).
bool Refused(const Status& sent) {
  return !sent.ok() && sent.error().code() == ErrorCode::kResourceExhausted;
}

// Why the broker cut off a child whose socket it could no longer write to.
Error StoppedReading(const ports::NodeName& peer, const Status& refused) {
  return Error(ErrorCode::kResourceExhausted,
               ::moat::internal::Concat("node ", peer.ToString(), " stopped reading: ",
                                        refused.error().ToString()));
}

}  // namespace

Status NodeController::HandleAsBroker(Channel* channel, const NodeChannelMessage& message,
                                      transport::MessageView& raw) {
  const NodeChannelHeader& h = message.header;
  if (channel->state == Channel::State::kAwaitingHelloReply) {
    // Attack: a child that skips the handshake and starts sending events.
    MOAT_REQUIRE(h.type == NodeChannelMessageType::kHelloReply, ErrorCode::kProtocolViolation,
                 "expected hello_reply as the child's first message, got ",
                 NodeChannelMessageTypeName(h.type));
    // Attack: a child claiming a name other than the one it was given (e.g.
    // another child's, to receive or inject that child's events).
    MOAT_REQUIRE(h.sender == channel->peer, ErrorCode::kProtocolViolation,
                 "hello_reply from node ", h.sender.ToString(), " but this connection's node is ",
                 channel->peer.ToString());
    // Attack: a reply addressed elsewhere (confusing routing of the handshake).
    MOAT_REQUIRE(h.target == name_, ErrorCode::kProtocolViolation, "hello_reply addressed to ",
                 h.target.ToString(), ", not to this broker");
    channel->state = Channel::State::kReady;
    return OkStatus();
  }
  if (h.type == NodeChannelMessageType::kDisconnect) {
    // Attack: a child speaking for another, or asking us to relay its parting
    // words (disconnects are for direct connections only).
    MOAT_REQUIRE(h.sender == channel->peer && h.target == name_, ErrorCode::kProtocolViolation,
                 "disconnect from node ", h.sender.ToString(), " for node ", h.target.ToString(),
                 " on the connection of node ", channel->peer.ToString(), " (never relayed)");
    DropChannel(channel, CutOffBy(message));
    return OkStatus();
  }
  // Attack: a child sending broker-only messages (names, loss reports) or
  // repeating the handshake to rename itself.
  MOAT_REQUIRE(h.type == NodeChannelMessageType::kEvent, ErrorCode::kProtocolViolation,
               "a child may send only events after the handshake, got ",
               NodeChannelMessageTypeName(h.type));
  // Attack: a child forging another node's name to inject events into pipes
  // it is not part of.
  MOAT_REQUIRE(h.sender == channel->peer, ErrorCode::kProtocolViolation, "event from node ",
               h.sender.ToString(), " on the connection of node ", channel->peer.ToString(),
               " (forged sender)");
  if (h.target == name_) return AcceptEventBytes(h.sender, message.body, raw.fds, raw.owned);

  // Relay to another child, unchanged: that child checks the event itself.
  ChannelPtr destination;
  {
    MutexLock lock(&mu_);
    auto it = channels_.find(h.target);
    if (it != channels_.end()) destination = it->second;
  }
  // No such node: it is gone (a normal race with its loss, reported to
  // everyone by kNodeLost) or never was; the event is dropped like one for a
  // closed port, and its descriptors are closed.
  if (!destination || destination->closed) return OkStatus();
  // Attack (PRT-14 on children): a child re-points a port of another child
  // at a node that does not exist, then dies; that child cannot tell (only
  // we know every node), so no loss would ever close the port. We tell it
  // first: the loss report travels ahead of the event on the same socket.
  if (std::optional<ports::NodeName> ghost = UnknownNodeNamedBy(message.body)) {
    NodeChannelHeader lost;
    lost.type = NodeChannelMessageType::kNodeLost;
    lost.sender = name_;
    lost.target = destination->peer;
    lost.subject_hi = ghost->hi;
    lost.subject_lo = ghost->lo;
    Status sent = destination->SendWithoutWaiting(EncodeNodeChannelMessage(lost));
    if (Refused(sent)) {
      DropChannel(destination.get(), StoppedReading(destination->peer, sent));
      return OkStatus();
    }
  }
  // Attack: a child (hostile or hung) that never reads its socket. A waiting
  // relay would stall this thread, which serves the SENDING child, behind a
  // child it cannot control; instead the destination's queue is bounded by
  // its max_unprocessed_bytes and a destination that lets it fill is cut off.
  // Any other failed send shows up as that transport's own disconnect.
  Status relayed = destination->SendWithoutWaiting(raw.payload, std::move(raw.fds));
  if (Refused(relayed)) {
    DropChannel(destination.get(), StoppedReading(destination->peer, relayed));
  }
  return OkStatus();
}

Status NodeController::HandleAsChild(Channel* channel, const NodeChannelMessage& message,
                                     transport::MessageView& raw) {
  std::vector<UniqueFd>& fds = raw.fds;
  const NodeChannelHeader& h = message.header;
  // Attack: messages for another node (misrouting into this node's ports).
  MOAT_REQUIRE(h.target == name_, ErrorCode::kProtocolViolation, "message for node ",
               h.target.ToString(), " arrived at node ", name_.ToString());
  switch (h.type) {
    case NodeChannelMessageType::kEvent: {
      if (h.sender == broker_name_) {
        return AcceptEventBytes(h.sender, message.body, fds, raw.owned);
      }
      // Relayed from another child. A bad event there is that child's fault:
      // drop every pipe to it, keep the broker.
      {
        MutexLock lock(&mu_);
        // Lost already (e.g. for an earlier bad event): its later events are
        // dropped unread, and it is reported lost only once (NOD-8).
        if (lost_remote_.contains(h.sender)) return OkStatus();
        remote_nodes_[h.sender] = true;
      }
      Status s = AcceptEventBytes(h.sender, message.body, fds, raw.owned);
      if (!s.ok()) LoseRemoteNode(h.sender, s.error());
      return OkStatus();
    }
    case NodeChannelMessageType::kNodeLost: {
      // Attack: (unreachable with the rules above: only the broker is
      // connected) a loss report about this node or its broker.
      MOAT_REQUIRE(h.subject_node() != name_ && h.subject_node() != broker_name_,
                   ErrorCode::kProtocolViolation, "node_lost names node ",
                   h.subject_node().ToString(), " (this node or the broker)");
      LoseRemoteNode(h.subject_node(),
                     Error(ErrorCode::kPeerClosed, moat::internal::Concat("the broker reports node ",
                                                                    h.subject_node().ToString(),
                                                                    " lost")));
      return OkStatus();
    }
    case NodeChannelMessageType::kDisconnect:
      // Attack: (unreachable: a child's only connection is the broker's, and
      // the broker relays no disconnects) another node's parting words.
      MOAT_REQUIRE(h.sender == broker_name_, ErrorCode::kProtocolViolation,
                   "disconnect from node ", h.sender.ToString(), ", not from the broker");
      DropChannel(channel, CutOffBy(message));
      return OkStatus();
    case NodeChannelMessageType::kHello:
    case NodeChannelMessageType::kHelloReply:
      break;
  }
  // Attack: a second hello renaming this node mid-connection.
  return Error(ErrorCode::kProtocolViolation,
               moat::internal::Concat("unexpected ", NodeChannelMessageTypeName(h.type),
                                " after the handshake"));
}

Status NodeController::AcceptEventBytes(const ports::NodeName& from,
                                        std::span<const uint8_t> body,
                                        std::vector<UniqueFd>& fds,
                                        std::vector<uint8_t>* owned) {
  // A large event arrived in a buffer of its own: the message keeps it, so
  // the payload reaches the reader without a copy (issue 14).
  auto event = owned != nullptr ? ports::DeserializeEventAdopting(*owned, body, fds)
                                : ports::DeserializeEvent(body, fds);
  if (!event.ok()) return std::move(event).error().WithField("NodeChannelMessage.body");
  // Attribution for bad-message reports (issue 15 item 2): `from` is the
  // authenticated sender (checked against the connection or, relayed, by the
  // broker).
  if ((*event)->type() == ports::EventType::kUserMessage) {
    static_cast<ports::UserMessageEvent&>(**event).message->source_node = from;
  }
  return core_->node().AcceptEvent(from, std::move(*event));
}

void NodeController::ForwardEvent(const ports::NodeName& node,
                                  std::unique_ptr<ports::Event> event) {
  ChannelPtr channel;
  {
    MutexLock lock(&mu_);
    if (shutting_down_) return;
    if (is_broker_) {
      auto it = channels_.find(node);
      if (it != channels_.end()) channel = it->second;
    } else {
      channel = broker_channel_;
      if (node != broker_name_) remote_nodes_[node] = true;
    }
  }
  // Unknown or lost node: drop the event (its descriptors close with it); the
  // pipes that depended on that node were or will be closed by
  // LostConnectionToNode.
  if (!channel || channel->closed) return;
  NodeChannelHeader h;
  h.type = NodeChannelMessageType::kEvent;
  h.sender = name_;
  h.target = node;
  std::vector<UniqueFd> fds;
  // Encoded once, payload included, into the buffer the transport sends.
  std::vector<uint8_t> wire =
      ports::SerializeEventAfterPrefix(std::move(event), kNodeChannelHeaderSize, &fds);
  h.fd_count = static_cast<uint32_t>(fds.size());
  WriteNodeChannelHeader(
      h, wire.size() - kNodeChannelHeaderSize,
      std::span<uint8_t, kNodeChannelHeaderSize>(wire.data(), kNodeChannelHeaderSize));
  // A failed send shows up as the transport's own disconnect, except a
  // refusal: the send queue is full and this is an IO thread (this channel's,
  // or on the broker another child's, forwarding through a proxy), which must
  // not wait (NOD-6). The event would be lost and the pipe stall silently
  // (the receiver waits for it forever): fail the connection loudly instead.
  // A non-blocking write (ports::ScopedNoWait) never waits here either: it
  // checked WouldWaitToSend first, so it adds at most one message past the
  // high-water mark, within the hard cap.
  Status sent = ports::ThreadMayWait() ? channel->Send(std::move(wire), std::move(fds))
                                       : channel->SendWithoutWaiting(std::move(wire), std::move(fds));
  // Past the high-water mark: pipes to this node stop being WRITABLE
  // (WouldWaitToSend) until the transport reports space.
  transport::Transport* t = channel->transport();
  if (t != nullptr && t->AboveHighWater() && !channel->congested.exchange(true)) {
    congested_channels_.fetch_add(1);
    (void)t->WouldWaitToSend();  // asks for on_send_space
  }
  if (Refused(sent)) {
    DropChannel(channel.get(), StoppedReading(channel->peer, sent));
  }
}

bool NodeController::WouldWaitToSend(const ports::NodeName& node) {
  ChannelPtr channel;
  {
    MutexLock lock(&mu_);
    if (shutting_down_) return false;
    if (is_broker_) {
      auto it = channels_.find(node);
      if (it != channels_.end()) channel = it->second;
    } else {
      channel = broker_channel_;
    }
  }
  if (!channel || channel->closed) return false;
  transport::Transport* t = channel->transport();
  return t != nullptr && t->WouldWaitToSend();
}

void NodeController::BadEventFrom(const ports::NodeName& node, const Error& error) {
  DisconnectNode(node, error);
}

void NodeController::DisconnectNode(const ports::NodeName& node, const Error& why) {
  ChannelPtr channel;
  {
    MutexLock lock(&mu_);
    if (is_broker_) {
      auto it = channels_.find(node);
      if (it != channels_.end()) channel = it->second;
    } else if (node == broker_name_) {
      channel = broker_channel_;
    }
  }
  if (channel) {
    CutOff(channel.get(), why);
  } else if (!is_broker_) {
    LoseRemoteNode(node, why);
  }
}

void NodeController::DropChannel(Channel* channel, const Error& why) {
  if (channel->closed.exchange(true)) return;
  if (channel->congested.exchange(false)) congested_channels_.fetch_sub(1);
  ChannelPtr self;  // released at the end: to the reaper
  std::vector<ChannelPtr> others;
  std::vector<ports::NodeName> remote;
  bool shutting_down;
  {
    MutexLock lock(&mu_);
    shutting_down = shutting_down_;
    if (is_broker_) {
      auto it = channels_.find(channel->peer);
      if (it != channels_.end() && it->second.get() == channel) {
        self = std::move(it->second);
        channels_.erase(it);
      }
      for (const auto& [name, other] : channels_) others.push_back(other);
    } else {
      if (broker_channel_.get() == channel) {
        self = std::move(broker_channel_);
        broker_loss_ = why;
      }
      for (const auto& [name, unused] : remote_nodes_) remote.push_back(name);
      remote_nodes_.clear();
      if (!handshake_done_) {
        handshake_error_ = why;
        handshake_cv_.SignalAll();
      }
    }
  }
  if (shutting_down || !core_ || !channel->peer.is_valid()) return;
  const ports::NodeName peer = channel->peer;
  ports::Node& node = core_->node();
  node.LostConnectionToNode(peer);
  if (is_broker_) {
    // A child that never merged its bootstrap pipe leaves our end waiting:
    // close the port it should have merged with so our end sees peer-closed.
    ports::PortRef port;
    if (channel->bootstrap_port.is_valid() && node.GetPort(channel->bootstrap_port, &port).ok()) {
      (void)node.ClosePort(port);
    }
    NodeChannelHeader lost;
    lost.type = NodeChannelMessageType::kNodeLost;
    lost.sender = name_;
    lost.subject_hi = peer.hi;
    lost.subject_lo = peer.lo;
    std::vector<std::pair<ChannelPtr, Status>> stalled;
    for (const ChannelPtr& other : others) {
      if (other->closed) continue;
      lost.target = other->peer;
      // Never waits (NOD-6): one child that stopped reading must not keep the
      // others from learning of the loss.
      Status sent = other->SendWithoutWaiting(EncodeNodeChannelMessage(lost));
      if (Refused(sent)) stalled.emplace_back(other, std::move(sent));
    }
    for (auto& [other, sent] : stalled) DropChannel(other.get(), StoppedReading(other->peer, sent));
  } else {
    for (const ports::NodeName& r : remote) node.LostConnectionToNode(r);
  }
  if (options_.on_node_lost) options_.on_node_lost(peer, why);
}

std::optional<ports::NodeName> NodeController::UnknownNodeNamedBy(
    std::span<const uint8_t> body) const {
  // Only these two re-point a port at a node other than the sender's (a
  // descriptor's port keeps the sender as its previous hop, so the sender's
  // loss closes it). Peeked by type first: the relay stays cheap.
  if (body.size() < 4) return std::nullopt;
  const uint32_t type = uint32_t{body[0]} | uint32_t{body[1]} << 8 | uint32_t{body[2]} << 16 |
                        uint32_t{body[3]} << 24;
  if (type != static_cast<uint32_t>(ports::EventType::kObserveProxy) &&
      type != static_cast<uint32_t>(ports::EventType::kUpdatePreviousPeer)) {
    return std::nullopt;
  }
  auto event = ports::DeserializeEvent(body, {});
  if (!event.ok()) return std::nullopt;  // the destination rejects it itself
  ports::NodeName named;
  if ((*event)->type() == ports::EventType::kObserveProxy) {
    named = static_cast<const ports::ObserveProxyEvent&>(**event).proxy_target_node;
  } else {
    named = static_cast<const ports::UpdatePreviousPeerEvent&>(**event).new_prev_node;
  }
  if (!named.is_valid() || IsNodeReachable(named)) return std::nullopt;
  return named;
}

bool NodeController::IsNodeReachable(const ports::NodeName& node) const {
  MutexLock lock(&mu_);
  if (node == name_) return true;
  if (is_broker_) {
    // Every node the broker can reach is one of its children.
    auto it = channels_.find(node);
    return it != channels_.end() && !it->second->closed;
  }
  // A child cannot tell whether another child exists (the broker relays for
  // it); it knows only the ones it lost.
  return node == broker_name_ || !lost_remote_.contains(node);
}

void NodeController::LoseRemoteNode(const ports::NodeName& node, const Error& why) {
  {
    MutexLock lock(&mu_);
    if (shutting_down_) return;
    remote_nodes_.erase(node);
    // Once per node (NOD-8), however many bad events or loss reports name it.
    if (!lost_remote_.insert(node).second) return;
    lost_remote_order_.push_back(node);
    // Attack: a hostile child sending events under ever new names (each
    // relayed, each bad) to grow this memory; the oldest is forgotten.
    if (lost_remote_order_.size() > limits::MAX_REMEMBERED_LOST_NODES) {
      lost_remote_.erase(lost_remote_order_.front());
      lost_remote_order_.pop_front();
    }
  }
  core_->node().LostConnectionToNode(node);
  if (options_.on_node_lost) options_.on_node_lost(node, why);
}

}  // namespace moat::node
