// TRP-12 above the transport: a descriptor that arrived in a message may be a
// peer's, and its last close() can block for as long as the peer likes (a
// lingering TCP socket). However a message dies unread (its pipe closed, the
// Core destroyed, the message rejected as hostile), the embedder's call must
// return at once; the descriptor is closed on the closer thread.
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "core/deferred_close.h"
#include "core/system/core.h"
#include "core/testing/fd_count.h"
#include "core/testing/lingering_socket.h"

namespace moat::system {
namespace {

using moat::testing::LingeringSocket;
using moat::testing::RunWithin;

class PeerDescriptorCloseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WaitForDeferredCloses();
    baseline_ = moat::testing::OpenFdCount();
  }
  // The closer thread is not stuck either (it disarms lingering first), and
  // nothing leaks.
  void Finish(LingeringSocket* weapon) {
    RunWithin("the closer thread", weapon, [] { WaitForDeferredCloses(); });
    weapon->receiver.reset();
    WaitForDeferredCloses();
    EXPECT_EQ(moat::testing::OpenFdCount(), baseline_);
  }
  std::vector<UniqueFd> Attach(LingeringSocket& weapon) {
    std::vector<UniqueFd> fds;
    fds.push_back(std::move(weapon.weapon));
    return fds;
  }
  size_t baseline_ = 0;
};

const std::vector<uint8_t> kPayload = {'f', 'd'};

TEST_F(PeerDescriptorCloseTest, ClosingAPipeWithAnUnreadLingeringDescriptorReturnsAtOnce) {
  LingeringSocket weapon = LingeringSocket::Make();
  {
    Core core;
    auto pipe = core.CreateMessagePipe();
    ASSERT_TRUE(pipe.ok());
    ASSERT_TRUE(core.WriteMessage(pipe->first, kPayload, {}, Attach(weapon)).ok());
    const double s = RunWithin("Core::Close of the reading end", &weapon, [&] {
      EXPECT_TRUE(core.Close(pipe->second).ok());
    });
    std::printf("[measure] Close with an unread lingering descriptor: %.3f s\n", s);
    EXPECT_TRUE(core.Close(pipe->first).ok());
  }
  Finish(&weapon);
}

TEST_F(PeerDescriptorCloseTest, DestroyingACoreWithAnUnreadLingeringDescriptorReturnsAtOnce) {
  LingeringSocket weapon = LingeringSocket::Make();
  auto core = std::make_unique<Core>();
  auto pipe = core->CreateMessagePipe();
  ASSERT_TRUE(pipe.ok());
  ASSERT_TRUE(core->WriteMessage(pipe->first, kPayload, {}, Attach(weapon)).ok());
  const double s = RunWithin("~Core", &weapon, [&] { core.reset(); });
  std::printf("[measure] ~Core with an unread lingering descriptor: %.3f s\n", s);
  Finish(&weapon);
}

// What a hostile peer can put on the wire: a UserMessage with a port whose
// system header is too short, carrying the weapon. Rejecting it (at read)
// drops the descriptor.
TEST_F(PeerDescriptorCloseTest, RejectingAHostileMessageWithALingeringDescriptorReturnsAtOnce) {
  LingeringSocket weapon = LingeringSocket::Make();
  {
    Core core;
    auto pipe = core.CreateMessagePipe();
    ASSERT_TRUE(pipe.ok());
    auto ep = core.GetEndpoint(pipe->first);
    ASSERT_TRUE(ep.ok());
    ports::PortRef spare, attached;
    ASSERT_TRUE(core.node().CreatePortPair(&attached, &spare).ok());
    auto m = std::make_unique<ports::UserMessage>();
    m->payload = {1, 2, 3};
    m->ports = {attached.name()};
    m->fds = Attach(weapon);
    bool rejected = false;
    const double s = RunWithin("delivering and reading a hostile message", &weapon, [&] {
      (void)core.node().SendUserMessage((*ep)->port(), std::move(m));
      auto read = core.ReadMessage(pipe->second, nullptr, nullptr);
      rejected = !read.ok() && read.error().code() == ErrorCode::kMalformed;
    });
    EXPECT_TRUE(rejected);
    std::printf("[measure] rejecting a hostile message with a lingering descriptor: %.3f s\n", s);
    EXPECT_TRUE(core.Close(pipe->first).ok());
    EXPECT_TRUE(core.Close(pipe->second).ok());
    (void)core.node().ClosePort(spare);
  }
  Finish(&weapon);
}

}  // namespace
}  // namespace moat::system
