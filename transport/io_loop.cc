#include "transport/io_loop.h"

#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "core/check.h"
#include "transport/transport.h"

namespace moat::transport {
namespace {
// Ready descriptors taken per epoll_wait(); more stay ready for the next one.
constexpr int kMaxEvents = 64;
}  // namespace

Result<std::shared_ptr<IoLoop>> IoLoop::Create(Options options) {
  MOAT_ASSERT(options.read_budget_bytes > 0, "IoLoop read budget must be positive");
  std::shared_ptr<IoLoop> loop(new IoLoop(options));
  MOAT_TRY(loop->Init());
  return loop;
}

Status IoLoop::Init() {
  epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_.valid()) return IoError("epoll_create1", errno);
  wake_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_.valid()) return IoError("eventfd", errno);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 0;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev) != 0) {
    return IoError("epoll_ctl", errno);
  }
  thread_ = std::thread([this] { Run(); });
  thread_id_ = thread_.get_id();
  return OkStatus();
}

IoLoop::~IoLoop() {
  MOAT_ASSERT(!OnLoopThread(), "an IoLoop destroyed on its own thread");
  if (!thread_.joinable()) return;
  {
    MutexLock lock(&mu_);
    MOAT_ASSERT(entries_.empty(), "an IoLoop destroyed while ", entries_.size(),
                " transports are registered");
    stop_ = true;
  }
  Wake();
  thread_.join();
}

void IoLoop::Wake() {
  const uint64_t one = 1;
  // A full eventfd counter still wakes the thread, so EAGAIN is harmless.
  [[maybe_unused]] ssize_t n = ::write(wake_.get(), &one, sizeof(one));
}

Result<IoLoop::Token> IoLoop::Register(Transport* transport, int wake_fd) {
  MutexLock lock(&mu_);
  MOAT_ASSERT(!stop_, "Register on a stopping IoLoop");
  const Token token = next_token_++;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = WakeKey(token);
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_fd, &ev) != 0) {
    return IoError("epoll_ctl(IoLoop add)", errno);
  }
  entries_.emplace(token, Entry{.transport = transport, .wake_fd = wake_fd});
  stats_.transports = entries_.size();
  return token;
}

void IoLoop::Unregister(Token token) {
  MutexLock lock(&mu_);
  auto it = entries_.find(token);
  MOAT_ASSERT(it != entries_.end(), "Unregister of an unknown IoLoop token");
  if (it->second.wake_watched) {
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->second.wake_fd, nullptr);
  }
  entries_.erase(it);
  stats_.transports = entries_.size();
  // From the loop thread this transport's turn cannot be running (a
  // transport is never destroyed or released from its own turn: Transport
  // asserts it), and events already collected for it are skipped (the token
  // is gone). From any other thread: wait for a running turn to end.
  if (OnLoopThread()) return;
  while (dispatching_ == token) cv_.Wait(&mu_);
}

IoLoop::Stats IoLoop::stats() const {
  MutexLock lock(&mu_);
  return stats_;
}

int IoLoop::TimeoutMsLocked(Clock::time_point now) const {
  std::optional<Clock::time_point> first;
  // Linear: a loop serves tens of transports, and only parked ones have a deadline.
  for (const auto& [token, entry] : entries_) {
    if (entry.deadline && (!first || *entry.deadline < *first)) first = entry.deadline;
  }
  if (!first) return -1;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(*first - now);
  return static_cast<int>(std::max<int64_t>(left.count(), 0));
}

void IoLoop::Run() {
  // For ps/top and /proc/<pid>/task/*/comm (at most 15 characters).
  ::pthread_setname_np(::pthread_self(), "moat-io-loop");
  epoll_event events[kMaxEvents];
  std::vector<Token> ready;
  while (true) {
    int timeout_ms;
    {
      MutexLock lock(&mu_);
      if (stop_) return;
      timeout_ms = TimeoutMsLocked(Clock::now());
    }
    const int n = ::epoll_wait(epoll_.get(), events, kMaxEvents, timeout_ms);
    if (n < 0) {
      MOAT_ASSERT(errno == EINTR, "IoLoop epoll_wait failed: ", std::strerror(errno));
      continue;
    }
    ready.clear();
    {
      MutexLock lock(&mu_);
      if (stop_) return;
      for (int i = 0; i < n; ++i) {
        const uint64_t key = events[i].data.u64;
        if (key == 0) {
          uint64_t value;
          [[maybe_unused]] ssize_t r = ::read(wake_.get(), &value, sizeof(value));
          continue;
        }
        const Token token = key >> 1;
        auto it = entries_.find(token);
        if (it == entries_.end()) continue;  // a late event of a removed transport
        Entry& entry = it->second;
        if (key & 1) {
          entry.events.woken = true;
        } else {
          const uint32_t e = events[i].events;
          if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) entry.events.readable = true;
          if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) entry.events.writable = true;
        }
        if (!entry.collected) {
          entry.collected = true;
          ready.push_back(token);
        }
      }
      const Clock::time_point now = Clock::now();
      for (auto& [token, entry] : entries_) {
        if (entry.deadline && *entry.deadline <= now && !entry.collected) {
          entry.collected = true;
          ready.push_back(token);
        }
      }
    }
    // One turn each, in the order epoll reported them (level-triggered: a
    // transport left with input goes to the back of epoll's ready list).
    for (const Token token : ready) {
      Transport* transport;
      Events seen;
      {
        MutexLock lock(&mu_);
        auto it = entries_.find(token);
        if (it == entries_.end()) continue;  // unregistered meanwhile
        it->second.collected = false;
        seen = it->second.events;
        it->second.events = Events{};
        dispatching_ = token;
        transport = it->second.transport;
      }
      const Transport::IoTurnResult result =
          transport->IoTurn(/*block=*/false, options_.read_budget_bytes, &seen);
      MutexLock lock(&mu_);
      dispatching_ = 0;
      ++stats_.turns;
      if (result.budget_exhausted) ++stats_.budget_exhausted;
      auto it = entries_.find(token);
      if (it != entries_.end()) {
        it->second.deadline = result.deadline;
        if (result.stopped && it->second.wake_watched) {
          // Being destroyed or released: no more turns. Its wake may be
          // written until Unregister; stop watching it (the socket was
          // disarmed when stopping began).
          ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->second.wake_fd, nullptr);
          it->second.wake_watched = false;
          it->second.deadline.reset();
        }
      }
      cv_.SignalAll();
    }
  }
}

Result<std::unique_ptr<IoLoopPool>> IoLoopPool::Create(size_t loops, IoLoop::Options options) {
  MOAT_ASSERT(loops > 0, "an IoLoopPool needs at least one loop");
  std::unique_ptr<IoLoopPool> pool(new IoLoopPool());
  for (size_t i = 0; i < loops; ++i) {
    MOAT_ASSIGN_OR_RETURN(std::shared_ptr<IoLoop> loop, IoLoop::Create(options));
    pool->loops_.push_back(std::move(loop));
  }
  return pool;
}

std::shared_ptr<IoLoop> IoLoopPool::Next() {
  return loops_[next_.fetch_add(1, std::memory_order_relaxed) % loops_.size()];
}

}  // namespace moat::transport
