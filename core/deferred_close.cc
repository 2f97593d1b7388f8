#include "core/deferred_close.h"

#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <new>
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
  Closer() {
    ::pthread_atfork(nullptr, nullptr, [] { TheCloserForFork()->ResetInForkedChild(); });
  }

  void Enqueue(int fd) {
    bool queued = false;
    bool wake = false;
    {
      MutexLock lock(&mu_);
      ++enqueued_;
      // Attack: a peer whose descriptor keeps the closer inside close()
      // (FUSE/NFS) piles up further descriptors behind it. Past the bound
      // they are closed inline (lingering disarmed) rather than held.
      if (queue_.size() < limits::MAX_DEFERRED_CLOSES) {
        if (!thread_started_) {
          thread_started_ = true;
          std::thread([this] { Run(); }).detach();
        }
        queue_.push_back(fd);
        queued = true;
        // Wake the closer only if it sleeps (a busy closer takes the whole
        // queue on its next turn).
        wake = closer_sleeping_;
        closer_sleeping_ = false;
      }
    }
    if (queued) {
      // After unlocking, so that the closer does not wake into a held lock:
      // futex calls per descriptor were the cost of deferring.
      if (wake) work_cv_.Signal();
      return;
    }
    CloseNow(fd);
    MutexLock lock(&mu_);
    ++closed_;
    if (waiters_ != 0) done_cv_.SignalAll();
  }

  void WaitAll() {
    MutexLock lock(&mu_);
    const uint64_t target = enqueued_;
    ++waiters_;
    while (closed_ < target) done_cv_.Wait(&mu_);
    --waiters_;
  }

  size_t Pending() {
    MutexLock lock(&mu_);
    return static_cast<size_t>(enqueued_ - closed_);
  }

  // The closer for the fork handler, which cannot capture.
  static Closer* TheCloserForFork();

 private:
  // A forked child has no closer thread even though its memory says so, and
  // the lock and condition variables may be mid-use by threads that do not
  // exist there (a held lock, a waiter a signal would wait for): start
  // afresh. Only the forking thread runs now, so no lock is needed.
  void ResetInForkedChild() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    new (&mu_) Mutex;
    new (&work_cv_) CondVar;
    new (&done_cv_) CondVar;
    thread_started_ = false;
    closer_sleeping_ = false;
    waiters_ = 0;
  }

  void Run() {
    std::vector<int> batch;
    while (true) {
      {
        MutexLock lock(&mu_);
        closed_ += batch.size();
        if (!batch.empty() && waiters_ != 0) done_cv_.SignalAll();
        batch.clear();
        while (queue_.empty()) {
          closer_sleeping_ = true;  // cleared by the Enqueue() that wakes us
          work_cv_.Wait(&mu_);
        }
        closer_sleeping_ = false;
        batch.swap(queue_);
      }
      for (int fd : batch) CloseNow(fd);
    }
  }

  // Lock order: a leaf; never held while closing.
  Mutex mu_;
  CondVar work_cv_;  // the closer waits here for descriptors
  CondVar done_cv_;  // WaitAll() callers wait here for closes
  std::vector<int> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t enqueued_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t closed_ ABSL_GUARDED_BY(mu_) = 0;
  int waiters_ ABSL_GUARDED_BY(mu_) = 0;
  bool closer_sleeping_ ABSL_GUARDED_BY(mu_) = false;
  bool thread_started_ ABSL_GUARDED_BY(mu_) = false;
};

Closer& TheCloser() {
  // Never destroyed: the detached thread may outlive static destruction.
  static Closer* closer = new Closer;
  return *closer;
}

Closer* Closer::TheCloserForFork() { return &TheCloser(); }

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
