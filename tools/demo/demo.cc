// `moat demo`: the main job (R32). A broker process and two child processes
// (this same binary, re-executed in a hidden child role) exchange messages,
// a descriptor, a shared-memory region and a pipe endpoint; two pipes are
// fused; a quota is hit and drained; a child is killed and the others are
// told cleanly. Every step checks its result; the first failure prints the
// reason and exits 1. Exit 0 means every step checked out.
//
//   moat demo
//
// Commands travel as a typed DemoCommand (core/codec) over each child's
// bootstrap pipe; replies are plain text.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "core/check.h"
#include "core/codec/codec.h"
#include "core/codec/shared_memory.h"
#include "core/mutex.h"
#include "core/node/node_controller.h"
#include "core/node/pipe_wait.h"
#include "core/system/quota.h"
#include "tools/cli/command.h"

namespace moat::demo {

struct DemoCommand {
  std::string op;
  std::string text;
  std::optional<UniqueFd> fd;
  std::optional<SharedMemoryRegion> region;
};
MOAT_CODEC_STRUCT(DemoCommand, op, text, fd, region)

namespace {

using node::LaunchedChild;
using node::NodeController;
using system::Core;
using system::Handle;

constexpr auto kTimeout = std::chrono::seconds(20);
constexpr size_t kShmSize = 4096;
constexpr size_t kShmReplyOffset = 2048;
constexpr uint64_t kQuotaLimit = 4;
constexpr int kFloodMessages = 6;

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
std::string Text(std::span<const uint8_t> b) { return std::string(b.begin(), b.end()); }

Error Failed(std::string why) { return Error(ErrorCode::kFailedPrecondition, std::move(why)); }

Status SendCommand(Core& core, Handle pipe, DemoCommand cmd, std::vector<Handle> handles = {}) {
  MOAT_ASSIGN_OR_RETURN(EncodedMessage m, EncodeMessage(cmd));
  return core.WriteMessage(pipe, m.bytes, handles, std::move(m.fds));
}

Status Reply(Core& core, Handle pipe, const std::string& text) {
  return core.WriteMessage(pipe, Bytes(text), {}, {});
}

Result<std::string> ReadText(Core& core, Handle pipe) {
  MOAT_ASSIGN_OR_RETURN(system::ReadResult r, node::ReadMessageBlocking(core, pipe, kTimeout));
  return Text(r.payload);
}

// ---------------------------------------------------------------------------
// The child role.

Status ChildLoop(NodeController& node) {
  Core& core = node.core();
  const Handle boot = node.bootstrap();
  const std::string me = "pid " + std::to_string(::getpid());
  Handle peer_pipe = system::kInvalidHandle;  // the pipe to the other child
  for (;;) {
    MOAT_ASSIGN_OR_RETURN(system::ReadResult m, node::ReadMessageBlocking(core, boot, kTimeout));
    MOAT_ASSIGN_OR_RETURN(DemoCommand cmd, DecodeMessage<DemoCommand>(m.payload, m.fds));
    if (cmd.op == "quit") return OkStatus();
    if (cmd.op == "echo") {
      MOAT_TRY(Reply(core, boot, cmd.text + " (echoed by " + me + ")"));
    } else if (cmd.op == "fd-write") {
      MOAT_REQUIRE(cmd.fd.has_value(), ErrorCode::kInvalidArgument, "fd-write without an fd");
      const std::string line = "written through the passed pipe by " + me;
      MOAT_REQUIRE(::write(cmd.fd->get(), line.data(), line.size()) ==
                       static_cast<ssize_t>(line.size()),
                   ErrorCode::kIo, "write to the passed descriptor failed");
      MOAT_TRY(Reply(core, boot, "fd-done"));
    } else if (cmd.op == "shm") {
      MOAT_REQUIRE(cmd.region.has_value(), ErrorCode::kInvalidArgument, "shm without a region");
      MOAT_ASSIGN_OR_RETURN(SharedMemoryMapping map,
                            cmd.region->Map(SharedMemoryRegion::Access::kReadWrite));
      const std::string seen(reinterpret_cast<const char*>(map.data()));
      const std::string answer = "child " + me + " read \"" + seen + "\" and wrote this";
      MOAT_REQUIRE(answer.size() < map.size() - kShmReplyOffset, ErrorCode::kInvalidArgument,
                   "region too small");
      std::memcpy(map.data() + kShmReplyOffset, answer.c_str(), answer.size() + 1);
      MOAT_TRY(Reply(core, boot, "shm-done"));
    } else if (cmd.op == "make-pipe") {
      MOAT_ASSIGN_OR_RETURN(auto pipe, core.CreateMessagePipe());
      MOAT_TRY(core.WriteMessage(boot, Bytes("endpoint"), std::vector<Handle>{pipe.second}, {}));
      peer_pipe = pipe.first;
      for (int i = 1; i <= 3; ++i) {
        MOAT_TRY(Reply(core, peer_pipe, "A->B #" + std::to_string(i)));
      }
      MOAT_ASSIGN_OR_RETURN(std::string back, ReadText(core, peer_pipe));
      MOAT_TRY(Reply(core, boot, "A got \"" + back + "\""));
    } else if (cmd.op == "take-pipe") {
      MOAT_REQUIRE(m.handles.size() == 1, ErrorCode::kInvalidArgument, "take-pipe needs 1 handle");
      peer_pipe = m.handles[0];
      std::string got;
      for (int i = 1; i <= 3; ++i) {
        MOAT_ASSIGN_OR_RETURN(std::string t, ReadText(core, peer_pipe));
        MOAT_REQUIRE(t == "A->B #" + std::to_string(i), ErrorCode::kFailedPrecondition,
                     "out of order: ", t);
        got += (got.empty() ? "" : ", ") + t;
      }
      MOAT_TRY(Reply(core, peer_pipe, "hello A, this is B (" + me + ")"));
      MOAT_TRY(Reply(core, boot, "B got " + got + " in order"));
    } else if (cmd.op == "fuse-write") {
      MOAT_REQUIRE(m.handles.size() == 1, ErrorCode::kInvalidArgument, "fuse-write needs 1 handle");
      MOAT_TRY(Reply(core, m.handles[0], cmd.text));
      MOAT_TRY(Reply(core, boot, "fuse-written"));
      (void)core.Close(m.handles[0]);
    } else if (cmd.op == "fuse-read") {
      MOAT_REQUIRE(m.handles.size() == 1, ErrorCode::kInvalidArgument, "fuse-read needs 1 handle");
      MOAT_ASSIGN_OR_RETURN(std::string t, ReadText(core, m.handles[0]));
      MOAT_TRY(Reply(core, boot, t));
      (void)core.Close(m.handles[0]);
    } else if (cmd.op == "flood") {
      MOAT_REQUIRE(m.handles.size() == 1, ErrorCode::kInvalidArgument, "flood needs 1 handle");
      for (int i = 1; i <= kFloodMessages; ++i) {
        MOAT_TRY(Reply(core, m.handles[0], "flood #" + std::to_string(i)));
      }
      MOAT_TRY(Reply(core, boot, "flooded"));
      (void)core.Close(m.handles[0]);
    } else if (cmd.op == "watch-peer") {
      MOAT_TRY(Reply(core, boot, "watching"));
      MOAT_ASSIGN_OR_RETURN(system::HandleSignalsState s,
                            node::WaitForSignals(core, peer_pipe, system::kSignalPeerClosed,
                                                 kTimeout));
      MOAT_REQUIRE(s.Satisfies(system::kSignalPeerClosed), ErrorCode::kFailedPrecondition,
                   "no PEER_CLOSED on the pipe to A");
      MOAT_TRY(Reply(core, boot, "PEER_CLOSED on the pipe to A"));
    } else {
      return Failed("unknown command " + cmd.op);
    }
  }
}

int RunChild() {
  auto socket = node::TakeBrokerSocketFromEnvironment();
  if (!socket.ok()) {
    std::fprintf(stderr, "demo child: %s\n", socket.error().ToString().c_str());
    return 1;
  }
  auto node = NodeController::ConnectToBroker(std::move(*socket));
  if (!node.ok()) {
    std::fprintf(stderr, "demo child: %s\n", node.error().ToString().c_str());
    return 1;
  }
  Status s = ChildLoop(**node);
  if (!s.ok()) {
    std::fprintf(stderr, "demo child %d: %s\n", ::getpid(), s.error().ToString().c_str());
    return 1;
  }
  return 0;
}

// ---------------------------------------------------------------------------
// The broker role.

struct LossLog {
  Mutex mu;
  CondVar cv;
  std::vector<std::pair<ports::NodeName, std::string>> lost ABSL_GUARDED_BY(mu);

  std::optional<std::string> WaitFor(const ports::NodeName& n) {
    const auto deadline = std::chrono::steady_clock::now() + kTimeout;
    MutexLock lock(&mu);
    for (;;) {
      for (auto& [name, why] : lost) {
        if (name == n) return why;
      }
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) return std::nullopt;
      cv.WaitFor(&mu, deadline - now);
    }
  }
};

class Demo {
 public:
  Demo() {
    node::NodeControllerOptions o;
    o.on_node_lost = [this](const ports::NodeName& n, const Error& e) {
      MutexLock lock(&log_.mu);
      log_.lost.emplace_back(n, e.ToString());
      log_.cv.SignalAll();
    };
    broker_ = NodeController::CreateBroker(std::move(o));
  }
  ~Demo() {
    for (LaunchedChild* c : {&a_, &b_}) {
      if (c->pid > 0) {
        ::kill(c->pid, SIGKILL);
        ::waitpid(c->pid, nullptr, 0);
      }
    }
  }

  Status Run() {
    std::printf("moat demo: broker pid %d, node %s\n", ::getpid(),
                broker_->name().ToString().c_str());
    MOAT_TRY(Launch("A", &a_));
    MOAT_TRY(Launch("B", &b_));
    MOAT_TRY(Step(1, "messages both ways", [&] { return Messages(); }));
    MOAT_TRY(Step(2, "descriptor passed and used", [&] { return Descriptor(); }));
    MOAT_TRY(Step(3, "shared memory", [&] { return SharedMemory(); }));
    MOAT_TRY(Step(4, "pipe endpoint A -> broker -> B", [&] { return EndpointTransfer(); }));
    MOAT_TRY(Step(5, "fuse two pipes", [&] { return Fuse(); }));
    MOAT_TRY(Step(6, "quota exceeded and drained", [&] { return Quota(); }));
    MOAT_TRY(Step(7, "child killed, others told", [&] { return Kill(); }));
    MOAT_TRY(SendCommand(core(), b_.bootstrap, {.op = "quit"}));
    MOAT_TRY(ExpectExit(&b_, 0));
    std::printf("demo: all 7 steps checked out\n");
    return OkStatus();
  }

 private:
  Core& core() { return broker_->core(); }

  template <typename F>
  Status Step(int n, const char* title, F f) {
    std::printf("[%d] %s\n", n, title);
    std::fflush(stdout);
    Status s = f();
    if (!s.ok()) return Failed("step " + std::to_string(n) + " (" + title + "): " + s.error().ToString());
    std::printf("    ok\n");
    return OkStatus();
  }

  Status Launch(const char* label, LaunchedChild* out) {
    MOAT_ASSIGN_OR_RETURN(*out, broker_->LaunchChild("/proc/self/exe", {"demo", "--child"}));
    std::printf("child %s: pid %d, node %s (name assigned by the broker)\n", label, out->pid,
                out->name.ToString().c_str());
    return OkStatus();
  }

  Status Expect(Handle pipe, const std::string& want) {
    MOAT_ASSIGN_OR_RETURN(std::string got, ReadText(core(), pipe));
    if (got != want) return Failed("expected \"" + want + "\", got \"" + got + "\"");
    return OkStatus();
  }

  Status ExpectExit(LaunchedChild* c, int code) {
    int status = 0;
    if (::waitpid(c->pid, &status, 0) != c->pid) return Failed("waitpid failed");
    c->pid = -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != code) {
      return Failed("child exit status " + std::to_string(status));
    }
    return OkStatus();
  }

  Status Messages() {
    for (const char* who : {"A", "B"}) {
      LaunchedChild& c = who[0] == 'A' ? a_ : b_;
      const std::string hello = std::string("hello ") + who + ", from the broker";
      MOAT_TRY(SendCommand(core(), c.bootstrap, {.op = "echo", .text = hello}));
      MOAT_ASSIGN_OR_RETURN(std::string back, ReadText(core(), c.bootstrap));
      MOAT_REQUIRE(back.rfind(hello + " (echoed by pid " + std::to_string(c.pid) + ")", 0) == 0,
                   ErrorCode::kFailedPrecondition, "unexpected echo: ", back);
      std::printf("    broker -> %s: \"%s\"\n    %s -> broker: \"%s\"\n", who, hello.c_str(), who,
                  back.c_str());
    }
    return OkStatus();
  }

  Status Descriptor() {
    int fds[2];
    MOAT_REQUIRE(::pipe2(fds, O_CLOEXEC) == 0, ErrorCode::kIo, "pipe2 failed");
    UniqueFd read_end(fds[0]);
    DemoCommand cmd{.op = "fd-write"};
    cmd.fd.emplace(fds[1]);
    MOAT_TRY(SendCommand(core(), a_.bootstrap, std::move(cmd)));
    MOAT_TRY(Expect(a_.bootstrap, "fd-done"));
    char buf[256] = {};
    const ssize_t n = ::read(read_end.get(), buf, sizeof(buf) - 1);
    const std::string want = "written through the passed pipe by pid " + std::to_string(a_.pid);
    MOAT_REQUIRE(n > 0 && std::string(buf, n) == want, ErrorCode::kFailedPrecondition,
                 "read back \"", std::string(buf, n > 0 ? n : 0), "\"");
    std::printf("    broker sent A the write end of a pipe; read from the read end: \"%s\"\n", buf);
    return OkStatus();
  }

  Status SharedMemory() {
    MOAT_ASSIGN_OR_RETURN(SharedMemoryRegion region, SharedMemoryRegion::Create(kShmSize));
    MOAT_ASSIGN_OR_RETURN(SharedMemoryMapping map,
                          region.Map(SharedMemoryRegion::Access::kReadWrite));
    const char kText[] = "a page written by the broker";
    std::memcpy(map.data(), kText, sizeof(kText));
    DemoCommand cmd{.op = "shm"};
    cmd.region.emplace(std::move(region));
    MOAT_TRY(SendCommand(core(), b_.bootstrap, std::move(cmd)));
    MOAT_TRY(Expect(b_.bootstrap, "shm-done"));
    const std::string answer(reinterpret_cast<const char*>(map.data() + kShmReplyOffset));
    const std::string want = "child pid " + std::to_string(b_.pid) + " read \"" + kText +
                             "\" and wrote this";
    MOAT_REQUIRE(answer == want, ErrorCode::kFailedPrecondition, "region holds \"", answer, "\"");
    std::printf("    broker wrote \"%s\" into a %zu-byte sealed memfd region sent to B\n", kText,
                kShmSize);
    std::printf("    B wrote back into the same pages: \"%s\"\n", answer.c_str());
    return OkStatus();
  }

  Status EndpointTransfer() {
    MOAT_TRY(SendCommand(core(), a_.bootstrap, {.op = "make-pipe"}));
    MOAT_ASSIGN_OR_RETURN(system::ReadResult m,
                          node::ReadMessageBlocking(core(), a_.bootstrap, kTimeout));
    MOAT_REQUIRE(Text(m.payload) == "endpoint" && m.handles.size() == 1,
                 ErrorCode::kFailedPrecondition, "A did not send an endpoint");
    std::printf("    A created a pipe and sent one end to the broker\n");
    MOAT_TRY(SendCommand(core(), b_.bootstrap, {.op = "take-pipe"}, {m.handles[0]}));
    std::printf("    the broker passed that end on to B\n");
    MOAT_ASSIGN_OR_RETURN(std::string b_said, ReadText(core(), b_.bootstrap));
    MOAT_ASSIGN_OR_RETURN(std::string a_said, ReadText(core(), a_.bootstrap));
    MOAT_REQUIRE(b_said == "B got A->B #1, A->B #2, A->B #3 in order",
                 ErrorCode::kFailedPrecondition, "B said: ", b_said);
    MOAT_REQUIRE(a_said.rfind("A got \"hello A, this is B", 0) == 0,
                 ErrorCode::kFailedPrecondition, "A said: ", a_said);
    std::printf("    %s\n    %s\n", b_said.c_str(), a_said.c_str());
    return OkStatus();
  }

  Status Fuse() {
    MOAT_ASSIGN_OR_RETURN(auto p, core().CreateMessagePipe());
    MOAT_ASSIGN_OR_RETURN(auto q, core().CreateMessagePipe());
    const std::string text = "through two fused pipes";
    MOAT_TRY(SendCommand(core(), a_.bootstrap, {.op = "fuse-write", .text = text}, {p.first}));
    MOAT_TRY(SendCommand(core(), b_.bootstrap, {.op = "fuse-read"}, {q.second}));
    // A holds one end of pipe P, B one end of pipe Q; fusing the broker's two
    // other ends makes A and B the two ends of one pipe.
    MOAT_TRY(core().FuseMessagePipes(p.second, q.first));
    MOAT_TRY(Expect(a_.bootstrap, "fuse-written"));
    MOAT_TRY(Expect(b_.bootstrap, text));
    std::printf("    broker fused its ends of pipes P (other end in A) and Q (other end in B)\n");
    std::printf("    A wrote on P, B read on Q: \"%s\"\n", text.c_str());
    return OkStatus();
  }

  Status Quota() {
    MOAT_ASSIGN_OR_RETURN(auto pipe, core().CreateMessagePipe());
    const Handle mine = pipe.first;
    MOAT_TRY(core().SetQuota(mine, static_cast<uint32_t>(system::QuotaType::kReceiveQueueLength),
                             kQuotaLimit));
    MOAT_TRY(SendCommand(core(), a_.bootstrap, {.op = "flood"}, {pipe.second}));
    MOAT_TRY(Expect(a_.bootstrap, "flooded"));
    MOAT_ASSIGN_OR_RETURN(system::HandleSignalsState s,
                          node::WaitForSignals(core(), mine, system::kSignalQuotaExceeded,
                                               kTimeout));
    MOAT_REQUIRE(s.Satisfies(system::kSignalQuotaExceeded), ErrorCode::kFailedPrecondition,
                 "no QUOTA_EXCEEDED; signals ", system::SignalsToString(s.satisfied));
    MOAT_ASSIGN_OR_RETURN(system::QuotaState q,
                          core().QueryQuota(mine, static_cast<uint32_t>(
                                                      system::QuotaType::kReceiveQueueLength)));
    std::printf("    receive-queue quota %llu; A sent %d messages: %s (usage %llu)\n",
                static_cast<unsigned long long>(kQuotaLimit), kFloodMessages,
                system::SignalsToString(s.satisfied).c_str(),
                static_cast<unsigned long long>(q.usage));
    for (int i = 1; i <= kFloodMessages; ++i) {
      MOAT_TRY(Expect(mine, "flood #" + std::to_string(i)));
    }
    MOAT_ASSIGN_OR_RETURN(s, core().QuerySignals(mine));
    MOAT_REQUIRE(!s.Satisfies(system::kSignalQuotaExceeded), ErrorCode::kFailedPrecondition,
                 "QUOTA_EXCEEDED still set after draining");
    std::printf("    drained %d messages in order: %s\n", kFloodMessages,
                system::SignalsToString(s.satisfied).c_str());
    return core().Close(mine);
  }

  Status Kill() {
    MOAT_TRY(SendCommand(core(), b_.bootstrap, {.op = "watch-peer"}));
    MOAT_TRY(Expect(b_.bootstrap, "watching"));
    MOAT_REQUIRE(::kill(a_.pid, SIGKILL) == 0, ErrorCode::kIo, "kill failed");
    std::printf("    kill -9 A (pid %d)\n", a_.pid);
    int status = 0;
    MOAT_REQUIRE(::waitpid(a_.pid, &status, 0) == a_.pid && WIFSIGNALED(status) &&
                     WTERMSIG(status) == SIGKILL,
                 ErrorCode::kFailedPrecondition, "A did not die of SIGKILL");
    a_.pid = -1;
    std::optional<std::string> why = log_.WaitFor(a_.name);
    MOAT_REQUIRE(why.has_value(), ErrorCode::kFailedPrecondition, "A's loss was not reported");
    std::printf("    broker: lost node A: %s\n", why->c_str());
    MOAT_ASSIGN_OR_RETURN(system::HandleSignalsState s,
                          node::WaitForSignals(core(), a_.bootstrap, system::kSignalPeerClosed,
                                               kTimeout));
    MOAT_REQUIRE(s.Satisfies(system::kSignalPeerClosed), ErrorCode::kFailedPrecondition,
                 "bootstrap pipe to A not PEER_CLOSED");
    std::printf("    broker: bootstrap pipe to A: %s\n", system::SignalsToString(s.satisfied).c_str());
    MOAT_ASSIGN_OR_RETURN(std::string b_said, ReadText(core(), b_.bootstrap));
    MOAT_REQUIRE(b_said == "PEER_CLOSED on the pipe to A", ErrorCode::kFailedPrecondition,
                 "B said: ", b_said);
    std::printf("    B: %s\n", b_said.c_str());
    return OkStatus();
  }

  LossLog log_;
  std::unique_ptr<NodeController> broker_;
  LaunchedChild a_, b_;
};

int Run(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "--child") == 0) return RunChild();
  if (argc == 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    std::printf("usage: moat demo   (a broker and two child processes; no options)\n");
    return 0;
  }
  if (argc != 1) {
    std::fprintf(stderr, "usage: moat demo   (a broker and two child processes; no options)\n");
    return 2;
  }
  int rc = 0;
  {
    Demo demo;
    Status s = demo.Run();
    if (!s.ok()) {
      std::printf("demo FAILED: %s\n", s.error().ToString().c_str());
      rc = 1;
    }
  }
  std::fflush(stdout);
  return rc;
}

}  // namespace
}  // namespace moat::demo

MOAT_COMMAND(demo, "multi-process demo: a broker and two children (messages, fds, shm, pipes)",
             moat::demo::Run);
