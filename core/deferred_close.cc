#include "core/deferred_close.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <thread>
#include <utility>

#include "core/mutex.h"
#include "limits/limits.h"

namespace moat {
namespace {

// Switches lingering off so that the last close of a socket returns at once
// (the kernel still sends what is queued, in the background). Not a socket:
// ENOTSOCK, nothing to do.
void DisarmLinger(int fd) {
  const linger off{0, 0};
  (void)::setsockopt(fd, SOL_SOCKET, SO_LINGER, &off, sizeof(off));
}

void CloseNow(int fd) {
  DisarmLinger(fd);
  ::close(fd);
}

class Closer {
 public:
  void Enqueue(int fd) {
    {
      MutexLock lock(&mu_);
      // Attack: a peer whose descriptor keeps the closer inside close()
      // (FUSE/NFS) piles up further descriptors behind it. Past the bound
      // they are closed inline (lingering disarmed) rather than held.
      if (queue_.size() < limits::MAX_DEFERRED_CLOSES) {
        StartLocked();
        queue_.push_back(fd);
        ++enqueued_;
        cv_.SignalAll();
        return;
      }
      ++enqueued_;
      ++closed_inline_;
    }
    CloseNow(fd);
    MutexLock lock(&mu_);
    ++closed_;
    cv_.SignalAll();
  }

  void WaitAll() {
    MutexLock lock(&mu_);
    const uint64_t target = enqueued_;
    while (closed_ < target) cv_.Wait(&mu_);
  }

  size_t Pending() {
    MutexLock lock(&mu_);
    return static_cast<size_t>(enqueued_ - closed_);
  }

 private:
  void StartLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    // A forked child has no closer thread even though its memory says so.
    const pid_t pid = ::getpid();
    if (thread_pid_ == pid) return;
    thread_pid_ = pid;
    std::thread([this] { Run(); }).detach();
  }

  void Run() {
    std::vector<int> batch;
    while (true) {
      {
        MutexLock lock(&mu_);
        closed_ += batch.size();
        if (!batch.empty()) cv_.SignalAll();
        batch.clear();
        while (queue_.empty()) cv_.Wait(&mu_);
        batch.swap(queue_);
      }
      for (int fd : batch) CloseNow(fd);
    }
  }

  // Lock order: a leaf; never held while closing.
  Mutex mu_;
  CondVar cv_;
  std::vector<int> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t enqueued_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t closed_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t closed_inline_ ABSL_GUARDED_BY(mu_) = 0;
  pid_t thread_pid_ ABSL_GUARDED_BY(mu_) = 0;
};

Closer& TheCloser() {
  // Never destroyed: the detached thread may outlive static destruction.
  static Closer* closer = new Closer;
  return *closer;
}

}  // namespace

void CloseDeferred(UniqueFd fd) {
  if (fd.valid()) TheCloser().Enqueue(fd.release());
}

void CloseDeferred(std::vector<UniqueFd>& fds) {
  for (UniqueFd& fd : fds) CloseDeferred(std::move(fd));
  fds.clear();
}

void CloseDeferred(std::deque<UniqueFd>& fds) {
  for (UniqueFd& fd : fds) CloseDeferred(std::move(fd));
  fds.clear();
}

void WaitForDeferredCloses() { TheCloser().WaitAll(); }

size_t DeferredClosesPending() { return TheCloser().Pending(); }

}  // namespace moat
