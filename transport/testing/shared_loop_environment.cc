// Links into a copy of a transport test suite so that every Transport it
// creates without options.io_loop runs on one shared IoLoop instead of its
// own IO thread: the suite's assertions then hold for the shared loop too.
#include <gtest/gtest.h>

#include <cstdio>

#include "core/check.h"
#include "transport/io_loop.h"
#include "transport/transport.h"

namespace moat::transport {
namespace {

class SharedLoopEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    // A death test's child must not be a bare fork() of a process whose loop
    // thread may hold the loop's lock (the child would wait for it forever):
    // re-execute the binary instead, which sets up its own loop.
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    auto loop = IoLoop::Create();
    MOAT_ASSERT(loop.ok(), "IoLoop::Create failed");
    loop_ = *loop;
    Transport::SetDefaultIoLoopForTesting(loop_);
  }
  // Drops the loop: ~IoLoop asserts that no transport is left registered.
  void TearDown() override {
    Transport::SetDefaultIoLoopForTesting(nullptr);
    const IoLoop::Stats stats = loop_->stats();
    std::printf("shared IoLoop: %llu turns, %llu stopped at the read budget\n",
                static_cast<unsigned long long>(stats.turns),
                static_cast<unsigned long long>(stats.budget_exhausted));
    // The suite really ran on the loop.
    EXPECT_GT(stats.turns, 0u);
    loop_.reset();
  }

 private:
  std::shared_ptr<IoLoop> loop_;
};

[[maybe_unused]] ::testing::Environment* const kEnvironment =
    ::testing::AddGlobalTestEnvironment(new SharedLoopEnvironment);

}  // namespace
}  // namespace moat::transport
