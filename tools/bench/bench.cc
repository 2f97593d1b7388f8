// `moat bench`: moat's Transport against a raw socketpair baseline, measured
// side by side in one run, cross-process (R33).
//
//   moat bench            full run (about 15 s), readable table
//   moat bench --quick    fewer iterations
//   moat bench --json     {"cases":[{"name":..,"moat":..,"baseline":..,"unit":..,"ratio":..}]}
//   moat bench --transport-only --reps 11   transport cases only, 11 repetitions
//   MOAT_BENCH_ONLY=<substring>   only the cases whose name contains it (profiling)
//   moat bench --cpus 0,1  pin the parent process to CPU 0 and the child to CPU 1
//                          (0,0: both on one CPU). On a machine shared with other
//                          work, `chrt -f 10 moat bench --cpus ...` gives stable
//                          numbers; the default is unpinned, normal scheduling.
//
// Every case forks a fresh child per repetition (the fork is not timed). The
// moat child echoes from its IO thread (on_message); the moat parent sends
// directly from its own thread and receives inline in Receive().
// rt_64B_recv_echo (information, no target) has the child echo with Receive()
// + Send() instead, which takes the IO-thread wake (epoll_wait + recvmsg) off
// the path: the difference between the two rows is that wake's cost. The baseline
// is the same exchange with blocking read/write (and recvmsg/sendmsg with
// SCM_RIGHTS for the descriptor case) on a raw socketpair. Reported numbers
// are medians over the repetitions; ratio is moat/baseline for times and
// baseline/moat for throughputs, so lower is better in both.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "core/mutex.h"
#include "core/unique_fd.h"
#include "limits/limits.h"
#include "tools/bench/pipe_bench.h"
#include "tools/bench/raw_io.h"
#include "tools/cli/command.h"
#include "transport/transport.h"

namespace moat::tools {
namespace {

using Clock = std::chrono::steady_clock;
using transport::MessageView;
using transport::Transport;
using transport::TransportHandle;
using transport::TransportOptions;

using Kind = raw::Kind;

struct Case {
  const char* name;
  Kind kind;
  size_t size;
  const char* target;
  // The moat child echoes from its own thread with Receive() + Send()
  // instead of from the IO thread (on_message): the synchronous-server shape,
  // where no IO-thread wake sits on the path.
  bool receive_child = false;
};

struct Config {
  int reps = 7;
  int rt_iters = 20000;
  int tput_messages = 4000;
  int parent_cpu = -1;  // -1: not pinned
  int child_cpu = -1;
};


[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "moat bench: %s: %s\n", what, std::strerror(errno));
  std::_Exit(1);
}

void PinTo(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (::sched_setaffinity(0, sizeof(set), &set) != 0) Die("sched_setaffinity");
}

// ---- children ----

[[noreturn]] void MoatReceiveChild(int socket) {
  auto t = TransportHandle(UniqueFd(socket)).CreateTransport();
  if (!t.ok()) std::_Exit(2);
  while (true) {
    auto m = (*t)->Receive();
    if (!m.ok() || !(*t)->Send(m->payload, std::move(m->fds)).ok()) break;
  }
  std::_Exit(0);
}

[[noreturn]] void MoatChild(int socket, const Case& c, const Config& cfg) {
  if (c.receive_child) MoatReceiveChild(socket);
  Mutex mu;
  CondVar cv;
  bool done = false;
  std::atomic<Transport*> self{nullptr};
  const size_t total = c.size * static_cast<size_t>(cfg.tput_messages);
  size_t got = 0;  // IO thread only
  TransportOptions options;
  options.on_message = [&](MessageView& m) {
    Transport* t;
    while ((t = self.load(std::memory_order_acquire)) == nullptr) std::this_thread::yield();
    if (c.kind == Kind::kThroughput) {
      got += m.payload.size();
      if (got == total) (void)t->Send(std::vector<uint8_t>{1});
      return;
    }
    (void)t->Send(m.payload, std::move(m.fds));  // echo from the IO thread
  };
  options.on_disconnect = [&](const Error&) {
    MutexLock lock(&mu);
    done = true;
    cv.SignalAll();
  };
  auto t = TransportHandle(UniqueFd(socket)).CreateTransport(std::move(options));
  if (!t.ok()) std::_Exit(2);
  self.store(t->get(), std::memory_order_release);
  {
    MutexLock lock(&mu);
    while (!done) cv.Wait(&mu);
  }
  std::_Exit(0);  // skip destructors: nothing to flush, and it is fast
}

// ---- parents: each returns the measured value (us per RT, or MiB/s) ----

double MoatParent(int socket, const Case& c, const Config& cfg) {
  auto created = TransportHandle(UniqueFd(socket)).CreateTransport();
  if (!created.ok()) {
    std::fprintf(stderr, "moat bench: %s\n", created.error().ToString().c_str());
    std::_Exit(1);
  }
  Transport& t = **created;
  std::vector<uint8_t> buf(c.size, 0x42);
  auto check = [](const Status& s) {
    if (!s.ok()) {
      std::fprintf(stderr, "moat bench: %s\n", s.error().ToString().c_str());
      std::_Exit(1);
    }
  };
  if (c.kind == Kind::kThroughput) {
    const auto start = Clock::now();
    for (int i = 0; i < cfg.tput_messages; ++i) check(t.Send(buf));
    auto done = t.Receive();
    if (!done.ok()) check(done.error());
    const double secs = std::chrono::duration<double>(Clock::now() - start).count();
    return static_cast<double>(c.size) * cfg.tput_messages / secs / limits::MiB;
  }
  UniqueFd fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  auto one = [&] {
    std::vector<UniqueFd> fds;
    if (c.kind == Kind::kRoundTripFd) fds.push_back(std::move(fd));
    check(t.Send(buf, std::move(fds)));
    auto reply = t.Receive();
    if (!reply.ok()) check(reply.error());
    if (c.kind == Kind::kRoundTripFd) {
      if (reply->fds.size() != 1) Die("echo lost the descriptor");
      fd = std::move(reply->fds[0]);
    }
  };
  for (int i = 0; i < cfg.rt_iters / 10; ++i) one();
  const auto start = Clock::now();
  for (int i = 0; i < cfg.rt_iters; ++i) one();
  const double us = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
  return us / cfg.rt_iters;
}

double RunOnce(const Case& c, const Config& cfg, bool moat) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) Die("socketpair");
  // Fork before any thread exists in this process for this run.
  const pid_t pid = ::fork();
  if (pid < 0) Die("fork");
  if (pid == 0) {
    PinTo(cfg.child_cpu);  // before the child's threads exist: they inherit it
    ::close(sv[0]);
    if (moat) MoatChild(sv[1], c, cfg);
    raw::EchoChild(sv[1], {c.kind, c.size, cfg.rt_iters, cfg.tput_messages});
  }
  ::close(sv[1]);
  const raw::Exchange exchange{c.kind, c.size, cfg.rt_iters, cfg.tput_messages};
  const double value = moat ? MoatParent(sv[0], c, cfg) : raw::TimeExchange(sv[0], exchange);
  if (!moat) ::close(sv[0]);  // MoatParent's transport owned and closed it
  int status = 0;
  ::waitpid(pid, &status, 0);
  return value;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int RunBench(int argc, char** argv) {
  bool json = false;
  bool transport_only = false;
  Config cfg;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--json") {
      json = true;
    } else if (arg == "--quick") {
      cfg.reps = 3;
      cfg.rt_iters = 3000;
      cfg.tput_messages = 1000;
    } else if (arg == "--cpus" && i + 1 < argc &&
               std::sscanf(argv[i + 1], "%d,%d", &cfg.parent_cpu, &cfg.child_cpu) == 2 &&
               cfg.parent_cpu >= 0 && cfg.child_cpu >= 0) {
      ++i;
    } else if (arg == "--transport-only") {
      transport_only = true;
    } else if (arg == "--reps" && i + 1 < argc && std::atoi(argv[i + 1]) > 0) {
      cfg.reps = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr,
                   "usage: moat bench [--quick] [--reps N] [--cpus P,C] [--transport-only] "
                   "[--json]\n");
      return 2;
    }
  }
  ::signal(SIGPIPE, SIG_IGN);
  cpu_set_t unpinned;
  if (::sched_getaffinity(0, sizeof(unpinned), &unpinned) != 0) Die("sched_getaffinity");
  PinTo(cfg.parent_cpu);
  const Case cases[] = {
      {"round_trip_64B", Kind::kRoundTrip, 64, "<= 1.3"},
      {"round_trip_4KiB", Kind::kRoundTrip, 4 * limits::KiB, "<= 1.3"},
      {"throughput_64KiB", Kind::kThroughput, 64 * limits::KiB, "<= 1.25 (>= 0.8x)"},
      {"round_trip_1fd", Kind::kRoundTripFd, 64, "<= 1.3"},
      {"rt_64B_recv_echo", Kind::kRoundTrip, 64, "(info)", /*receive_child=*/true},
  };
  struct Row {
    std::string name;
    double moat, baseline, ratio;
    const char* unit;
    const char* target;
  };
  std::vector<Row> rows;
  const char* only = std::getenv("MOAT_BENCH_ONLY");
  for (const Case& c : cases) {
    if (only != nullptr && std::strstr(c.name, only) == nullptr) continue;
    if (!json) std::fprintf(stderr, "moat bench: %s ...\n", c.name);
    std::vector<double> m, b;
    for (int r = 0; r < cfg.reps; ++r) {  // interleaved, so drift hits both alike
      b.push_back(RunOnce(c, cfg, false));
      m.push_back(RunOnce(c, cfg, true));
    }
    Row row{c.name, Median(m), Median(b), 0, "", c.target};
    if (c.kind == Kind::kThroughput) {
      row.unit = "MiB/s";
      row.ratio = row.baseline / row.moat;
    } else {
      row.unit = "us";
      row.ratio = row.moat / row.baseline;
    }
    rows.push_back(row);
  }
  // --cpus is for the transport cases; the pipe cases run as they always do.
  if (::sched_setaffinity(0, sizeof(unpinned), &unpinned) != 0) Die("sched_setaffinity");
  if (!transport_only) {
    for (const PipeBenchRow& p :
         RunPipeBenchCases({cfg.reps, cfg.rt_iters, cfg.tput_messages, !json})) {
      rows.push_back({p.name, p.moat, p.baseline, p.ratio, p.unit, p.target});
    }
  }
  if (json) {
    std::printf("{\"cases\":[");
    for (size_t i = 0; i < rows.size(); ++i) {
      std::printf("%s{\"name\":\"%s\",\"moat\":%.3f,\"baseline\":%.3f,\"unit\":\"%s\",\"ratio\":%.3f}",
                  i ? "," : "", rows[i].name.c_str(), rows[i].moat, rows[i].baseline, rows[i].unit,
                  rows[i].ratio);
    }
    std::printf("]}\n");
    return 0;
  }
  std::printf("%-18s %12s %12s %-6s %7s  %s\n", "case", "moat", "raw", "unit", "ratio",
              "target (ratio)");
  for (const Row& r : rows) {
    std::printf("%-18s %12.2f %12.2f %-6s %7.2f  %s\n", r.name.c_str(), r.moat, r.baseline, r.unit,
                r.ratio, r.target);
  }
  std::printf("(medians of %d runs; ratio = moat/raw for times, raw/moat for throughput)\n",
              cfg.reps);
  return 0;
}

}  // namespace

MOAT_COMMAND(bench, "moat Transport vs raw socketpair: round trips, throughput, descriptors",
             RunBench);

}  // namespace moat::tools
