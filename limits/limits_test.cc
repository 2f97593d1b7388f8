#include "limits/limits.h"

#include <gtest/gtest.h>

namespace moat::limits {
namespace {

TEST(LimitsTest, ValuesAreThoseTheThreatModelAssumes) {
  EXPECT_EQ(MAX_MESSAGE_PAYLOAD_SIZE, 64u * 1024 * 1024);
  EXPECT_EQ(MAX_MESSAGE_FD_COUNT, 128u);
  EXPECT_EQ(MAX_DECODED_SIZE, 64u * 1024 * 1024);
  EXPECT_EQ(MAX_DECODED_MEMORY, 128u * 1024 * 1024);
  EXPECT_EQ(MAX_UNPROCESSED_BYTES, 128u * 1024 * 1024);
  EXPECT_EQ(MAX_UNPROCESSED_FDS, 512u);
  EXPECT_EQ(SCM_MAX_FD, 253u);
  EXPECT_EQ(MAX_DEFERRED_CLOSES, 4096u);
  EXPECT_EQ(MAX_SHARED_MEMORY_REGION_SIZE, 1024u * 1024 * 1024);
}

TEST(LimitsTest, TightenedOnlyTightens) {
  ConnectionLimits loose;
  loose.max_message_payload_size = 0xFFFFFFFF;
  loose.max_message_fd_count = 100000;
  loose.max_decoded_size = 0xFFFFFFFF;
  loose.max_decoded_memory = 0xFFFFFFFF;
  loose.max_unprocessed_bytes = ~size_t{0};
  loose.max_unprocessed_fds = 100000;
  ConnectionLimits out = ConnectionLimits::Defaults().Tightened(loose);
  EXPECT_EQ(out.max_message_payload_size, MAX_MESSAGE_PAYLOAD_SIZE);
  EXPECT_EQ(out.max_message_fd_count, MAX_MESSAGE_FD_COUNT);
  EXPECT_EQ(out.max_decoded_size, MAX_DECODED_SIZE);
  EXPECT_EQ(out.max_decoded_memory, MAX_DECODED_MEMORY);
  EXPECT_EQ(out.max_unprocessed_bytes, MAX_UNPROCESSED_BYTES);
  EXPECT_EQ(out.max_unprocessed_fds, MAX_UNPROCESSED_FDS);
}

TEST(LimitsTest, TightenedAppliesSmallerValuesAndIsMonotone) {
  ConnectionLimits tight;
  tight.max_message_payload_size = 1024;
  tight.max_message_fd_count = 2;
  tight.max_decoded_size = 512;
  tight.max_decoded_memory = 2048;
  tight.max_unprocessed_bytes = 4096;
  tight.max_unprocessed_fds = 4;
  ConnectionLimits once = ConnectionLimits::Defaults().Tightened(tight);
  EXPECT_EQ(once.max_message_payload_size, 1024u);
  EXPECT_EQ(once.max_message_fd_count, 2u);
  EXPECT_EQ(once.max_decoded_size, 512u);
  EXPECT_EQ(once.max_decoded_memory, 2048u);
  EXPECT_EQ(once.max_unprocessed_bytes, 4096u);
  EXPECT_EQ(once.max_unprocessed_fds, 4u);
  // A second override cannot loosen what the first tightened.
  ConnectionLimits again = once.Tightened(ConnectionLimits::Defaults());
  EXPECT_EQ(again.max_message_payload_size, 1024u);
  EXPECT_EQ(again.max_unprocessed_fds, 4u);
}

}  // namespace
}  // namespace moat::limits
