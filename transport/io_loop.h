// moat::transport::IoLoop: one IO thread serving any number of Transports,
// and IoLoopPool: a small fixed set of them assigning transports round-robin
// (issue 15 item 4: a broker with 64 children ran 64+ IO threads).
//
//   auto loop = *IoLoop::Create();
//   TransportOptions options;
//   options.io_loop = loop;               // no private IO thread
//   auto pair = *Transport::CreatePaired(std::move(options));
//
// How: one epoll set holds every registered transport's socket and wake
// eventfd (level-triggered), keyed by the transport's token; the transport's
// own interest logic (UpdateInterestLocked) arms its socket there. A
// transport is dispatched when its socket or wake is ready, or when its
// park-timer deadline passed. One dispatch is one "turn" of that
// transport's IO work (Transport::IoTurn, given the events the loop saw),
// which reads at most Options::read_budget_bytes from the socket: the rest
// stays ready and is read after every other ready transport had its turn
// (round-robin), so one flooding peer cannot starve the others.
//
// Threads. Register/Unregister are called by Transport (Init; destructor,
// ReleaseForTransfer) from any thread. Unregister returns once the loop is
// not (and will never again be) inside that transport's turn: from another
// thread it waits for a running turn; from the loop thread itself (another
// transport's handler destroying this one) no turn of it is running, and its
// events already collected are skipped. A transport's own handler must not
// destroy or release it (MOAT_ASSERT, as on a private IO thread: its turn
// is still running). The loop outlives its transports
// (they hold a shared_ptr); its destructor joins the thread and must not
// run on it (MOAT_ASSERT). A loop does not survive fork(): the child has no
// loop thread (create new loops there, as for private IO threads).
#ifndef MOAT_TRANSPORT_IO_LOOP_H_
#define MOAT_TRANSPORT_IO_LOOP_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/mutex.h"
#include "core/unique_fd.h"
#include "limits/limits.h"

namespace moat::transport {

class Transport;

class IoLoop {
 public:
  struct Options {
    // Bytes one turn may read from one transport's socket (see limits.h).
    size_t read_budget_bytes = limits::IO_LOOP_READ_BUDGET_BYTES;
  };
  static Result<std::shared_ptr<IoLoop>> Create(Options options);
  static Result<std::shared_ptr<IoLoop>> Create() { return Create(Options{}); }

  ~IoLoop();
  IoLoop(const IoLoop&) = delete;
  IoLoop& operator=(const IoLoop&) = delete;

  bool OnLoopThread() const { return std::this_thread::get_id() == thread_id_; }

  // Counters for tests and diagnostics.
  struct Stats {
    size_t transports = 0;          // registered now
    uint64_t turns = 0;             // dispatches, all transports
    uint64_t budget_exhausted = 0;  // turns that stopped at read_budget_bytes
  };
  Stats stats() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  friend class Transport;
  using Token = uint64_t;  // >= 1, never reused
  using Clock = std::chrono::steady_clock;
  // epoll data keys: 0 is the loop's own wake eventfd; a transport's socket
  // is token * 2, its wake eventfd token * 2 + 1.
  static uint64_t SocketKey(Token token) { return token << 1; }
  static uint64_t WakeKey(Token token) { return (token << 1) | 1; }
  // What the loop saw for one transport in one round (Transport::IoTurn).
  struct Events {
    bool readable = false;  // socket: EPOLLIN, RDHUP, HUP or ERR
    bool writable = false;  // socket: EPOLLOUT, HUP or ERR
    bool woken = false;     // its wake eventfd
  };
  struct Entry {
    Transport* transport;
    int wake_fd;
    std::optional<Clock::time_point> deadline;  // its park timer
    bool collected = false;                     // in this round's ready list
    Events events;                              // ... with these
    bool wake_watched = true;                   // wake_fd in our epoll set
  };

  explicit IoLoop(Options options) : options_(options) {}
  Status Init();
  // The epoll set a registered transport arms its socket in (key SocketKey).
  int epoll_fd() const { return epoll_.get(); }
  // Watches `wake_fd` (the transport's eventfd) from now on.
  Result<Token> Register(Transport* transport, int wake_fd) ABSL_LOCKS_EXCLUDED(mu_);
  // See the header comment. The wake descriptor must still be open; the
  // transport removes its socket from epoll_fd() itself.
  void Unregister(Token token) ABSL_LOCKS_EXCLUDED(mu_);
  void Run() ABSL_LOCKS_EXCLUDED(mu_);
  int TimeoutMsLocked(Clock::time_point now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Wake();

  const Options options_;
  UniqueFd epoll_;
  UniqueFd wake_;  // eventfd: stop
  std::thread thread_;
  std::thread::id thread_id_;  // fixed before any transport registers

  // Lock order: leaf; never held while a transport's turn runs (the turn
  // takes the transport's locks and calls its handlers).
  mutable Mutex mu_;
  CondVar cv_;  // signalled when a turn ends
  std::map<Token, Entry> entries_ ABSL_GUARDED_BY(mu_);
  Token next_token_ ABSL_GUARDED_BY(mu_) = 1;
  Token dispatching_ ABSL_GUARDED_BY(mu_) = 0;  // whose turn runs now (0: none)
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

// K loops (K fixed at creation), handed out round-robin.
class IoLoopPool {
 public:
  static Result<std::unique_ptr<IoLoopPool>> Create(size_t loops, IoLoop::Options options = {});
  std::shared_ptr<IoLoop> Next();
  size_t size() const { return loops_.size(); }
  const std::vector<std::shared_ptr<IoLoop>>& loops() const { return loops_; }

 private:
  IoLoopPool() = default;
  std::vector<std::shared_ptr<IoLoop>> loops_;
  std::atomic<size_t> next_{0};
};

}  // namespace moat::transport

#endif  // MOAT_TRANSPORT_IO_LOOP_H_
