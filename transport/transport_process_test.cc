// Cross-process tests: the peer is a real child process
// (transport_test_child, exec'd with the socket as descriptor 3).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "core/deferred_close.h"
#include "core/testing/fd_count.h"
#include "transport/testing/event_recorder.h"
#include "transport/transport.h"

namespace moat::transport {
namespace {

using testing::DisconnectRecorder;

constexpr auto kGuard = std::chrono::seconds(60);
// Relative to the test's working directory, the runfiles root.
constexpr char kChild[] = "transport/transport_test_child";

std::vector<uint8_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }
std::string Str(const std::vector<uint8_t>& b) { return {b.begin(), b.end()}; }

// Starts the child with `socket` as its descriptor 3; closes our copy.
pid_t Spawn(UniqueFd socket, std::vector<std::string> args) {
  std::vector<char*> argv;
  std::string path = kChild;
  argv.push_back(path.data());
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec.
    if (::dup2(socket.get(), 3) < 0) ::_exit(120);
    ::execv(argv[0], argv.data());
    ::_exit(121);
  }
  return pid;
}

int Reap(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return -1;
  return status;
}

struct Child {
  std::unique_ptr<Transport> transport;
  pid_t pid = -1;
};

Child StartChild(std::vector<std::string> args, TransportOptions options = {}) {
  auto paired = Transport::CreatePaired(std::move(options));
  EXPECT_TRUE(paired.ok());
  auto socket = std::move(paired->handle).TakeSocketForSending();
  EXPECT_TRUE(socket.ok());
  Child c;
  c.pid = Spawn(std::move(*socket), std::move(args));
  EXPECT_GT(c.pid, 0);
  c.transport = std::move(paired->transport);
  return c;
}

TEST(TransportProcessTest, EchoBothWaysWithManySizes) {
  const size_t before = moat::testing::OpenFdCount();
  {
    Child c = StartChild({"echo"});
    for (size_t size : {0, 1, 64, 4096, 65536, 1 << 20, 3 << 20}) {
      std::vector<uint8_t> m(size);
      for (size_t i = 0; i < size; ++i) m[i] = static_cast<uint8_t>(i * 31 + size);
      ASSERT_TRUE(c.transport->Send(m).ok());
      auto got = c.transport->Receive(kGuard);
      ASSERT_TRUE(got.ok()) << got.error().ToString();
      EXPECT_EQ(got->payload, m) << "size " << size;
    }
    c.transport.reset();  // the child sees EOF and exits
    EXPECT_EQ(Reap(c.pid), 0);
  }
  WaitForDeferredCloses();
  EXPECT_EQ(moat::testing::OpenFdCount(), before);
}

TEST(TransportProcessTest, DescriptorsAreUsableInTheChild) {
  const size_t before = moat::testing::OpenFdCount();
  {
    Child c = StartChild({"use_fds"});
    int pipe_fds[2];
    ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
    UniqueFd read_end(pipe_fds[0]);
    UniqueFd memfd(::memfd_create("moat-test", MFD_CLOEXEC));
    ASSERT_TRUE(memfd.valid());
    const std::string content = "memfd content from the parent";
    ASSERT_EQ(::write(memfd.get(), content.data(), content.size()),
              static_cast<ssize_t>(content.size()));
    std::vector<UniqueFd> fds;
    fds.emplace_back(pipe_fds[1]);
    fds.push_back(std::move(memfd));
    ASSERT_TRUE(c.transport->Send(Bytes("take these"), std::move(fds)).ok());
    auto reply = c.transport->Receive(kGuard);
    ASSERT_TRUE(reply.ok()) << reply.error().ToString();
    EXPECT_EQ(Str(reply->payload), content);
    char buf[64] = {};
    const ssize_t n = ::read(read_end.get(), buf, sizeof(buf));
    EXPECT_EQ(std::string(buf, static_cast<size_t>(std::max<ssize_t>(n, 0))),
              "written by the child");
    c.transport.reset();
    EXPECT_EQ(Reap(c.pid), 0);
  }
  WaitForDeferredCloses();
  EXPECT_EQ(moat::testing::OpenFdCount(), before);
}

TEST(TransportProcessTest, EchoedDescriptorsComeBackUsable) {
  Child c = StartChild({"echo"});
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  UniqueFd read_end(pipe_fds[0]);
  std::vector<UniqueFd> fds;
  fds.emplace_back(pipe_fds[1]);
  ASSERT_TRUE(c.transport->Send(Bytes("boomerang"), std::move(fds)).ok());
  auto got = c.transport->Receive(kGuard);
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  ASSERT_EQ(got->fds.size(), 1u);
  ASSERT_EQ(::write(got->fds[0].get(), "!", 1), 1);
  char ch = 0;
  ASSERT_EQ(::read(read_end.get(), &ch, 1), 1);
  EXPECT_EQ(ch, '!');
  c.transport.reset();
  EXPECT_EQ(Reap(c.pid), 0);
}

TEST(TransportProcessTest, OrderingUnderConcurrentSenders) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 500;
  Child c = StartChild({"count", std::to_string(kThreads * kPerThread), std::to_string(kThreads)});
  std::vector<std::thread> senders;
  for (int t = 0; t < kThreads; ++t) {
    senders.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string s = std::to_string(t) + ":" + std::to_string(i) + std::string(i % 300, 'o');
        ASSERT_TRUE(c.transport->Send(Bytes(s)).ok());
      }
    });
  }
  for (auto& s : senders) s.join();
  auto verdict = c.transport->Receive(kGuard);
  ASSERT_TRUE(verdict.ok()) << verdict.error().ToString();
  EXPECT_EQ(Str(verdict->payload), "ok");
  c.transport.reset();
  EXPECT_EQ(Reap(c.pid), 0);
}

TEST(TransportProcessTest, PeerKilledMidMessage) {
  const size_t before = moat::testing::OpenFdCount();
  {
    DisconnectRecorder rec;
    Child c = StartChild({"partial"}, rec.Options());
    auto ready = c.transport->Receive(kGuard);
    ASSERT_TRUE(ready.ok()) << ready.error().ToString();
    EXPECT_EQ(Str(ready->payload), "ready");
    ASSERT_EQ(::kill(c.pid, SIGKILL), 0);
    const int status = Reap(c.pid);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    auto end = c.transport->Receive(kGuard);
    ASSERT_FALSE(end.ok());
    EXPECT_EQ(end.error().code(), ErrorCode::kIncomplete);
    EXPECT_EQ(end.error().ToString(),
              "stream ended inside a frame: 524 unprocessed bytes of a 1024-byte frame");
    EXPECT_EQ(rec.WaitForFirst().code(), ErrorCode::kIncomplete);
    Status s = c.transport->Send(Bytes("hello?"));
    EXPECT_EQ(s.error().code(), ErrorCode::kPeerClosed);
    c.transport.reset();
    EXPECT_EQ(rec.count(), 1u);
  }
  WaitForDeferredCloses();
  EXPECT_EQ(moat::testing::OpenFdCount(), before);
}

// kill -9 while we are blocked in Receive and have a large send in flight:
// both return errors, nothing hangs, exactly one event, no descriptor leak.
TEST(TransportProcessTest, PeerKilledWhileWeWaitAndSend) {
  const size_t before = moat::testing::OpenFdCount();
  {
    DisconnectRecorder rec;
    Child c = StartChild({"idle"}, rec.Options());
    auto hello = c.transport->Receive(kGuard);
    ASSERT_TRUE(hello.ok()) << hello.error().ToString();
    // A borrowed-bytes send blocks in its own thread until the peer reads or dies.
    const std::vector<uint8_t> lent(8 << 20, 9);
    std::thread blocked_sender([&] {
      Status s = c.transport->Send(lent);
      EXPECT_FALSE(s.ok());
      EXPECT_EQ(s.error().code(), ErrorCode::kPeerClosed) << s.error().ToString();
    });
    while (!c.transport->stats().sender_waiting) std::this_thread::yield();
    // Owned bytes queue behind it (for the IO thread), without blocking
    // (past the send high-water mark only a sender that must not wait can).
    std::vector<UniqueFd> fds;
    fds.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(
        c.transport->SendWithoutWaiting(std::vector<uint8_t>(16 << 20, 7), std::move(fds)).ok());
    EXPECT_GT(c.transport->stats().send_queue_bytes, 0u);
    std::thread waiter([&] {
      auto m = c.transport->Receive();  // no timeout: must be woken by the death
      EXPECT_FALSE(m.ok());
      EXPECT_EQ(m.error().code(), ErrorCode::kPeerClosed) << m.error().ToString();
    });
    ASSERT_EQ(::kill(c.pid, SIGKILL), 0);
    Reap(c.pid);
    waiter.join();
    blocked_sender.join();
    Error e = rec.WaitForFirst();
    EXPECT_EQ(e.code(), ErrorCode::kPeerClosed) << e.ToString();
    EXPECT_FALSE(c.transport->Send(Bytes("x")).ok());
    EXPECT_EQ(c.transport->stats().send_queue_bytes, 0u);
    EXPECT_EQ(c.transport->stats().retained_fds, 0u);
    c.transport.reset();
    EXPECT_EQ(rec.count(), 1u);
  }
  WaitForDeferredCloses();
  EXPECT_EQ(moat::testing::OpenFdCount(), before);
}

}  // namespace
}  // namespace moat::transport
