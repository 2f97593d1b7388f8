// Concurrency: several threads drive one node (sends, reads, local port
// moves) at once. Run under --config=tsan to check the lock discipline.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "core/mutex.h"
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


// Two nodes in one process joined by an in-memory "wire" per direction, each
// drained by its own delivery thread (as a transport IO thread would). A
// delivery that fails validation is recorded as the disconnect an embedder
// would make.
class TwoNodes {
 public:
  // When non-zero, ForwardEvent stalls every stall_every-th user message for
  // 2 ms before putting it on the wire: a sender preempted between stamping
  // an event and sending it.
  std::atomic<uint32_t> stall_every{0};

  TwoNodes() : a_(this, 0), b_(this, 1) {
    a_.node = std::make_unique<Node>(a_.name, &a_);
    b_.node = std::make_unique<Node>(b_.name, &b_);
    for (Side* s : {&a_, &b_}) s->thread = std::thread([this, s] { Deliver(s); });
  }
  ~TwoNodes() {
    for (Side* s : {&a_, &b_}) {
      {
        MutexLock lock(&s->mu);
        s->stop = true;
        s->cv.SignalAll();
      }
      s->thread.join();
    }
  }
  Node& a() { return *a_.node; }
  Node& b() { return *b_.node; }
  std::string violation() {
    MutexLock lock(&violation_mu_);
    return violation_;
  }
  bool violated() { return !violation().empty(); }

 private:
  struct Side : NodeDelegate {
    Side(TwoNodes* net, int index) : net(net), index(index), name(NodeName::Random()) {}
    void ForwardEvent(const NodeName&, std::unique_ptr<Event> event) override {
      const uint32_t every = net->stall_every;
      if (every != 0 && event->type() == EventType::kUserMessage &&
          ++net->user_events % every == 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      Side* to = index == 0 ? &net->b_ : &net->a_;
      MutexLock lock(&to->mu);
      to->inbox.push_back(std::move(event));
      to->cv.Signal();
    }
    void PortStatusChanged(const PortRef&) override {}
    void BadEventFrom(const NodeName&, const Error& error) override { net->Violation(error); }
    // Events are delivered by the delivery threads, never by a writer.
    bool SendersMayWaitForPeers() const override { return true; }
    TwoNodes* net;
    int index;
    NodeName name;
    std::unique_ptr<Node> node;
    Mutex mu;
    CondVar cv;
    std::deque<std::unique_ptr<Event>> inbox ABSL_GUARDED_BY(mu);
    bool stop ABSL_GUARDED_BY(mu) = false;
    std::thread thread;
  };

  void Deliver(Side* s) {
    const NodeName from = s == &a_ ? b_.name : a_.name;
    for (;;) {
      std::unique_ptr<Event> e;
      {
        MutexLock lock(&s->mu);
        while (s->inbox.empty() && !s->stop) s->cv.Wait(&s->mu);
        if (s->inbox.empty()) return;
        e = std::move(s->inbox.front());
        s->inbox.pop_front();
      }
      Status st = s->node->AcceptEvent(from, std::move(e));
      if (!st.ok()) Violation(st.error());
    }
  }
  void Violation(const Error& e) {
    MutexLock lock(&violation_mu_);
    if (violation_.empty()) violation_ = e.ToString();
  }

  std::atomic<uint32_t> user_events{0};
  Side a_, b_;
  Mutex violation_mu_;
  std::string violation_ ABSL_GUARDED_BY(violation_mu_);
};

// kThreads writers send kPerThread messages each on `a` (node A); the test
// thread reads them from `b` (node B) and checks each writer's order.
void WriteConcurrentlyAndCheck(TwoNodes& net, const PortRef& a, const PortRef& b,
                               std::chrono::steady_clock::time_point deadline) {
  constexpr uint32_t kThreads = 4;
  constexpr uint32_t kPerThread = 2000;
  std::vector<std::thread> writers;
  for (uint32_t t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      for (uint32_t i = 0; i < kPerThread; ++i) {
        ASSERT_TRUE(net.a().SendUserMessage(a, Msg(t << 24 | i)).ok());
      }
    });
  }
  uint32_t next[kThreads] = {};
  uint32_t received = 0;
  while (received < kThreads * kPerThread && !net.violated() &&
         std::chrono::steady_clock::now() < deadline) {
    std::unique_ptr<UserMessage> m;
    ASSERT_TRUE(net.b().GetMessage(b, &m).ok());
    if (!m) {
      std::this_thread::yield();
      continue;
    }
    uint32_t got;
    std::memcpy(&got, m->payload.data(), 4);
    const uint32_t t = got >> 24;
    ASSERT_LT(t, kThreads);
    ASSERT_EQ(got & 0xffffff, next[t]) << "writer " << t;
    ++next[t];
    ++received;
  }
  for (auto& w : writers) w.join();
  ASSERT_FALSE(net.violated()) << net.violation();
  ASSERT_EQ(received, kThreads * kPerThread) << "timed out";
}

void CloseAndExpectClean(TwoNodes& net, const PortRef& a, const PortRef& b,
                         std::chrono::steady_clock::time_point deadline) {
  ASSERT_TRUE(net.a().ClosePort(a).ok());
  ASSERT_TRUE(net.b().ClosePort(b).ok());
  while (net.a().port_count() + net.b().port_count() != 0) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "ports left behind";
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// CAPI-6 (remote half): several threads write to one port whose peer lives
// on another node. Each event is stamped under the port lock; before the fix
// it was put on the wire after the lock was released, so a sender preempted
// in between let the others' events overtake its own, the remote port
// buffered them all behind the gap and, past MAX_PORT_BUFFERED_EVENTS, cut
// off this (honest) node. `stall_every` stalls one send in 64 for 2 ms in
// exactly that window. Every message must arrive, in each writer's order,
// and nobody may be disconnected.
TEST(NodeThreadsTest, ConcurrentWritersToARemotePeerStayInStampOrder) {
  TwoNodes net;
  PortRef a, a_merge, b, b_merge;
  ASSERT_TRUE(net.a().CreatePortPair(&a, &a_merge).ok());
  ASSERT_TRUE(net.b().CreatePortPair(&b, &b_merge).ok());
  ASSERT_TRUE(net.b().OfferForMerge(b_merge, net.a().name()).ok());
  ASSERT_TRUE(net.a().MergePorts(a_merge, net.b().name(), b_merge.name()).ok());
  // Wait until the merge's proxies are gone: this test is about one link.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (net.a().port_count() + net.b().port_count() != 2) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "merge did not settle";
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  net.stall_every = 64;
  WriteConcurrentlyAndCheck(net, a, b, deadline);
  net.stall_every = 0;
  CloseAndExpectClean(net, a, b, deadline);
}

// The same while the merge's proxies are still being bypassed (PRT-11 with
// several writers): links are re-pointed under the writers, who park on the
// unconfirmed ones and wait for the confirmation.
TEST(NodeThreadsTest, ConcurrentWritersRightAfterARemoteMerge) {
  for (int round = 0; round < 5; ++round) {
    TwoNodes net;
    PortRef a, a_merge, b, b_merge;
    ASSERT_TRUE(net.a().CreatePortPair(&a, &a_merge).ok());
    ASSERT_TRUE(net.b().CreatePortPair(&b, &b_merge).ok());
    ASSERT_TRUE(net.b().OfferForMerge(b_merge, net.a().name()).ok());
    ASSERT_TRUE(net.a().MergePorts(a_merge, net.b().name(), b_merge.name()).ok());
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    net.stall_every = 256;
    WriteConcurrentlyAndCheck(net, a, b, deadline);
    net.stall_every = 0;
    CloseAndExpectClean(net, a, b, deadline);
  }
}

}  // namespace
}  // namespace moat::ports
