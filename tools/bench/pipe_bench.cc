// Pipe-level cases of `moat bench`: the same exchanges as the transport
// cases, but through a moat message pipe between two processes' nodes (a
// broker and a child, NodeController over a Transport), each against a raw
// socketpair baseline measured in the same run.
//
// Shape of one run: socketpair, fork (before this process has any thread),
// the child runs NodeController::ConnectToBroker on its end, the parent a
// broker adopting the other end (AddChild). Both sides are event-driven: a
// trap on the bootstrap pipe runs the next step from the IO thread that
// delivered the message (echo in the child; next ping in the parent), which
// is how an embedder drives pipes, and costs one thread wake per hop like the
// blocking read of the raw baseline. The main thread only waits for the end.
#include "tools/bench/pipe_bench.h"
#include "tools/bench/raw_io.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include "core/mutex.h"
#include "core/node/node_controller.h"
#include "core/system/core.h"
#include "limits/limits.h"

namespace moat::tools {
namespace {

using Clock = std::chrono::steady_clock;
using node::NodeController;
using system::Core;
using system::Handle;

using Kind = raw::Kind;

struct PipeCase {
  const char* name;
  Kind kind;
  size_t size;
  const char* target;
};

[[noreturn]] void Die(const char* what, const std::string& why = "") {
  std::fprintf(stderr, "moat bench (pipe): %s %s\n", what, why.c_str());
  std::_Exit(1);
}

void Check(const Status& s, const char* what) {
  if (!s.ok()) Die(what, s.error().ToString());
}

// Runs `on_message` on the IO thread for every message that arrives on
// `pipe`, in order, until it returns false or the pipe closes; then Wait()
// returns.
class MessagePump {
 public:
  using OnMessage = std::function<bool(system::ReadResult&)>;

  MessagePump(Core& core, Handle pipe, OnMessage on_message)
      : core_(core), pipe_(pipe), on_message_(std::move(on_message)) {
    auto trap = core_.CreateTrap([this, done = done_](const system::TrapEvent& e) {
      (void)done;  // shared with Finish(): outlives the pump while a handler runs
      if (e.result == system::TrapEventResult::kCancelled) return;
      Drain();
    });
    if (!trap.ok()) Die("CreateTrap", trap.error().ToString());
    trap_ = *trap;
    Check(core_.AddTrigger(trap_, pipe_, system::kSignalReadable | system::kSignalPeerClosed,
                           static_cast<uint32_t>(system::TriggerCondition::kSignalsSatisfied), 1),
          "AddTrigger");
  }
  ~MessagePump() { (void)core_.Close(trap_); }

  // Arms the trap; drains here only if messages are already waiting (then
  // the trap is not armed, so no handler runs concurrently).
  void Start() {
    std::vector<system::TrapEvent> blocking;
    Status armed = core_.ArmTrap(trap_, &blocking);
    if (!armed.ok()) Drain();
  }

  void Wait() {
    MutexLock lock(&done_->mu);
    while (!done_->finished) done_->cv.Wait(&done_->mu);
  }

 private:
  // Reads everything queued, then re-arms; if arming finds more, reads again.
  void Drain() {
    for (;;) {
      for (;;) {
        auto m = core_.ReadMessage(pipe_, nullptr, nullptr);
        if (!m.ok()) {
          if (m.error().code() == ErrorCode::kShouldWait) break;
          return Finish();  // peer closed
        }
        if (!on_message_(*m)) return Finish();
      }
      std::vector<system::TrapEvent> blocking;
      Status armed = core_.ArmTrap(trap_, &blocking);
      if (armed.ok()) return;
      if (armed.error().code() != ErrorCode::kFailedPrecondition) return Finish();
    }
  }
  // The last thing a handler does; `done_` is shared with the handler so the
  // signalling thread never touches a destroyed pump.
  void Finish() {
    std::shared_ptr<Done> done = done_;
    MutexLock lock(&done->mu);
    done->finished = true;
    done->cv.SignalAll();
  }

  struct Done {
    Mutex mu;
    CondVar cv;
    bool finished ABSL_GUARDED_BY(mu) = false;
  };

  Core& core_;
  const Handle pipe_;
  const OnMessage on_message_;
  Handle trap_ = system::kInvalidHandle;
  const std::shared_ptr<Done> done_ = std::make_shared<Done>();
};

[[noreturn]] void PipeChild(int socket, const PipeCase& c, const PipeBenchConfig& cfg) {
  auto node = NodeController::ConnectToBroker(UniqueFd(socket));
  if (!node.ok()) Die("ConnectToBroker", node.error().ToString());
  Core& core = (*node)->core();
  const Handle boot = (*node)->bootstrap();
  const size_t total = c.size * static_cast<size_t>(cfg.tput_messages);
  size_t got = 0;
  MessagePump pump(core, boot, [&](system::ReadResult& m) {
    if (c.kind == Kind::kThroughput) {
      if (m.payload.size() == 1) {  // warm-up ping: answer it
        return core.WriteMessage(boot, m.payload, {}, {}).ok();
      }
      got += m.payload.size();
      if (got == total) Check(core.WriteMessage(boot, std::vector<uint8_t>{1}, {}, {}), "ack");
      return true;
    }
    // Echo from the IO thread.
    return core.WriteMessage(boot, m.payload, {}, std::move(m.fds)).ok();
  });
  pump.Start();
  pump.Wait();  // until the parent closes the pipe
  std::_Exit(0);
}

double PipeParent(int socket, const PipeCase& c, const PipeBenchConfig& cfg) {
  auto broker = NodeController::CreateBroker();
  auto child = broker->AddChild(UniqueFd(socket));
  if (!child.ok()) Die("AddChild", child.error().ToString());
  Core& core = broker->core();
  const Handle boot = child->bootstrap;
  const std::vector<uint8_t> buf(c.size, 0x42);
  double result = 0;

  if (c.kind == Kind::kThroughput) {
    {
      // Warm-up ping-pongs: the bootstrap pipe's route settles (the merge's
      // proxy is removed) before the timed burst.
      int pings = std::getenv("MOAT_BENCH_PINGS") ? std::atoi(std::getenv("MOAT_BENCH_PINGS")) : 10;
      MessagePump warm(core, boot, [&](system::ReadResult&) {
        if (--pings == 0) return false;
        return core.WriteMessage(boot, std::vector<uint8_t>{0}, {}, {}).ok();
      });
      if (pings > 0) {
        warm.Start();
        Check(core.WriteMessage(boot, std::vector<uint8_t>{0}, {}, {}), "ping");
        warm.Wait();
      }
    }
    MessagePump pump(core, boot, [](system::ReadResult&) { return false; });
    pump.Start();
    const auto start = Clock::now();
    for (int i = 0; i < cfg.tput_messages; ++i) Check(core.WriteMessage(boot, buf, {}, {}), "write");
    pump.Wait();
    const double secs = std::chrono::duration<double>(Clock::now() - start).count();
    result = static_cast<double>(c.size) * cfg.tput_messages / secs / limits::MiB;
  } else {
    const int warmup = cfg.rt_iters / 10;
    int remaining = warmup + cfg.rt_iters;
    Clock::time_point start;
    auto send = [&](std::vector<UniqueFd> fds) {
      Check(core.WriteMessage(boot, buf, {}, std::move(fds)), "write");
    };
    MessagePump pump(core, boot, [&](system::ReadResult& m) {
      if (c.kind == Kind::kRoundTripFd && m.fds.size() != 1) Die("echo lost the descriptor");
      if (--remaining == cfg.rt_iters) start = Clock::now();
      if (remaining == 0) return false;
      send(std::move(m.fds));
      return true;
    });
    std::vector<UniqueFd> fds;
    if (c.kind == Kind::kRoundTripFd) fds.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    pump.Start();
    send(std::move(fds));
    pump.Wait();
    const double us = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
    result = us / cfg.rt_iters;
  }
  Check(core.Close(boot), "close");
  return result;
}

// The raw baseline (raw::EchoChild / raw::TimeExchange) is shared with the
// transport cases: tools/bench/raw_io.h.

double RunOnce(const PipeCase& c, const PipeBenchConfig& cfg, bool moat) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) Die("socketpair");
  // Fork before any thread exists in this process for this run (the previous
  // run's broker is gone, its threads joined).
  const pid_t pid = ::fork();
  if (pid < 0) Die("fork");
  if (pid == 0) {
    ::close(sv[0]);
    if (moat) PipeChild(sv[1], c, cfg);
    raw::EchoChild(sv[1], {c.kind, c.size, cfg.rt_iters, cfg.tput_messages});
  }
  ::close(sv[1]);
  const raw::Exchange exchange{c.kind, c.size, cfg.rt_iters, cfg.tput_messages};
  const double value = moat ? PipeParent(sv[0], c, cfg) : raw::TimeExchange(sv[0], exchange);
  if (!moat) ::close(sv[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) Die("child failed");
  return value;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

[[noreturn]] void PipeMoatChild(int socket, const raw::Exchange& e) {
  const PipeCase c{"", e.kind, e.size, ""};
  PipeChild(socket, c, PipeBenchConfig{1, e.rt_iters, e.tput_messages, false});
}

double PipeMoatParent(int socket, const raw::Exchange& e) {
  const PipeCase c{"", e.kind, e.size, ""};
  return PipeParent(socket, c, PipeBenchConfig{1, e.rt_iters, e.tput_messages, false});
}

std::vector<PipeBenchRow> RunPipeBenchCases(const PipeBenchConfig& cfg) {
  const PipeCase cases[] = {
      {"pipe_round_trip_64B", Kind::kRoundTrip, 64, "<= 1.3"},
      {"pipe_round_trip_4KiB", Kind::kRoundTrip, 4 * limits::KiB, "<= 1.3"},
      {"pipe_throughput_64KiB", Kind::kThroughput, 64 * limits::KiB, "<= 1.25 (>= 0.8x)"},
      {"pipe_round_trip_1fd", Kind::kRoundTripFd, 64, "<= 1.3"},
  };
  std::vector<PipeBenchRow> rows;
  // MOAT_BENCH_ONLY=<substring>: run only matching pipe cases (profiling).
  const char* only = std::getenv("MOAT_BENCH_ONLY");
  for (const PipeCase& c : cases) {
    if (only != nullptr && std::strstr(c.name, only) == nullptr) continue;
    if (cfg.progress) std::fprintf(stderr, "moat bench: %s ...\n", c.name);
    std::vector<double> m, b;
    for (int r = 0; r < cfg.reps; ++r) {  // interleaved, so drift hits both alike
      b.push_back(RunOnce(c, cfg, false));
      m.push_back(RunOnce(c, cfg, true));
    }
    PipeBenchRow row{c.name, Median(m), Median(b), 0, "", c.target};
    if (c.kind == Kind::kThroughput) {
      row.unit = "MiB/s";
      row.ratio = row.baseline / row.moat;
    } else {
      row.unit = "us";
      row.ratio = row.moat / row.baseline;
    }
    rows.push_back(row);
  }
  return rows;
}

}  // namespace moat::tools
