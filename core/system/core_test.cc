// Message pipes, transit, quotas, traps and the handle table, through Core.
#include "core/system/core.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <deque>
#include <string>
#include <vector>

#include "core/deferred_close.h"
#include "core/system/endpoint_serialization.h"

namespace moat::system {
namespace {

std::vector<uint8_t> Bytes(std::string_view s) { return std::vector<uint8_t>(s.begin(), s.end()); }

// Descriptors handed to the closer thread count as closed once it is done.
int CountOpenFds() {
  WaitForDeferredCloses();
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(d);
  return n - 1;  // the DIR itself
}

struct EventLog {
  Mutex mu;
  std::vector<TrapEvent> events ABSL_GUARDED_BY(mu);
  Trap::Handler handler() {
    return [this](const TrapEvent& e) {
      MutexLock lock(&mu);
      events.push_back(e);
    };
  }
  std::vector<TrapEvent> Take() {
    MutexLock lock(&mu);
    return std::move(events);
  }
};

class CoreTest : public ::testing::Test {
 protected:
  std::pair<Handle, Handle> Pipe() {
    auto p = core_.CreateMessagePipe();
    EXPECT_TRUE(p.ok());
    return *p;
  }
  Status Write(Handle h, std::string_view s, std::vector<Handle> handles = {},
               std::vector<UniqueFd> fds = {}) {
    auto b = Bytes(s);
    return core_.WriteMessage(h, b, handles, std::move(fds));
  }
  std::string ReadString(Handle h) {
    auto m = core_.ReadMessage(h, nullptr, nullptr);
    EXPECT_TRUE(m.ok()) << m.error().ToString();
    if (!m.ok()) return "<error>";
    return std::string(m->payload.begin(), m->payload.end());
  }
  HandleSignalsState Signals(Handle h) {
    auto s = core_.QuerySignals(h);
    EXPECT_TRUE(s.ok()) << s.error().ToString();
    return s.ok() ? *s : HandleSignalsState{};
  }
  // Sends a raw UserMessage from `from`'s port, bypassing Write's encoder:
  // what a hostile peer can put on the wire.
  Status SendRaw(Handle from, std::vector<uint8_t> payload, std::vector<ports::PortName> ports = {},
                 std::vector<UniqueFd> fds = {}) {
    auto ep = core_.GetEndpoint(from);
    EXPECT_TRUE(ep.ok());
    auto m = std::make_unique<ports::UserMessage>();
    m->payload = std::move(payload);
    m->ports = std::move(ports);
    m->fds = std::move(fds);
    return core_.node().SendUserMessage((*ep)->port(), std::move(m));
  }

  EventLog log;  // outlives core_: traps still deliver CANCELLED in ~Core
  Core core_;
};

TEST_F(CoreTest, WriteThenReadInOrder) {
  auto [a, b] = Pipe();
  EXPECT_FALSE(Signals(b).Satisfies(kSignalReadable));
  EXPECT_TRUE(Signals(a).Satisfies(kSignalWritable));
  ASSERT_TRUE(Write(a, "one").ok());
  ASSERT_TRUE(Write(a, "two").ok());
  EXPECT_TRUE(Signals(b).Satisfies(kSignalReadable));
  EXPECT_EQ(ReadString(b), "one");
  EXPECT_EQ(ReadString(b), "two");
  auto empty = core_.ReadMessage(b, nullptr, nullptr);
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().code(), ErrorCode::kShouldWait);
  ASSERT_TRUE(Write(b, "back").ok());
  EXPECT_EQ(ReadString(a), "back");
  EXPECT_TRUE(core_.Close(a).ok());
  EXPECT_TRUE(core_.Close(b).ok());
  EXPECT_EQ(core_.handle_count(), 0u);
}

TEST_F(CoreTest, TooSmallBufferKeepsTheMessage) {
  auto [a, b] = Pipe();
  ASSERT_TRUE(Write(a, "hello").ok());
  MessageSizes capacity{2, 0, 0};
  MessageSizes sizes;
  auto r = core_.ReadMessage(b, &capacity, &sizes);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_EQ(sizes.num_bytes, 5u);
  EXPECT_TRUE(Signals(b).Satisfies(kSignalReadable));
  capacity.num_bytes = 5;
  auto m = core_.ReadMessage(b, &capacity, &sizes);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(std::string(m->payload.begin(), m->payload.end()), "hello");
  EXPECT_FALSE(Signals(b).Satisfies(kSignalReadable));
}

TEST_F(CoreTest, DescriptorsTravelAndNoneLeak) {
  const int before = CountOpenFds();
  {
    auto [a, b] = Pipe();
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    UniqueFd read_end(p[0]);
    std::vector<UniqueFd> fds;
    fds.emplace_back(p[1]);
    ASSERT_TRUE(Write(a, "fd", {}, std::move(fds)).ok());
    auto m = core_.ReadMessage(b, nullptr, nullptr);
    ASSERT_TRUE(m.ok());
    ASSERT_EQ(m->fds.size(), 1u);
    ASSERT_EQ(::write(m->fds[0].get(), "x", 1), 1);
    char c = 0;
    ASSERT_EQ(::read(read_end.get(), &c, 1), 1);
    EXPECT_EQ(c, 'x');
    // Unread messages with descriptors are closed with the pipe.
    int q[2];
    ASSERT_EQ(::pipe2(q, O_CLOEXEC), 0);
    std::vector<UniqueFd> more;
    more.emplace_back(q[0]);
    more.emplace_back(q[1]);
    ASSERT_TRUE(Write(a, "unread", {}, std::move(more)).ok());
    ASSERT_TRUE(core_.Close(a).ok());
    ASSERT_TRUE(core_.Close(b).ok());
  }
  EXPECT_EQ(CountOpenFds(), before);
}

TEST_F(CoreTest, EndpointTravelsInAMessage) {
  auto [a, b] = Pipe();
  auto [c, d] = Pipe();
  ASSERT_TRUE(Write(a, "take this", {c}).ok());
  // The sent handle is gone here.
  EXPECT_EQ(core_.QuerySignals(c).error().code(), ErrorCode::kInvalidArgument);
  auto m = core_.ReadMessage(b, nullptr, nullptr);
  ASSERT_TRUE(m.ok());
  ASSERT_EQ(m->handles.size(), 1u);
  Handle c2 = m->handles[0];
  EXPECT_NE(c2, c);
  ASSERT_TRUE(Write(d, "via moved end").ok());
  EXPECT_EQ(ReadString(c2), "via moved end");
  ASSERT_TRUE(Write(c2, "and back").ok());
  EXPECT_EQ(ReadString(d), "and back");
}

TEST_F(CoreTest, InvalidAttachmentsAreRejectedAndHandlesStayValid) {
  auto [a, b] = Pipe();
  auto [c, d] = Pipe();
  Status self = Write(a, "x", {a});
  ASSERT_FALSE(self.ok());
  EXPECT_EQ(self.error().code(), ErrorCode::kInvalidArgument);
  Status twice = Write(a, "x", {c, c});
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.error().code(), ErrorCode::kBusy);  // Mojo's answer
  EXPECT_EQ(twice.error().field(), "handles[1]");
  Status peer = Write(a, "x", {b});
  ASSERT_FALSE(peer.ok()) << "attaching the writer's own peer must fail";
  // Everything is still usable.
  ASSERT_TRUE(Write(a, "fine", {}).ok());
  EXPECT_EQ(ReadString(b), "fine");
  ASSERT_TRUE(Write(c, "c ok").ok());
  EXPECT_EQ(ReadString(d), "c ok");
}

TEST_F(CoreTest, EveryOperationIsBusyInTransit) {
  auto [a, b] = Pipe();
  auto [c, d] = Pipe();
  auto ep = core_.GetEndpoint(a);
  ASSERT_TRUE(ep.ok());
  ASSERT_TRUE((*ep)->BeginTransit().ok());
  auto trap = core_.CreateTrap([](const TrapEvent&) {});
  ASSERT_TRUE(trap.ok());
  auto expect_busy = [](const Status& s, const char* what) {
    ASSERT_FALSE(s.ok()) << what;
    EXPECT_EQ(s.error().code(), ErrorCode::kBusy) << what << ": " << s.error().ToString();
  };
  expect_busy(Write(a, "x"), "write");
  expect_busy(core_.ReadMessage(a, nullptr, nullptr).ok()
                  ? OkStatus()
                  : Status(core_.ReadMessage(a, nullptr, nullptr).error()),
              "read");
  expect_busy(core_.Close(a), "close");
  expect_busy(core_.SetQuota(a, 0, 5), "set quota");
  expect_busy(core_.QueryQuota(a, 0).ok() ? OkStatus() : Status(core_.QueryQuota(a, 0).error()),
              "query quota");
  expect_busy(core_.AddTrigger(*trap, a, kSignalReadable, 0, 1), "add trigger");
  expect_busy(core_.FuseMessagePipes(a, c), "fuse");
  expect_busy(Write(c, "x", {a}), "attach");
  expect_busy(core_.QuerySignals(a).ok() ? OkStatus() : Status(core_.QuerySignals(a).error()),
              "query signals");
  // Nothing changed for c: the failed attach cancelled its transit.
  ASSERT_TRUE(Write(c, "c still works").ok());
  EXPECT_EQ(ReadString(d), "c still works");

  (*ep)->CancelTransit();
  ASSERT_TRUE(Write(a, "usable again").ok());
  EXPECT_EQ(ReadString(b), "usable again");
  EXPECT_TRUE(core_.AddTrigger(*trap, a, kSignalReadable, 0, 1).ok());
}

TEST_F(CoreTest, CompleteTransitClosesTheHandleButNotThePort) {
  auto [a, b] = Pipe();
  auto ep = core_.GetEndpoint(a);
  ASSERT_TRUE(ep.ok());
  ASSERT_TRUE((*ep)->BeginTransit().ok());
  (*ep)->CompleteTransit();
  Status s = Write(a, "x");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kClosed);
  // The port is alive and receiving: the peer is not told it closed.
  ports::PortRef port;
  ASSERT_TRUE(core_.node().GetPort((*ep)->port().name(), &port).ok());
  ports::PortStatus status;
  ASSERT_TRUE(core_.node().GetStatus(port, &status).ok());
  EXPECT_FALSE(status.peer_closed);
  EXPECT_FALSE(Signals(b).Satisfies(kSignalPeerClosed));
  (void)core_.node().ClosePort(port);
}

TEST_F(CoreTest, StaleHandlesNeverReachANewObject) {
  auto [a, b] = Pipe();
  ASSERT_TRUE(core_.Close(a).ok());
  ASSERT_TRUE(core_.Close(b).ok());
  auto [c, d] = Pipe();  // reuses the freed slots
  EXPECT_NE(c, a);
  EXPECT_NE(c, b);
  EXPECT_NE(d, a);
  EXPECT_NE(d, b);
  for (Handle stale : {a, b}) {
    Status s = Write(stale, "x");
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(core_.Close(stale).error().code(), ErrorCode::kInvalidArgument);
  }
  for (Handle bogus : {kInvalidHandle, Handle{0xffffffff}, Handle{12345}}) {
    EXPECT_EQ(core_.Close(bogus).error().code(), ErrorCode::kInvalidArgument);
  }
  EXPECT_TRUE(Write(c, "new").ok());
  EXPECT_EQ(ReadString(d), "new");
}

// Issue 15 item 1: two Cores (e.g. the C API's and a C++ NodeController's)
// used to issue the same handle numbers, so a handle of one silently wrote
// into a pipe of the other. Each table now tags its handles.
TEST_F(CoreTest, HandlesOfAnotherCoreAreInvalidHere) {
  Core other;
  auto mine = Pipe();
  auto theirs = other.CreateMessagePipe();
  ASSERT_TRUE(theirs.ok());
  EXPECT_NE(core_.table_tag(), other.table_tag());
  EXPECT_NE(core_.table_tag(), 0u);
  for (Handle foreign : {theirs->first, theirs->second}) {
    EXPECT_NE(foreign, mine.first);
    EXPECT_NE(foreign, mine.second);
    Status s = Write(foreign, "into the wrong table");
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(s.error().reason().find("not issued by this handle table"), std::string::npos)
        << s.error().ToString();
    EXPECT_EQ(core_.Close(foreign).error().code(), ErrorCode::kInvalidArgument);
    // The same slot and generation under our tag is ours; theirs is not.
    const Handle same_slot = (foreign & 0xffffffffu) | (Handle{core_.table_tag()} << 32);
    EXPECT_TRUE(same_slot == mine.first || same_slot == mine.second);
  }
  // Nothing reached our pipe, and theirs still works.
  MessageSizes sizes;
  auto m = core_.ReadMessage(mine.second, nullptr, &sizes);
  EXPECT_EQ(m.error().code(), ErrorCode::kShouldWait);
  EXPECT_TRUE(other.WriteMessage(theirs->first, {}, {}, {}).ok());
}

TEST_F(CoreTest, PeerClosure) {
  auto [a, b] = Pipe();
  ASSERT_TRUE(Write(a, "last words").ok());
  ASSERT_TRUE(core_.Close(a).ok());
  HandleSignalsState s = Signals(b);
  EXPECT_TRUE(s.Satisfies(kSignalPeerClosed));
  EXPECT_TRUE(s.Satisfies(kSignalReadable));
  EXPECT_FALSE(s.CanSatisfy(kSignalWritable));
  Status w = Write(b, "anyone?");
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().code(), ErrorCode::kPeerClosed);
  EXPECT_EQ(ReadString(b), "last words");
  auto r = core_.ReadMessage(b, nullptr, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kPeerClosed);
  EXPECT_FALSE(Signals(b).CanSatisfy(kSignalReadable));
}

TEST_F(CoreTest, FuseJoinsTheFarEnds) {
  auto [a, b] = Pipe();
  auto [c, d] = Pipe();
  ASSERT_TRUE(core_.FuseMessagePipes(b, c).ok());
  EXPECT_EQ(core_.Close(b).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(core_.Close(c).error().code(), ErrorCode::kInvalidArgument);
  ASSERT_TRUE(Write(a, "across the fuse").ok());
  EXPECT_EQ(ReadString(d), "across the fuse");

  EXPECT_EQ(core_.FuseMessagePipes(a, a).error().code(), ErrorCode::kInvalidArgument);
  Status peers = core_.FuseMessagePipes(a, d);
  ASSERT_FALSE(peers.ok());
  EXPECT_EQ(peers.error().code(), ErrorCode::kFailedPrecondition);
  ASSERT_TRUE(Write(a, "still a pipe").ok());
  EXPECT_EQ(ReadString(d), "still a pipe");
}

TEST_F(CoreTest, TrapFiresOnReadableAndAnswersAlreadySatisfied) {
  auto [a, b] = Pipe();
  auto trap = core_.CreateTrap(log.handler());
  ASSERT_TRUE(trap.ok());
  EXPECT_EQ(core_.ArmTrap(*trap, nullptr).error().code(), ErrorCode::kNotFound);
  ASSERT_TRUE(core_.AddTrigger(*trap, b, kSignalReadable, 0, 77).ok());
  ASSERT_TRUE(core_.ArmTrap(*trap, nullptr).ok());
  ASSERT_TRUE(Write(a, "wake").ok());
  auto events = log.Take();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].trigger_context, 77u);
  EXPECT_EQ(events[0].result, TrapEventResult::kOk);
  EXPECT_TRUE(events[0].signals_state.Satisfies(kSignalReadable));

  std::vector<TrapEvent> blocking;
  Status armed = core_.ArmTrap(*trap, &blocking);
  ASSERT_FALSE(armed.ok());
  EXPECT_EQ(armed.error().code(), ErrorCode::kFailedPrecondition);
  ASSERT_EQ(blocking.size(), 1u);
  EXPECT_EQ(blocking[0].trigger_context, 77u);
  EXPECT_EQ(ReadString(b), "wake");
  ASSERT_TRUE(core_.ArmTrap(*trap, nullptr).ok());

  // Closing the watched handle cancels the trigger.
  ASSERT_TRUE(core_.Close(b).ok());
  events = log.Take();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].result, TrapEventResult::kCancelled);
  EXPECT_TRUE(core_.Close(*trap).ok());
}

// Publications that repeat the state every watcher was last sent are
// skipped; a watcher that joins with a state of its own (one that changed
// while nobody watched) must still hear the next change, even back to a
// state that was published before it joined.
TEST_F(CoreTest, TrapJoiningAfterUnwatchedChangesHearsTheNextOne) {
  auto [a, b] = Pipe();
  auto first = core_.CreateTrap([](const TrapEvent&) {});
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(core_.AddTrigger(*first, b, kSignalReadable, 0, 1).ok());
  ASSERT_TRUE(Write(a, "x").ok());
  EXPECT_EQ(ReadString(b), "x");  // last published: not readable
  ASSERT_TRUE(core_.RemoveTrigger(*first, 1).ok());
  ASSERT_TRUE(Write(a, "y").ok());  // readable, published to nobody

  auto second = core_.CreateTrap(log.handler());
  ASSERT_TRUE(second.ok());
  const uint32_t unsatisfied = static_cast<uint32_t>(TriggerCondition::kSignalsUnsatisfied);
  ASSERT_TRUE(core_.AddTrigger(*second, b, kSignalReadable, unsatisfied, 2).ok());
  ASSERT_TRUE(core_.ArmTrap(*second, nullptr).ok());  // readable now: armed
  EXPECT_EQ(ReadString(b), "y");  // back to "not readable"
  auto events = log.Take();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].trigger_context, 2u);
  EXPECT_EQ(events[0].result, TrapEventResult::kOk);
  EXPECT_FALSE(events[0].signals_state.Satisfies(kSignalReadable));
  EXPECT_TRUE(core_.Close(*first).ok());
  EXPECT_TRUE(core_.Close(*second).ok());
}

TEST_F(CoreTest, PeerClosedMakesReadableUnsatisfiable) {
  auto [a, b] = Pipe();
  auto trap = core_.CreateTrap(log.handler());
  ASSERT_TRUE(core_.AddTrigger(*trap, b, kSignalReadable, 0, 1).ok());
  ASSERT_TRUE(core_.ArmTrap(*trap, nullptr).ok());
  ASSERT_TRUE(core_.Close(a).ok());
  auto events = log.Take();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].result, TrapEventResult::kFailedPrecondition);
}

TEST_F(CoreTest, TransferringAWatchedHandleCancelsItsTrigger) {
  auto [a, b] = Pipe();
  auto [c, d] = Pipe();
  auto trap = core_.CreateTrap(log.handler());
  ASSERT_TRUE(core_.AddTrigger(*trap, c, kSignalReadable, 0, 5).ok());
  ASSERT_TRUE(Write(a, "c goes", {c}).ok());
  auto events = log.Take();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].result, TrapEventResult::kCancelled);
  EXPECT_EQ(events[0].trigger_context, 5u);
}

// ---- Quotas ---------------------------------------------------------------

TEST_F(CoreTest, QuotaInvalidArguments) {
  auto [a, b] = Pipe();
  EXPECT_EQ(core_.SetQuota(a, 3, 10).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(core_.SetQuota(a, 0, 0).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(core_.QueryQuota(a, 9).error().code(), ErrorCode::kInvalidArgument);
  auto q = core_.QueryQuota(a, 0);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->limit, kNoQuotaLimit);
}

TEST_F(CoreTest, ReceiveQueueLengthQuota) {
  auto [a, b] = Pipe();
  ASSERT_TRUE(core_.SetQuota(b, static_cast<uint32_t>(QuotaType::kReceiveQueueLength), 2).ok());
  auto trap = core_.CreateTrap(log.handler());
  ASSERT_TRUE(core_.AddTrigger(*trap, b, kSignalQuotaExceeded, 0, 9).ok());
  ASSERT_TRUE(core_.ArmTrap(*trap, nullptr).ok());
  ASSERT_TRUE(Write(a, "1").ok());
  ASSERT_TRUE(Write(a, "2").ok());
  EXPECT_FALSE(Signals(b).Satisfies(kSignalQuotaExceeded)) << "at the limit is not over it";
  EXPECT_TRUE(log.Take().empty());
  ASSERT_TRUE(Write(a, "3").ok());
  EXPECT_TRUE(Signals(b).Satisfies(kSignalQuotaExceeded));
  auto events = log.Take();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].trigger_context, 9u);
  EXPECT_TRUE(events[0].signals_state.Satisfies(kSignalQuotaExceeded));
  auto q = core_.QueryQuota(b, 0);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->limit, 2u);
  EXPECT_EQ(q->usage, 3u);
  EXPECT_EQ(ReadString(b), "1");
  EXPECT_FALSE(Signals(b).Satisfies(kSignalQuotaExceeded));
}

TEST_F(CoreTest, ReceiveQueueMemoryQuota) {
  auto [a, b] = Pipe();
  // Queue bytes count whole messages: without handles, exactly the payload.
  const uint64_t one = 10;
  ASSERT_TRUE(core_.SetQuota(b, static_cast<uint32_t>(QuotaType::kReceiveQueueMemorySize), 2 * one)
                  .ok());
  ASSERT_TRUE(Write(a, "0123456789").ok());
  ASSERT_TRUE(Write(a, "0123456789").ok());
  EXPECT_FALSE(Signals(b).Satisfies(kSignalQuotaExceeded));
  ASSERT_TRUE(Write(a, "x").ok());
  EXPECT_TRUE(Signals(b).Satisfies(kSignalQuotaExceeded));
  auto q = core_.QueryQuota(b, 1);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->usage, 2 * one + 1);
}

TEST_F(CoreTest, UnreadMessageCountQuotaGivesBackpressure) {
  auto [a, b] = Pipe();
  const uint32_t unread = static_cast<uint32_t>(QuotaType::kUnreadMessageCount);
  ASSERT_TRUE(core_.SetQuota(a, unread, 4).ok());
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(Write(a, "m").ok());
  EXPECT_TRUE(Signals(a).Satisfies(kSignalWritable));
  EXPECT_FALSE(Signals(a).Satisfies(kSignalQuotaExceeded));
  ASSERT_TRUE(Write(a, "m").ok());
  EXPECT_TRUE(Signals(a).Satisfies(kSignalQuotaExceeded));
  EXPECT_FALSE(Signals(a).Satisfies(kSignalWritable));
  // The reader drains; its acks (every (4+1)/2 = 2 messages) relieve the writer.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(ReadString(b), "m");
  auto q = core_.QueryQuota(a, unread);
  ASSERT_TRUE(q.ok());
  EXPECT_LE(q->usage, 1u);
  EXPECT_FALSE(Signals(a).Satisfies(kSignalQuotaExceeded));
  EXPECT_TRUE(Signals(a).Satisfies(kSignalWritable));
}

// Two nodes in one process; events between them are queued and pumped, as a
// transport would.
class TwoNodeTest : public ::testing::Test {
 protected:
  struct Link {
    Core* to = nullptr;
    ports::NodeName from;
    std::deque<std::unique_ptr<ports::Event>> queue;
  };
  TwoNodeTest()
      : x_([this](const ports::NodeName&, std::unique_ptr<ports::Event> e) {
          x_to_y_.queue.push_back(std::move(e));
        }),
        y_([this](const ports::NodeName&, std::unique_ptr<ports::Event> e) {
          y_to_x_.queue.push_back(std::move(e));
        }) {
    x_to_y_.to = &y_;
    x_to_y_.from = x_.node().name();
    y_to_x_.to = &x_;
    y_to_x_.from = y_.node().name();
  }
  void Pump() {
    for (int rounds = 0; rounds < 10000; ++rounds) {
      Link* link = !x_to_y_.queue.empty() ? &x_to_y_ : !y_to_x_.queue.empty() ? &y_to_x_ : nullptr;
      if (link == nullptr) return;
      auto e = std::move(link->queue.front());
      link->queue.pop_front();
      ASSERT_TRUE(link->to->node().AcceptEvent(link->from, std::move(e)).ok());
    }
    FAIL() << "events never settle";
  }
  // A pipe with one end on x and one on y.
  std::pair<Handle, Handle> CrossPipe() {
    auto px = x_.CreateMessagePipe();
    auto py = y_.CreateMessagePipe();
    EXPECT_TRUE(px.ok() && py.ok());
    auto remote = y_.ReleaseForRemoteMerge(py->second);
    EXPECT_TRUE(remote.ok());
    ports::PortRef offered;  // MRG-3: only x may merge with it
    EXPECT_TRUE(y_.node().GetPort(*remote, &offered).ok());
    EXPECT_TRUE(y_.node().OfferForMerge(offered, x_.node().name()).ok());
    EXPECT_TRUE(x_.MergeWithRemotePort(px->second, y_.node().name(), *remote).ok());
    Pump();
    return {px->first, py->first};
  }

  Link x_to_y_, y_to_x_;
  Core x_, y_;
};

TEST_F(TwoNodeTest, ReadAcksAcrossNodesRelieveTheWriter) {
  auto [wx, ry] = CrossPipe();
  const uint32_t unread = static_cast<uint32_t>(QuotaType::kUnreadMessageCount);
  ASSERT_TRUE(x_.SetQuota(wx, unread, 3).ok());
  Pump();
  std::vector<uint8_t> m = {1, 2, 3};
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(x_.WriteMessage(wx, m, {}, {}).ok());
  Pump();
  auto sx = x_.QuerySignals(wx);
  ASSERT_TRUE(sx.ok());
  EXPECT_TRUE(sx->Satisfies(kSignalQuotaExceeded));
  EXPECT_FALSE(sx->Satisfies(kSignalWritable));
  // Nothing comes back until y reads.
  for (int i = 0; i < 4; ++i) {
    auto r = y_.ReadMessage(ry, nullptr, nullptr);
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    EXPECT_EQ(r->payload, m);
  }
  Pump();
  sx = x_.QuerySignals(wx);
  ASSERT_TRUE(sx.ok());
  EXPECT_FALSE(sx->Satisfies(kSignalQuotaExceeded));
  EXPECT_TRUE(sx->Satisfies(kSignalWritable));
  auto q = x_.QueryQuota(wx, unread);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->usage, 0u);
}

// ---- Hostile messages (R10) -------------------------------------------------

class HostileMessageTest : public CoreTest {
 protected:
  // Sends `payload` (+ports, +fds) from a to b, reads at b, expects rejection
  // with `code` and a reason containing `needle`; checks the pipe is cut.
  void ExpectRejected(std::vector<uint8_t> payload, std::vector<ports::PortName> ports,
                      std::vector<UniqueFd> fds, ErrorCode code, std::string_view needle) {
    auto [a, b] = Pipe();
    ASSERT_TRUE(SendRaw(a, std::move(payload), std::move(ports), std::move(fds)).ok());
    auto r = core_.ReadMessage(b, nullptr, nullptr);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), code) << r.error().ToString();
    EXPECT_NE(r.error().ToString().find(needle), std::string::npos) << r.error().ToString();
    EXPECT_EQ(r.error().field().rfind("message", 0), 0u) << r.error().field();
    // Disconnected: this end only reports PEER_CLOSED, the writer sees PEER_CLOSED.
    EXPECT_EQ(Signals(b), (HandleSignalsState{kSignalPeerClosed, kSignalPeerClosed}));
    EXPECT_TRUE(Signals(a).Satisfies(kSignalPeerClosed));
    EXPECT_EQ(core_.ReadMessage(b, nullptr, nullptr).error().code(), ErrorCode::kPeerClosed);
    ASSERT_TRUE(core_.Close(a).ok());
    ASSERT_TRUE(core_.Close(b).ok());
  }
  // A valid message with one endpoint, as bytes.
  std::vector<uint8_t> OneEndpoint() {
    std::vector<uint8_t> none;
    return EncodeSystemMessage(none, 1);
  }
  // A fresh receiving port that no handle owns.
  ports::PortName FreshPort() {
    ports::PortRef x, y;
    EXPECT_TRUE(core_.node().CreatePortPair(&x, &y).ok());
    spare_.push_back(y);
    return x.name();
  }
  void TearDown() override {
    for (auto& p : spare_) (void)core_.node().ClosePort(p);
  }
  std::vector<ports::PortRef> spare_;
};

TEST_F(HostileMessageTest, TooShortForTheHeader) {
  ExpectRejected({1, 2, 3}, {FreshPort()}, {}, ErrorCode::kMalformed,
                 "shorter than the 8-byte header");
}

// Without ports there is no handle table: bytes that look like one are the
// user's, delivered untouched.
TEST_F(HostileMessageTest, NoPortsMeansNoTable) {
  auto [a, b] = Pipe();
  std::vector<uint8_t> looks_like_a_table = OneEndpoint();
  ASSERT_TRUE(SendRaw(a, looks_like_a_table, {}, {}).ok());
  auto r = core_.ReadMessage(b, nullptr, nullptr);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->payload, looks_like_a_table);
  EXPECT_TRUE(r->handles.empty());
  ASSERT_TRUE(core_.Close(a).ok());
  ASSERT_TRUE(core_.Close(b).ok());
}

TEST_F(HostileMessageTest, BadMagic) {
  auto p = OneEndpoint();
  p[0] ^= 0xff;
  ExpectRejected(p, {FreshPort()}, {}, ErrorCode::kMalformed, "SystemHeader.magic");
}

TEST_F(HostileMessageTest, TooManyHandles) {
  auto p = OneEndpoint();
  p[4] = 0xff;  // num_handles = 255
  ExpectRejected(p, {FreshPort()}, {}, ErrorCode::kLimitExceeded,
                 "exceeds MAX_MESSAGE_HANDLE_COUNT 64");
}

TEST_F(HostileMessageTest, HandleTablePastTheEnd) {
  auto p = OneEndpoint();
  p[4] = 3;  // 3 headers need 48 bytes after the header; 24 remain
  ExpectRejected(p, {FreshPort()}, {}, ErrorCode::kMalformed, "does not fit");
}

TEST_F(HostileMessageTest, EndpointWithoutItsPort) {
  // Two endpoint records, one port: the second record has none left. (With
  // no port at all there is no table, see NoPortsMeansNoTable.)
  std::vector<uint8_t> none;
  ExpectRejected(EncodeSystemMessage(none, 2), {FreshPort()}, {}, ErrorCode::kMalformed,
                 "HandleHeader[1].num_ports: 1 ports exceed the 1");
}

TEST_F(HostileMessageTest, PortNotAccountedFor) {
  auto p = OneEndpoint();
  p[4] = 0;  // num_handles = 0: the endpoint's records become user bytes
  ExpectRejected(p, {FreshPort()}, {}, ErrorCode::kMalformed, "handle table accounts for 0");
}

TEST_F(HostileMessageTest, EndpointWithADescriptorAndNoFdLeaks) {
  const int before = CountOpenFds();
  auto p = OneEndpoint();
  p[kSystemHeaderSize + 12] = 1;  // num_fds = 1
  std::vector<UniqueFd> fds;
  fds.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  ExpectRejected(p, {FreshPort()}, std::move(fds), ErrorCode::kMalformed,
                 "pipe_endpoint.num_fds: 1");
  EXPECT_EQ(CountOpenFds(), before);
}

TEST_F(HostileMessageTest, EndpointWithWrongBodySize) {
  std::vector<uint8_t> p = OneEndpoint();
  p[kSystemHeaderSize + 4] = 7;  // num_bytes = 7
  ExpectRejected(p, {FreshPort()}, {}, ErrorCode::kMalformed, "must be exactly 8");
}

TEST_F(HostileMessageTest, UnknownHandleType) {
  std::vector<uint8_t> p = OneEndpoint();
  p[kSystemHeaderSize] = 9;
  ExpectRejected(p, {FreshPort()}, {}, ErrorCode::kMalformed, "is not a message pipe");
}

TEST_F(HostileMessageTest, ReservedFlagsSet) {
  std::vector<uint8_t> p = OneEndpoint();
  p[kSystemHeaderSize + kHandleHeaderSize + 4] = 1;
  ExpectRejected(p, {FreshPort()}, {}, ErrorCode::kMalformed, "reserved bits");
}

// Port existence, state and ownership (the rest of R10) are tested on
// DeserializeEndpoint directly in endpoint_serialization_test.cc: through a
// real node, ports itself never delivers such names.

}  // namespace
}  // namespace moat::system
