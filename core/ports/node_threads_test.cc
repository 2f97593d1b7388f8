// Concurrency: several threads drive one node (sends, reads, local port
// moves) at once. Run under --config=tsan to check the lock discipline.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>

#include "core/ports/node.h"

namespace moat::ports {
namespace {

class CountingDelegate : public NodeDelegate {
 public:
  void ForwardEvent(const NodeName&, std::unique_ptr<Event>) override { ++forwarded; }
  void PortStatusChanged(const PortRef&) override { ++changes; }
  std::atomic<int> forwarded{0};
  std::atomic<int> changes{0};
};

std::unique_ptr<UserMessage> Msg(uint32_t n) {
  auto m = std::make_unique<UserMessage>();
  m->payload.resize(4);
  std::memcpy(m->payload.data(), &n, 4);
  return m;
}

TEST(NodeThreadsTest, ConcurrentSendersAndReadersKeepOrder) {
  CountingDelegate delegate;
  Node node(NodeName::Random(), &delegate);
  PortRef a, b;
  ASSERT_TRUE(node.CreatePortPair(&a, &b).ok());
  constexpr uint32_t kCount = 500;
  auto sender = [&](PortRef from) {
    for (uint32_t i = 0; i < kCount; ++i) ASSERT_TRUE(node.SendUserMessage(from, Msg(i)).ok());
  };
  auto reader = [&](PortRef at) {
    uint32_t next = 0;
    while (next < kCount) {
      std::unique_ptr<UserMessage> m;
      ASSERT_TRUE(node.GetMessage(at, &m).ok());
      if (!m) {
        std::this_thread::yield();
        continue;
      }
      uint32_t got;
      std::memcpy(&got, m->payload.data(), 4);
      ASSERT_EQ(got, next);
      ++next;
    }
  };
  std::thread t1(sender, a), t2(sender, b), t3(reader, b), t4(reader, a);
  t1.join();
  t2.join();
  t3.join();
  t4.join();
  EXPECT_EQ(delegate.forwarded.load(), 0);
  ASSERT_TRUE(node.ClosePort(a).ok());
  ASSERT_TRUE(node.ClosePort(b).ok());
  EXPECT_TRUE(node.CanShutdownCleanly());
}

TEST(NodeThreadsTest, ConcurrentLocalPortMoves) {
  CountingDelegate delegate;
  Node node(NodeName::Random(), &delegate);
  PortRef a, b, x, y;
  ASSERT_TRUE(node.CreatePortPair(&a, &b).ok());
  ASSERT_TRUE(node.CreatePortPair(&x, &y).ok());
  constexpr int kMoves = 100;
  std::atomic<bool> done{false};
  // One thread bounces y through the a->b pipe; another keeps writing to y.
  std::thread mover([&] {
    PortRef cur = y;
    for (int i = 0; i < kMoves; ++i) {
      auto m = std::make_unique<UserMessage>();
      m->ports = {cur.name()};
      ASSERT_TRUE(node.SendUserMessage(a, std::move(m)).ok());
      // Delivery is asynchronous when another thread is already draining
      // this node's local events: wait for it.
      std::unique_ptr<UserMessage> got;
      while (!got) {
        ASSERT_TRUE(node.GetMessage(b, &got).ok());
        if (!got) std::this_thread::yield();
      }
      ASSERT_TRUE(node.GetPort(got->ports[0], &cur).ok());
    }
    y = cur;
    done = true;
  });
  std::thread writer([&] {
    for (uint32_t i = 0; i < 1000; ++i) ASSERT_TRUE(node.SendUserMessage(x, Msg(i)).ok());
  });
  mover.join();
  writer.join();
  uint32_t next = 0;
  std::unique_ptr<UserMessage> m;
  while (node.GetMessage(y, &m).ok() && m) {
    uint32_t got;
    std::memcpy(&got, m->payload.data(), 4);
    ASSERT_EQ(got, next++);
  }
  EXPECT_EQ(next, 1000u);
  for (auto p : {a, b, x, y}) ASSERT_TRUE(node.ClosePort(p).ok());
  EXPECT_TRUE(node.CanShutdownCleanly()) << node.port_count();
}

}  // namespace
}  // namespace moat::ports
