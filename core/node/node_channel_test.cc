#include "core/node/node_channel.h"

#include <gtest/gtest.h>

#include <cstring>

namespace moat::node {
namespace {

using ports::NodeName;

NodeChannelHeader EventHeader(uint32_t fds = 0) {
  NodeChannelHeader h;
  h.type = NodeChannelMessageType::kEvent;
  h.sender = NodeName{1, 2};
  h.target = NodeName{3, 4};
  h.fd_count = fds;
  return h;
}

NodeChannelHeader HelloHeader() {
  NodeChannelHeader h;
  h.type = NodeChannelMessageType::kHello;
  h.sender = NodeName{1, 2};
  h.target = NodeName{3, 4};
  h.subject_hi = 5;
  h.subject_lo = 6;
  return h;
}

const std::vector<uint8_t> kBody = {9, 8, 7};

TEST(NodeChannelTest, EventRoundTrips) {
  std::vector<uint8_t> wire = EncodeNodeChannelMessage(EventHeader(2), kBody);
  ASSERT_EQ(wire.size(), kNodeChannelHeaderSize + kBody.size());
  auto m = DecodeNodeChannelMessage(wire, 2);
  ASSERT_TRUE(m.ok()) << m.error().ToString();
  EXPECT_EQ(m->header.type, NodeChannelMessageType::kEvent);
  EXPECT_EQ(m->header.sender, (NodeName{1, 2}));
  EXPECT_EQ(m->header.target, (NodeName{3, 4}));
  EXPECT_EQ(m->header.fd_count, 2u);
  EXPECT_EQ(std::vector<uint8_t>(m->body.begin(), m->body.end()), kBody);
  // The body is a view into the payload, not a copy.
  EXPECT_EQ(m->body.data(), wire.data() + kNodeChannelHeaderSize);
}

TEST(NodeChannelTest, HelloRoundTrips) {
  std::vector<uint8_t> wire = EncodeNodeChannelMessage(HelloHeader());
  auto m = DecodeNodeChannelMessage(wire, 0);
  ASSERT_TRUE(m.ok()) << m.error().ToString();
  EXPECT_EQ(m->header.subject_port(), (ports::PortName{5, 6}));
  EXPECT_TRUE(m->body.empty());
}

TEST(NodeChannelTest, RejectsUnknownType) {
  std::vector<uint8_t> wire = EncodeNodeChannelMessage(EventHeader(), kBody);
  for (uint8_t bad : {uint8_t{0}, uint8_t{5}, uint8_t{255}}) {
    wire[0] = bad;
    auto m = DecodeNodeChannelMessage(wire, 0);
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.error().code(), ErrorCode::kMalformed);
    EXPECT_NE(m.error().ToString().find("not a declared NodeChannelMessageType"),
              std::string::npos)
        << m.error().ToString();
  }
}

TEST(NodeChannelTest, RejectsTrailingBytes) {
  std::vector<uint8_t> wire = EncodeNodeChannelMessage(EventHeader(), kBody);
  wire.push_back(0);
  auto m = DecodeNodeChannelMessage(wire, 0);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().code(), ErrorCode::kMalformed);
  EXPECT_NE(m.error().ToString().find("1 trailing bytes"), std::string::npos)
      << m.error().ToString();
}

TEST(NodeChannelTest, RejectsEveryTruncation) {
  std::vector<uint8_t> wire = EncodeNodeChannelMessage(EventHeader(), kBody);
  for (size_t n = 0; n < wire.size(); ++n) {
    auto m = DecodeNodeChannelMessage(std::span(wire).first(n), 0);
    ASSERT_FALSE(m.ok()) << n;
    // Inside the header: the input ends inside a field. Inside the body: a
    // complete message whose body_size claims more than it holds (NCH-5).
    EXPECT_EQ(m.error().code(),
              n < kNodeChannelHeaderSize ? ErrorCode::kIncomplete : ErrorCode::kMalformed)
        << n << ": " << m.error().ToString();
    EXPECT_NE(m.error().field().find("NodeChannelMessage."), std::string::npos)
        << m.error().ToString();
  }
}

TEST(NodeChannelTest, RejectsBodySizeBeyondPayload) {
  std::vector<uint8_t> wire = EncodeNodeChannelMessage(EventHeader(), kBody);
  const uint32_t huge = 0xffffffff;
  std::memcpy(&wire[kNodeChannelHeaderSize - 4], &huge, 4);
  auto m = DecodeNodeChannelMessage(wire, 0);
  ASSERT_FALSE(m.ok());
  // Before: kIncomplete (as if more bytes could follow a complete message).
  EXPECT_EQ(m.error().code(), ErrorCode::kMalformed);
  EXPECT_NE(m.error().ToString().find("body_size"), std::string::npos) << m.error().ToString();
}

TEST(NodeChannelTest, RejectsFdCountMismatch) {
  std::vector<uint8_t> wire = EncodeNodeChannelMessage(EventHeader(1), kBody);
  for (size_t fds : {size_t{0}, size_t{2}}) {
    auto m = DecodeNodeChannelMessage(wire, fds);
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.error().ToString().find("fd_count 1 but the message carries"),
              std::string::npos)
        << m.error().ToString();
  }
}

TEST(NodeChannelTest, RejectsInvalidNames) {
  NodeChannelHeader h = EventHeader();
  std::vector<uint8_t> wire = EncodeNodeChannelMessage(h, kBody);
  std::memset(&wire[1], 0, 16);  // sender = zero
  auto m = DecodeNodeChannelMessage(wire, 0);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().ToString().find("sender node name is invalid"), std::string::npos);

  wire = EncodeNodeChannelMessage(h, kBody);
  std::memcpy(&wire[17], &wire[1], 16);  // target = sender
  m = DecodeNodeChannelMessage(wire, 0);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().ToString().find("sender equals target"), std::string::npos);
}

TEST(NodeChannelTest, RejectsFieldsTheTypeDoesNotUse) {
  // An event with a subject.
  std::vector<uint8_t> wire = EncodeNodeChannelMessage(EventHeader(), kBody);
  wire[33] = 1;
  auto m = DecodeNodeChannelMessage(wire, 0);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().ToString().find("subject must be zero"), std::string::npos);

  // A hello with a body.
  std::vector<uint8_t> hello = EncodeNodeChannelMessage(HelloHeader());
  hello[kNodeChannelHeaderSize - 4] = 1;
  hello.push_back(0);
  m = DecodeNodeChannelMessage(hello, 0);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().ToString().find("hello message with a 1-byte body"), std::string::npos)
      << m.error().ToString();

  // A hello with descriptors.
  hello = EncodeNodeChannelMessage(HelloHeader());
  const uint32_t one = 1;
  std::memcpy(&hello[kNodeChannelHeaderSize - 8], &one, 4);
  m = DecodeNodeChannelMessage(hello, 1);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().ToString().find("must have none"), std::string::npos);

  // A hello without a subject; a hello reply with one.
  hello = EncodeNodeChannelMessage(HelloHeader());
  std::memset(&hello[33], 0, 16);
  m = DecodeNodeChannelMessage(hello, 0);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().ToString().find("zero subject"), std::string::npos);
  hello = EncodeNodeChannelMessage(HelloHeader());
  hello[0] = static_cast<uint8_t>(NodeChannelMessageType::kHelloReply);
  m = DecodeNodeChannelMessage(hello, 0);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().ToString().find("non-zero subject"), std::string::npos);

  // An event without a body.
  wire = EncodeNodeChannelMessage(EventHeader(), kBody);
  wire.resize(kNodeChannelHeaderSize);
  std::memset(&wire[kNodeChannelHeaderSize - 4], 0, 4);
  m = DecodeNodeChannelMessage(wire, 0);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().ToString().find("empty body"), std::string::npos);
}

TEST(NodeChannelDeathTest, EncodingAnInvalidMessageAborts) {
  NodeChannelHeader h = EventHeader();
  h.target = h.sender;
  EXPECT_DEATH(EncodeNodeChannelMessage(h, kBody), "sender equals target");
  EXPECT_DEATH(EncodeNodeChannelMessage(EventHeader(), {}), "empty body");
}

}  // namespace
}  // namespace moat::node
