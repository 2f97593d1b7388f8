// NodeController: one process's ports node, connected to the nodes of other
// processes over moat Transports (R24). moat's NodeController (Mojo).
//
// Topology: a broker and its children. The broker holds one transport per
// child; a child holds one transport, to the broker. Events between two
// children travel through the broker, which relays them unchanged after
// checking that the sending child speaks under its own name.
//
//   // Broker process:
//   auto broker = NodeController::CreateBroker();
//   MOAT_ASSIGN_OR_RETURN(LaunchedChild child,
//                         broker->LaunchChild("/proc/self/exe", {"demo-child"}));
//   broker->core().WriteMessage(child.bootstrap, bytes, {}, {});
//
//   // Child process (started by LaunchChild):
//   MOAT_ASSIGN_OR_RETURN(UniqueFd socket, TakeBrokerSocketFromEnvironment());
//   MOAT_ASSIGN_OR_RETURN(auto node, NodeController::ConnectToBroker(std::move(socket)));
//   node->core().ReadMessage(node->bootstrap(), ...);
//
// Handshake (names). The broker names every child: its first message is
// kHello{sender = broker, target = the child's new name, subject = a port of
// the broker}. The child adopts that name, answers kHelloReply under it, and
// merges its end of a new pipe with the broker's port: that pipe is the
// child's bootstrap pipe (Mojo's invitation). Because the broker picks every
// name, no node can take another's: a child must answer, and afterwards
// speak, under exactly the name it was given; anything else disconnects it.
//
// Hostile peers. Every node-channel message is decoded strictly
// (node_channel.h) and checked against the connection's authenticated name
// and state; events go to Node::AcceptEvent. Any Error disconnects that
// transport (the broker keeps serving the others) and calls
// Node::LostConnectionToNode for that node, so every pipe that depended on
// it reports peer-closed (R11); the broker then tells the other children
// (kNodeLost). A child that receives a bad event relayed from another child
// cannot cut that child off; it drops every pipe to it instead
// (LostConnectionToNode) and reports it through on_node_lost.
//
// Threads. Every transport of the node runs on one of a fixed set of shared
// IO loops (transport/io_loop.h: limits::NODE_IO_LOOPS for a broker, one for
// a child), assigned round-robin; its callbacks run on that loop's thread,
// which serves the other transports too, so they never wait for a peer
// (NOD-6: sends from there refuse rather than wait). Transports are never
// destroyed on their own IO thread: a released connection is handed to a
// reaper thread. All public methods may be called from any thread except
// the destructor, which must not race with other calls.
#ifndef MOAT_CORE_NODE_NODE_CONTROLLER_H_
#define MOAT_CORE_NODE_NODE_CONTROLLER_H_

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/mutex.h"
#include "core/node/launch.h"
#include "core/node/node_channel.h"
#include "core/ports/event.h"
#include "core/ports/name.h"
#include "core/system/core.h"
#include "core/unique_fd.h"
#include "limits/limits.h"
#include "transport/transport.h"

namespace moat::node {

struct NodeControllerOptions {
  // In force on every node-channel transport of this node.
  limits::ConnectionLimits limits = limits::ConnectionLimits::Defaults();
  // Called once per lost node with the reason: the transport died, the peer
  // broke the protocol (the precise Error), or the broker reported it lost.
  // Runs on an IO thread; must not destroy the controller.
  std::function<void(const ports::NodeName&, const Error&)> on_node_lost;
  // How long a writer waits for a peer that takes nothing from its socket, or
  // never confirms a new link, before that peer is cut off
  // (limits::PEER_STALL_TIMEOUT_MS; issue 15 item 3).
  std::chrono::milliseconds peer_stall_timeout{limits::PEER_STALL_TIMEOUT_MS};
  // A pipe's unread-bytes window and receive cap (ports::NodeOptions).
  size_t unread_bytes_window = limits::PIPE_UNREAD_BYTES_WINDOW;
  size_t max_unread_bytes = limits::MAX_PIPE_UNREAD_BYTES;
  // Shared IO threads for all of this node's transports (round-robin).
  // Unset: limits::NODE_IO_LOOPS for a broker, 1 for a child. 0: one
  // private IO thread per transport (the model before issue 15 item 4).
  std::optional<size_t> io_loops;
};

// What InviteChild returns: hand `child_socket` to the child process; the
// broker's end of the child's bootstrap pipe is `bootstrap`.
struct Invitation {
  UniqueFd child_socket;
  ports::NodeName child_name;
  system::Handle bootstrap = system::kInvalidHandle;
};

struct LaunchedChild {
  pid_t pid = -1;
  ports::NodeName name;
  system::Handle bootstrap = system::kInvalidHandle;
};

class NodeController {
 public:
  static std::unique_ptr<NodeController> CreateBroker(NodeControllerOptions options = {});

  // A child's side: adopts `socket` (a connected Unix stream socket to the
  // broker), waits up to `timeout` for the broker's hello, takes the name it
  // assigns and merges the bootstrap pipe (bootstrap()).
  static Result<std::unique_ptr<NodeController>> ConnectToBroker(
      UniqueFd socket, std::chrono::nanoseconds timeout = std::chrono::seconds(10),
      NodeControllerOptions options = {});

  // Orderly: first waits (at most limits::NODE_SHUTDOWN_FLUSH_TIMEOUT_MS,
  // while connected) until everything written before is handed over: moving
  // ports confirmed, send queues flushed (crbug.com/1005510).
  ~NodeController();
  NodeController(const NodeController&) = delete;
  NodeController& operator=(const NodeController&) = delete;

  system::Core& core() { return *core_; }
  const ports::NodeName& name() const { return name_; }
  bool is_broker() const { return is_broker_; }
  // Child: its end of the bootstrap pipe to the broker.
  system::Handle bootstrap() const { return bootstrap_; }
  // Child: the broker's name.
  const ports::NodeName& broker_name() const { return broker_name_; }

  // Broker: a new child connection (a socketpair; the broker's end is live).
  Result<Invitation> InviteChild() ABSL_LOCKS_EXCLUDED(mu_);
  // Broker: a child already connected over `socket` (e.g. a socketpair made
  // before a fork). Returns the child's name and the bootstrap pipe; the
  // child calls ConnectToBroker on the other end.
  Result<LaunchedChild> AddChild(UniqueFd socket) ABSL_LOCKS_EXCLUDED(mu_);
  // Broker: InviteChild + fork/exec `path` with `args` (argv[1..]) and the
  // child's socket inherited (TakeBrokerSocketFromEnvironment finds it), by
  // LaunchChildProcess (launch.h: only the mapped descriptors are inherited).
  Result<LaunchedChild> LaunchChild(const std::string& path, const std::vector<std::string>& args,
                                    const LaunchOptions& options = {}) ABSL_LOCKS_EXCLUDED(mu_);

  // Drops the connection to `node` (if direct) as if it had failed with `why`.
  void DisconnectNode(const ports::NodeName& node, const Error& why) ABSL_LOCKS_EXCLUDED(mu_);

  // Nodes with a live, handshaken transport to this one.
  std::vector<ports::NodeName> ConnectedNodes() const ABSL_LOCKS_EXCLUDED(mu_);

  // Child: why the connection to the broker ended (the broker's own words,
  // "node B cut this node off: ...", if it said why); nullopt while it lasts.
  std::optional<Error> BrokerLoss() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  class Channel;
  class NodeCore;
  struct ChannelDeleter {
    NodeController* controller;
    void operator()(Channel* channel) const;
  };
  using ChannelPtr = std::shared_ptr<Channel>;

  NodeController(bool is_broker, NodeControllerOptions options);

  Result<ChannelPtr> NewChannel(const ports::NodeName& peer) ABSL_LOCKS_EXCLUDED(mu_);
  // Broker: names the child on `channel`'s transport, creates its bootstrap
  // pipe and sends the hello. Returns the broker's end of the pipe.
  Result<system::Handle> Greet(const ChannelPtr& channel) ABSL_LOCKS_EXCLUDED(mu_);
  ports::NodeName NewChildName() const;
  transport::TransportOptions TransportOptionsFor(Channel* channel);

  // Transport callbacks (IO thread of the channel's transport).
  void OnMessage(Channel* channel, transport::MessageView& message) ABSL_LOCKS_EXCLUDED(mu_);
  void OnDisconnect(Channel* channel, const Error& error) ABSL_LOCKS_EXCLUDED(mu_);
  // Drops `channel` for a reason of ours, telling the peer why first
  // (node channel kDisconnect, best effort, never waiting).
  void CutOff(Channel* channel, const Error& why) ABSL_LOCKS_EXCLUDED(mu_);
  // The error for a peer's kDisconnect: its name and its reason.
  static Error CutOffBy(const NodeChannelMessage& message);

  Status HandleMessage(Channel* channel, transport::MessageView& message);
  Status HandleHello(Channel* channel, const NodeChannelMessage& message);
  Status HandleAsBroker(Channel* channel, const NodeChannelMessage& message,
                        transport::MessageView& raw);
  Status HandleAsChild(Channel* channel, const NodeChannelMessage& message,
                       transport::MessageView& raw);
  // `owned`: the buffer `body` lies in, if the transport received it into
  // one of its own (MessageView::owned): a user message then keeps it.
  Status AcceptEventBytes(const ports::NodeName& from, std::span<const uint8_t> body,
                          std::vector<UniqueFd>& fds, std::vector<uint8_t>* owned);

  // NodeDelegate paths (via NodeCore).
  void ForwardEvent(const ports::NodeName& node, std::unique_ptr<ports::Event> event)
      ABSL_LOCKS_EXCLUDED(mu_);
  void BadEventFrom(const ports::NodeName& node, const Error& error) ABSL_LOCKS_EXCLUDED(mu_);
  // NodeDelegate::WouldWaitToSend: the transport to `node` is above its
  // high-water mark.
  bool WouldWaitToSend(const ports::NodeName& node) ABSL_LOCKS_EXCLUDED(mu_);

  // Removes a direct connection and tells everyone who needs to know.
  void DropChannel(Channel* channel, const Error& why) ABSL_LOCKS_EXCLUDED(mu_);
  // Forgets an indirect node (reached through the broker).
  void LoseRemoteNode(const ports::NodeName& node, const Error& why) ABSL_LOCKS_EXCLUDED(mu_);
  // Broker: the node a relayed ObserveProxy/UpdatePreviousPeer re-points a
  // port at, if no such node is connected (PRT-14).
  std::optional<ports::NodeName> UnknownNodeNamedBy(std::span<const uint8_t> body) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // NodeDelegate::IsNodeReachable (PRT-14).
  bool IsNodeReachable(const ports::NodeName& node) const ABSL_LOCKS_EXCLUDED(mu_);
  void ReaperMain() ABSL_LOCKS_EXCLUDED(reaper_mu_);
  // Orderly shutdown: waits (at most NODE_SHUTDOWN_FLUSH_TIMEOUT_MS, and
  // only while a connection is up) until the node has nothing in flight and
  // every transport's send queue is empty.
  void FlushBeforeShutdown() ABSL_LOCKS_EXCLUDED(mu_);

  const bool is_broker_;
  // Channels whose transport is past its send high-water mark (Channel::
  // congested): while 0, NodeCore::AnyTransportFull is false and GetStatus
  // asks no further (no lock).
  std::atomic<int> congested_channels_{0};
  const NodeControllerOptions options_;
  // The IO threads of all our transports (null: a private thread each);
  // outlives them (the destructor waits until the reaper destroyed every
  // channel).
  const std::unique_ptr<transport::IoLoopPool> io_loops_;
  // Written once: before any connection exists (broker) or on the broker
  // channel's IO thread before handshake_done_ is set under mu_ (child); read
  // by other threads only after that.
  ports::NodeName name_;
  ports::NodeName broker_name_;
  std::unique_ptr<system::Core> core_;
  system::Handle bootstrap_ = system::kInvalidHandle;

  // Lock order: mu_ is a leaf with respect to this package's locks and is
  // never held while calling a transport, the Core or a callback.
  mutable Mutex mu_;
  CondVar handshake_cv_;
  std::map<ports::NodeName, ChannelPtr> channels_ ABSL_GUARDED_BY(mu_);  // broker: children
  ChannelPtr broker_channel_ ABSL_GUARDED_BY(mu_);                      // child: the broker
  bool handshake_done_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<Error> handshake_error_ ABSL_GUARDED_BY(mu_);
  std::optional<Error> broker_loss_ ABSL_GUARDED_BY(mu_);  // child: see BrokerLoss()
  // Child: nodes other than the broker it has exchanged events with, so that
  // losing the broker closes the pipes to them too.
  std::map<ports::NodeName, bool> remote_nodes_ ABSL_GUARDED_BY(mu_);
  // Child: other nodes it lost (the latest MAX_REMEMBERED_LOST_NODES).
  std::set<ports::NodeName> lost_remote_ ABSL_GUARDED_BY(mu_);
  std::deque<ports::NodeName> lost_remote_order_ ABSL_GUARDED_BY(mu_);
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;

  // Channels whose last reference was dropped, destroyed on reaper_ (never on
  // their own IO thread). Lock order: leaf.
  Mutex reaper_mu_;
  CondVar reaper_cv_;
  std::deque<Channel*> graveyard_ ABSL_GUARDED_BY(reaper_mu_);
  bool reaper_stop_ ABSL_GUARDED_BY(reaper_mu_) = false;
  size_t live_channels_ ABSL_GUARDED_BY(reaper_mu_) = 0;  // created, not yet destroyed
  std::thread reaper_;
};

// LaunchChildProcess, TakeBrokerSocketFromEnvironment: core/node/launch.h.

}  // namespace moat::node

#endif  // MOAT_CORE_NODE_NODE_CONTROLLER_H_
