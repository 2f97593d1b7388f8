#include "core/node/node_channel.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "limits/limits.h"

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
  for (uint8_t bad : {uint8_t{0}, uint8_t{6}, uint8_t{255}}) {
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

NodeChannelHeader DisconnectHeader() {
  NodeChannelHeader h;
  h.type = NodeChannelMessageType::kDisconnect;
  h.sender = NodeName{1, 2};
  h.target = NodeName{3, 4};
  return h;
}

std::string BodyOf(const std::vector<uint8_t>& wire) {
  auto m = DecodeNodeChannelMessage(wire, 0);
  EXPECT_TRUE(m.ok()) << m.error().ToString();
  if (!m.ok()) return "<error>";
  EXPECT_EQ(m->header.type, NodeChannelMessageType::kDisconnect);
  return std::string(m->body.begin(), m->body.end());
}

TEST(NodeChannelTest, DisconnectCarriesItsReason) {
  EXPECT_EQ(BodyOf(EncodeDisconnectMessage(NodeName{1, 2}, NodeName{3, 4}, "bad message: \u00e9")),
            "bad message: \u00e9");
}

// Any text can be given (an embedder's reason is arbitrary bytes): what goes
// out is always a reason the peer accepts.
TEST(NodeChannelTest, DisconnectReasonIsMadeFit) {
  const NodeName a{1, 2}, b{3, 4};
  EXPECT_EQ(BodyOf(EncodeDisconnectMessage(a, b, "")), "no reason given");
  EXPECT_EQ(BodyOf(EncodeDisconnectMessage(a, b, std::string("x\xff\xc3y\xed\xa0\x80z"))),
            "x??y???z");
  // Cut at the limit, never inside a character: 1023 'a' then a 2-byte one.
  std::string long_reason(limits::MAX_DISCONNECT_REASON_SIZE - 1, 'a');
  long_reason += "\u00e9tc";
  const std::string cut = BodyOf(EncodeDisconnectMessage(a, b, long_reason));
  EXPECT_EQ(cut, std::string(limits::MAX_DISCONNECT_REASON_SIZE - 1, 'a'));
  EXPECT_EQ(BodyOf(EncodeDisconnectMessage(a, b, std::string(5000, 'q'))).size(),
            limits::MAX_DISCONNECT_REASON_SIZE);
}

TEST(NodeChannelTest, RejectsABadDisconnect) {
  auto expect = [](std::vector<uint8_t> wire, size_t fds, ErrorCode code, const char* needle) {
    auto m = DecodeNodeChannelMessage(wire, fds);
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.error().code(), code) << m.error().ToString();
    EXPECT_NE(m.error().ToString().find(needle), std::string::npos) << m.error().ToString();
  };
  const std::vector<uint8_t> good = EncodeDisconnectMessage(NodeName{1, 2}, NodeName{3, 4}, "why");
  // Empty reason: header only, body_size 0.
  std::vector<uint8_t> empty(good.begin(), good.begin() + kNodeChannelHeaderSize);
  std::memset(&empty[kNodeChannelHeaderSize - 4], 0, 4);
  expect(empty, 0, ErrorCode::kLimitExceeded, "disconnect reason of 0 bytes");
  // One byte over the limit.
  std::vector<uint8_t> big(good.begin(), good.begin() + kNodeChannelHeaderSize);
  const uint32_t over = limits::MAX_DISCONNECT_REASON_SIZE + 1;
  std::memcpy(&big[kNodeChannelHeaderSize - 4], &over, 4);
  big.resize(kNodeChannelHeaderSize + over, 'a');
  expect(big, 0, ErrorCode::kLimitExceeded, "MAX_DISCONNECT_REASON_SIZE 1024");
  // Not UTF-8.
  std::vector<uint8_t> bad = good;
  bad[kNodeChannelHeaderSize + 1] = 0xff;
  expect(bad, 0, ErrorCode::kMalformed, "not UTF-8 at byte 1");
  // Descriptors riding it.
  std::vector<uint8_t> with_fd = good;
  with_fd[kNodeChannelHeaderSize - 8] = 1;  // fd_count
  expect(with_fd, 1, ErrorCode::kMalformed, "disconnect message with 1 descriptors");
  // A subject.
  std::vector<uint8_t> subject = good;
  subject[1 + 4 * 8] = 7;  // subject.hi
  expect(subject, 0, ErrorCode::kMalformed, "non-zero subject");
  // The smallest legal one (exactly the limit) passes.
  std::vector<uint8_t> at_limit(good.begin(), good.begin() + kNodeChannelHeaderSize);
  const uint32_t limit = limits::MAX_DISCONNECT_REASON_SIZE;
  std::memcpy(&at_limit[kNodeChannelHeaderSize - 4], &limit, 4);
  at_limit.resize(kNodeChannelHeaderSize + limit, 'a');
  EXPECT_TRUE(DecodeNodeChannelMessage(at_limit, 0).ok());
}

TEST(NodeChannelDeathTest, EncodingAnInvalidMessageAborts) {
  NodeChannelHeader h = EventHeader();
  h.target = h.sender;
  EXPECT_DEATH(EncodeNodeChannelMessage(h, kBody), "sender equals target");
  EXPECT_DEATH(EncodeNodeChannelMessage(EventHeader(), {}), "empty body");
  const uint8_t not_utf8[] = {0xff};
  EXPECT_DEATH(EncodeNodeChannelMessage(DisconnectHeader(), not_utf8), "not UTF-8");
}

}  // namespace
}  // namespace moat::node
