// The closer thread: everything handed over is closed, from any number of
// threads, and a forked child gets a working closer of its own.
#include "core/deferred_close.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <thread>
#include <vector>

#include "core/testing/fd_count.h"

namespace moat {
namespace {

UniqueFd OpenPipeEnd() {
  int p[2];
  EXPECT_EQ(::pipe2(p, O_CLOEXEC), 0);
  ::close(p[1]);
  return UniqueFd(p[0]);
}

TEST(DeferredCloseTest, EverythingHandedOverIsClosedFromManyThreads) {
  WaitForDeferredCloses();
  const size_t before = testing::OpenFdCount();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([] {
      for (int i = 0; i < 200; ++i) {
        std::vector<UniqueFd> fds;
        fds.push_back(OpenPipeEnd());
        fds.push_back(OpenPipeEnd());
        CloseDeferred(fds);
        EXPECT_TRUE(fds.empty());
        if (i % 50 == 0) WaitForDeferredCloses();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  WaitForDeferredCloses();
  EXPECT_EQ(DeferredClosesPending(), 0u);
  EXPECT_EQ(testing::OpenFdCount(), before);
}

// The parent's closer thread does not exist in a forked child, and its lock
// may have been held at the fork: the child must still close and wait.
TEST(DeferredCloseTest, AForkedChildHasAWorkingCloser) {
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
  GTEST_SKIP() << "TSan refuses to start threads after a multi-threaded fork";
#endif
#endif
  CloseDeferred(OpenPipeEnd());  // the parent's closer is running
  std::atomic<bool> stop{false};
  std::thread busy([&] {  // keeps the parent's closer lock busy across the fork
    while (!stop) CloseDeferred(OpenPipeEnd());
  });
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::alarm(10);  // a hang fails the test instead of blocking it
    UniqueFd fd = OpenPipeEnd();
    const int number = fd.get();
    CloseDeferred(std::move(fd));
    WaitForDeferredCloses();
    ::_exit(::fcntl(number, F_GETFD) == -1 && errno == EBADF ? 0 : 1);
  }
  stop = true;
  busy.join();
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "child killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  WaitForDeferredCloses();
}

}  // namespace
}  // namespace moat
