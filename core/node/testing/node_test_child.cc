// The child process of the multi-process node tests (node_controller_test).
//
//   node_test_child script          obey commands on the bootstrap pipe
//   node_test_child stop-script     stop (SIGSTOP) right after connecting, then obey
//   node_test_child hostile-<kind>  speak a broken node-channel protocol
//
// Started by NodeController::LaunchChild, so the broker socket is named by
// MOAT_NODE_BROKER_FD. Exit status 0 means every step checked out; any other
// status and a line on stderr say what went wrong.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "core/ports/event_codec.h"
#include "core/node/node_channel.h"
#include "core/node/node_controller.h"
#include "core/node/pipe_wait.h"
#include "transport/transport.h"

namespace moat::node {
namespace {

constexpr auto kTimeout = std::chrono::seconds(20);

int Fail(const std::string& why) {
  std::fprintf(stderr, "node_test_child: %s\n", why.c_str());
  return 2;
}

std::string Text(std::span<const uint8_t> b) { return std::string(b.begin(), b.end()); }
std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

Status Write(system::Core& core, system::Handle pipe, const std::string& text,
             std::vector<system::Handle> handles = {}, std::vector<UniqueFd> fds = {}) {
  return core.WriteMessage(pipe, Bytes(text), handles, std::move(fds));
}

int RunScript(bool stop_after_connect) {
  auto socket = TakeBrokerSocketFromEnvironment();
  if (!socket.ok()) return Fail(socket.error().ToString());
  auto node = NodeController::ConnectToBroker(std::move(*socket));
  if (!node.ok()) return Fail("connect: " + node.error().ToString());
  // A just-connected child that stops (hung, or hostile) before it confirms
  // anything the broker sends it.
  if (stop_after_connect) ::raise(SIGSTOP);
  system::Core& core = (*node)->core();
  const system::Handle boot = (*node)->bootstrap();
  system::Handle held = system::kInvalidHandle;

  for (;;) {
    auto m = ReadMessageBlocking(core, boot, kTimeout);
    if (!m.ok()) return Fail("bootstrap read: " + m.error().ToString());
    const std::string cmd = Text(m->payload);
    if (cmd == "quit") return 0;
    if (cmd == "write-and-exit") {
      // crbug.com/1005510: send the parent one end of a new pipe, write on
      // the other, close everything and shut the node down in order. The
      // message must still arrive, then PEER_CLOSED.
      auto pipe = core.CreateMessagePipe();
      if (!pipe.ok()) return Fail(pipe.error().ToString());
      auto [x, y] = *pipe;
      if (!Write(core, boot, "pipe", {y}).ok()) return Fail("send endpoint");
      if (!Write(core, x, "ok").ok()) return Fail("write ok");
      if (!core.Close(x).ok()) return Fail("close x");
      if (!core.Close(boot).ok()) return Fail("close bootstrap");
      node->reset();
      return 0;
    }
    if (cmd.rfind("echo ", 0) == 0) {
      if (!Write(core, boot, cmd.substr(5)).ok()) return Fail("echo write");
    } else if (cmd == "bounce") {
      // Sends the endpoint it carries straight back (issue 12 item 2).
      if (m->handles.size() != 1) return Fail("bounce without exactly one handle");
      if (!Write(core, boot, "bounce", {m->handles[0]}).ok()) return Fail("bounce write");
    } else if (cmd == "fd-write") {
      // Use the descriptor: write through it.
      if (m->fds.size() != 1) return Fail("fd-write without exactly one fd");
      const char kText[] = "written by the child";
      if (::write(m->fds[0].get(), kText, sizeof(kText) - 1) != sizeof(kText) - 1) {
        return Fail("write to passed fd");
      }
      if (!Write(core, boot, "fd-done").ok()) return Fail("fd-done write");
    } else if (cmd == "make-pipe" || cmd == "make-pipe-hold") {
      auto pipe = core.CreateMessagePipe();
      if (!pipe.ok()) return Fail(pipe.error().ToString());
      auto [x, y] = *pipe;
      if (!Write(core, boot, "pipe", {y}).ok()) return Fail("send endpoint");
      if (cmd == "make-pipe-hold") {
        held = x;
        if (!Write(core, boot, "made").ok()) return Fail("made write");
        continue;
      }
      for (int i = 1; i <= 5; ++i) {
        if (!Write(core, x, "from-a-" + std::to_string(i)).ok()) return Fail("write on x");
      }
      for (int i = 1; i <= 3; ++i) {
        auto r = ReadMessageBlocking(core, x, kTimeout);
        if (!r.ok()) return Fail("read on x: " + r.error().ToString());
        if (Text(r->payload) != "from-b-" + std::to_string(i)) {
          return Fail("out of order on x: " + Text(r->payload));
        }
      }
      if (!Write(core, boot, "a-ok").ok()) return Fail("a-ok write");
    } else if (cmd == "take-pipe") {
      if (m->handles.size() != 1) return Fail("take-pipe without exactly one handle");
      const system::Handle z = m->handles[0];
      for (int i = 1; i <= 5; ++i) {
        auto r = ReadMessageBlocking(core, z, kTimeout);
        if (!r.ok()) return Fail("read on z: " + r.error().ToString());
        if (Text(r->payload) != "from-a-" + std::to_string(i)) {
          return Fail("out of order on z: " + Text(r->payload));
        }
      }
      for (int i = 1; i <= 3; ++i) {
        if (!Write(core, z, "from-b-" + std::to_string(i)).ok()) return Fail("write on z");
      }
      if (!Write(core, boot, "b-ok").ok()) return Fail("b-ok write");
    } else if (cmd.rfind("flood ", 0) == 0) {
      // "flood N SIZE": N messages of SIZE bytes on the held pipe, as fast as
      // they go; stops at the first refused write (the peer may be cut off).
      if (held == system::kInvalidHandle) return Fail("flood without a held pipe");
      size_t count = 0, size = 0;
      if (std::sscanf(cmd.c_str(), "flood %zu %zu", &count, &size) != 2) return Fail("bad flood command");
      const std::string block(size, 'f');
      size_t written = 0;
      while (written < count && Write(core, held, block).ok()) ++written;
      if (!Write(core, boot, "flooded " + std::to_string(written)).ok()) return Fail("flooded write");
    } else if (cmd == "hold-pipe") {
      if (m->handles.size() != 1) return Fail("hold-pipe without exactly one handle");
      held = m->handles[0];
      if (!Write(core, boot, "holding").ok()) return Fail("holding write");
      auto s = WaitForSignals(core, held, system::kSignalPeerClosed, kTimeout);
      if (!s.ok()) return Fail("waiting for peer-closed: " + s.error().ToString());
      if (!s->Satisfies(system::kSignalPeerClosed)) return Fail("no PEER_CLOSED");
      if (!Write(core, boot, "peer-closed-seen").ok()) return Fail("peer-closed write");
    } else {
      return Fail("unknown command " + cmd);
    }
  }
}

// A child that breaks the protocol in one way, then waits to be cut off.
int RunHostile(const std::string& kind) {
  auto socket = TakeBrokerSocketFromEnvironment();
  if (!socket.ok()) return Fail(socket.error().ToString());
  auto t = transport::TransportHandle(std::move(*socket)).CreateTransport();
  if (!t.ok()) return Fail(t.error().ToString());
  transport::Transport& tr = **t;
  auto hello_raw = tr.Receive(kTimeout);
  if (!hello_raw.ok()) return Fail("no hello: " + hello_raw.error().ToString());
  auto hello = DecodeNodeChannelMessage(hello_raw->payload, hello_raw->fds.size());
  if (!hello.ok() || hello->header.type != NodeChannelMessageType::kHello) {
    return Fail("bad hello");
  }
  const ports::NodeName me = hello->header.target;
  const ports::NodeName broker = hello->header.sender;
  auto send = [&](const NodeChannelHeader& h, std::span<const uint8_t> body) {
    return tr.Send(EncodeNodeChannelMessage(h, body));
  };
  NodeChannelHeader reply;
  reply.type = NodeChannelMessageType::kHelloReply;
  reply.sender = me;
  reply.target = broker;
  NodeChannelHeader event;
  event.type = NodeChannelMessageType::kEvent;
  event.sender = me;
  event.target = broker;

  // A real event for the broker's bootstrap port: "I closed" from a port
  // that is not that port's previous hop.
  ports::ObserveClosureEvent closure(hello->header.subject_port(), ports::PortName::Random(),
                                     ports::kInitialSequenceNum, 0);
  std::vector<UniqueFd> no_fds;
  const std::vector<uint8_t> closure_bytes = ports::SerializeEvent(closure, &no_fds);

  Status s;
  if (kind == "garbage") {
    const uint8_t junk[] = {0xff, 0x01, 0x02, 0x03};
    s = tr.Send(std::span<const uint8_t>(junk));
  } else if (kind == "claim-name") {
    reply.sender = ports::NodeName::Random();
    s = send(reply, {});
  } else if (kind == "forged-sender") {
    s = send(reply, {});
    event.sender = ports::NodeName::Random();
    if (s.ok()) s = send(event, closure_bytes);
  } else if (kind == "not-prev-hop") {
    // Events for a port whose previous hop we are not: the node buffers a
    // bounded number (the hop might still change), then rejects.
    s = send(reply, {});
    for (uint64_t seq = 1; s.ok() && seq <= limits::MAX_PORT_BUFFERED_EVENTS + 1; ++seq) {
      ports::ObserveClosureEvent e(hello->header.subject_port(), closure.from_port, seq, 0);
      s = send(event, ports::SerializeEvent(e, &no_fds));
    }
    if (!s.ok() && s.error().code() == ErrorCode::kPeerClosed) s = OkStatus();
  } else if (kind == "merge-unoffered" || kind == "merge-twice") {
    // MRG-3: a merge naming a port not offered to us (a made-up one), or our
    // own bootstrap port a second time (used by then): either way cut off.
    s = send(reply, {});
    ports::PortDescriptor desc;
    desc.peer_node = me;
    desc.peer_port = ports::PortName::Random();
    desc.referring_node = me;
    desc.referring_port = ports::PortName::Random();
    const ports::PortName target = kind == "merge-unoffered" ? ports::PortName::Random()
                                                             : hello->header.subject_port();
    for (int i = 0; s.ok() && i < (kind == "merge-twice" ? 2 : 1); ++i) {
      ports::MergePortEvent merge(target, ports::PortName::Random(), desc);
      s = send(event, ports::SerializeEvent(merge, &no_fds));
    }
    if (!s.ok() && s.error().code() == ErrorCode::kPeerClosed) s = OkStatus();
  } else if (kind == "trailing-bytes") {
    s = send(reply, {});
    std::vector<uint8_t> wire = EncodeNodeChannelMessage(event, closure_bytes);
    wire.push_back(0);
    if (s.ok()) s = tr.Send(wire);
  } else {
    return Fail("unknown hostile kind " + kind);
  }
  if (!s.ok()) return Fail("send: " + s.error().ToString());
  // The broker must cut us off: Receive ends with the disconnect.
  for (;;) {
    auto m = tr.Receive(kTimeout);
    if (m.ok()) continue;
    if (m.error().code() == ErrorCode::kShouldWait) return Fail("broker did not disconnect us");
    return 0;
  }
}

}  // namespace
}  // namespace moat::node

int main(int argc, char** argv) {
  if (argc != 2) return moat::node::Fail("usage: node_test_child script|hostile-<kind>");
  const std::string mode = argv[1];
  if (mode == "script") return moat::node::RunScript(/*stop_after_connect=*/false);
  if (mode == "stop-script") return moat::node::RunScript(/*stop_after_connect=*/true);
  if (mode.rfind("hostile-", 0) == 0) return moat::node::RunHostile(mode.substr(8));
  return moat::node::Fail("unknown mode " + mode);
}
