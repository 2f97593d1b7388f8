// A burst written on a fresh bootstrap pipe, while the merge's proxies are
// still being bypassed, must arrive complete and in order. Both nodes live in
// this process (broker and child over a socketpair), each with its own IO
// thread, so sends race with the bypass exactly as between two processes.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cstring>
#include <atomic>
#include <future>
#include <thread>

#include "core/node/node_controller.h"
#include "core/node/pipe_wait.h"

namespace moat::node {
namespace {

constexpr auto kTimeout = std::chrono::seconds(20);

std::atomic<bool> g_running{false};

struct Pair {
  std::unique_ptr<NodeController> broker, child;
  system::Handle parent_end = system::kInvalidHandle;
};

Pair Connect(size_t max_unprocessed_bytes) {
  int sv[2];
  MOAT_ASSERT(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  Pair p;
  NodeControllerOptions o;
  limits::ConnectionLimits tight;
  tight.max_unprocessed_bytes = max_unprocessed_bytes;
  o.limits = o.limits.Tightened(tight);
  o.on_node_lost = [](const ports::NodeName& n, const Error& e) {
    if (g_running) ADD_FAILURE() << "node " << n.ToString() << " lost: " << e.ToString();
  };
  p.broker = NodeController::CreateBroker(o);
  auto child = std::async(std::launch::async, [fd = sv[1], o] {
    return NodeController::ConnectToBroker(UniqueFd(fd), std::chrono::seconds(10), o);
  });
  auto c = p.broker->AddChild(UniqueFd(sv[0]));
  MOAT_ASSERT(c.ok(), c.error().ToString());
  p.parent_end = c->bootstrap;
  auto n = child.get();
  MOAT_ASSERT(n.ok(), n.error().ToString());
  p.child = std::move(*n);
  return p;
}

void Burst(size_t count, size_t size,
           size_t max_unprocessed_bytes = limits::MAX_UNPROCESSED_BYTES) {
  Pair p = Connect(max_unprocessed_bytes);
  g_running = true;
  // Written at once: the bootstrap pipe's proxies are still in place.
  std::vector<uint8_t> buf(size);
  for (size_t i = 0; i < count; ++i) {
    std::memcpy(buf.data(), &i, sizeof(i));
    Status s = p.broker->core().WriteMessage(p.parent_end, buf, {}, {});
    ASSERT_TRUE(s.ok()) << "message " << i << ": " << s.error().ToString();
  }
  system::Core& cc = p.child->core();
  for (size_t i = 0; i < count; ++i) {
    auto m = ReadMessageBlocking(cc, p.child->bootstrap(), kTimeout);
    ASSERT_TRUE(m.ok()) << "message " << i << " of " << count << ": " << m.error().ToString();
    ASSERT_EQ(m->payload.size(), size);
    size_t got;
    std::memcpy(&got, m->payload.data(), sizeof(got));
    ASSERT_EQ(got, i);
  }
  ASSERT_TRUE(cc.WriteMessage(p.child->bootstrap(), std::vector<uint8_t>{1}, {}, {}).ok());
  auto ack = ReadMessageBlocking(p.broker->core(), p.parent_end, kTimeout);
  ASSERT_TRUE(ack.ok()) << ack.error().ToString();
  g_running = false;
}

TEST(NodeBurstTest, BurstRightAfterAddChildArrivesInOrder) {
  for (int i = 0; i < 10; ++i) Burst(1000, 64 * 1024);
}

// Regression: the broker's IO thread, busy with an event of its own, became
// the node's only drainer of local events, so the writer's messages (routed
// through the merge's local proxy) were forwarded by the IO thread. It cannot
// wait for its own socket: once the send queue held max_unprocessed_bytes the
// transport refused (kResourceExhausted), ForwardEvent dropped the event
// silently, and the child waited forever for the missing one. The tight
// limit makes the queue fill within one burst (16 MiB burst, 8 MiB queue; an
// IO thread may still legitimately forward up to MAX_PORT_BUFFERED_EVENTS
// messages that waited for its event, 4 MiB here).
TEST(NodeBurstTest, BurstLargerThanTheSendQueueRightAfterAddChild) {
  for (int i = 0; i < 5; ++i) Burst(1000, 16 * 1024, 8 * limits::MiB);
}

// Known remaining failure (intermittent): while the bootstrap proxy is being
// bypassed, the writer's port already sends to the child's port directly,
// which must buffer those events until the proxy's last one arrives; a fast
// writer exceeds MAX_PORT_BUFFERED_EVENTS (256) and the pipe is cut. Enable
// once that buffering is bounded by something a legitimate burst respects.
TEST(NodeBurstTest, ManySmallMessagesRightAfterAddChild) {
  for (int i = 0; i < 20; ++i) Burst(2000, 64);
}

}  // namespace
}  // namespace moat::node
