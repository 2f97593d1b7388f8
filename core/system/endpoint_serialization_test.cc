#include "core/system/endpoint_serialization.h"

#include <gtest/gtest.h>

#include <set>

namespace moat::system {
namespace {

class NullDelegate : public ports::NodeDelegate {
 public:
  void ForwardEvent(const ports::NodeName&, std::unique_ptr<ports::Event>) override {}
  void PortStatusChanged(const ports::PortRef&) override {}
};

class EndpointSerializationTest : public ::testing::Test {
 protected:
  EndpointSerializationTest() : node_(ports::NodeName::Random(), &delegate_) {}
  ~EndpointSerializationTest() override {
    for (auto& p : open_) (void)node_.ClosePort(p);
  }
  ports::PortRef NewPort() {
    ports::PortRef a, b;
    EXPECT_TRUE(node_.CreatePortPair(&a, &b).ok());
    open_.push_back(a);
    open_.push_back(b);
    return a;
  }
  Result<ports::PortRef> Deserialize(const HandleRecord& r) {
    return DeserializeEndpoint(r, node_, [this](const ports::PortName& n) {
      return bound_.count(n) != 0;
    });
  }
  HandleRecord Valid(const std::vector<uint8_t>& body, const ports::PortName* port) {
    HandleRecord r;
    r.type = static_cast<uint32_t>(HandleType::kMessagePipe);
    r.bytes = body;
    r.ports = std::span<const ports::PortName>(port, 1);
    r.num_fds = 0;
    return r;
  }
  std::vector<uint8_t> Body() {
    std::vector<uint8_t> none;
    auto m = EncodeSystemMessage(none, 1);
    return std::vector<uint8_t>(m.begin() + kSystemHeaderSize + kHandleHeaderSize, m.end());
  }

  NullDelegate delegate_;
  ports::Node node_;
  std::vector<ports::PortRef> open_;
  std::set<ports::PortName> bound_;
};

TEST_F(EndpointSerializationTest, RoundTrip) {
  const std::vector<uint8_t> user = {'h', 'i'};
  auto p0 = NewPort();
  auto p1 = NewPort();
  std::vector<ports::PortName> names = {p0.name(), p1.name()};
  auto payload = EncodeSystemMessage(user, 2);
  EXPECT_EQ(payload.size(), kSystemHeaderSize + 2 * (kHandleHeaderSize + kSerializedEndpointSize) + 2);
  auto parsed = DecodeSystemMessage(payload, names, 3);
  ASSERT_TRUE(parsed.ok()) << parsed.error().ToString();
  ASSERT_EQ(parsed->handles.size(), 2u);
  EXPECT_EQ(std::vector<uint8_t>(parsed->user_payload.begin(), parsed->user_payload.end()), user);
  EXPECT_EQ(parsed->first_user_fd, 0u);
  for (size_t i = 0; i < 2; ++i) {
    auto port = Deserialize(parsed->handles[i]);
    ASSERT_TRUE(port.ok()) << port.error().ToString();
    EXPECT_EQ(port->name(), names[i]);
  }
}

TEST_F(EndpointSerializationTest, DuplicatePortInOneMessage) {
  auto p = NewPort();
  std::vector<ports::PortName> names = {p.name(), p.name()};
  std::vector<uint8_t> none;
  auto r = DecodeSystemMessage(EncodeSystemMessage(none, 2), names, 0);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().reason(), "message names the same port twice");
}

TEST_F(EndpointSerializationTest, ExactlyOnePortNoFdsExactSize) {
  auto body = Body();
  auto p = NewPort();
  ports::PortName two[2] = {p.name(), NewPort().name()};
  HandleRecord r = Valid(body, two);
  r.ports = std::span<const ports::PortName>(two, 2);
  EXPECT_EQ(Deserialize(r).error().field(), "");
  EXPECT_NE(Deserialize(r).error().reason().find("num_ports: 2"), std::string::npos);
  r.ports = {};
  EXPECT_NE(Deserialize(r).error().reason().find("num_ports: 0"), std::string::npos);
  r = Valid(body, two);
  r.num_fds = 1;
  EXPECT_NE(Deserialize(r).error().reason().find("num_fds: 1"), std::string::npos);
  auto longer = body;
  longer.push_back(0);
  r = Valid(longer, two);
  EXPECT_NE(Deserialize(r).error().reason().find("num_bytes: 9"), std::string::npos);
  r = Valid(std::vector<uint8_t>(body.begin(), body.end() - 1), two);
  EXPECT_NE(Deserialize(r).error().reason().find("num_bytes: 7"), std::string::npos);
  EXPECT_TRUE(Deserialize(Valid(body, two)).ok());
}

TEST_F(EndpointSerializationTest, PortMustExistBeReceivingAndUnowned) {
  auto body = Body();
  ports::PortName missing = ports::PortName::Random();
  auto r = Deserialize(Valid(body, &missing));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kProtocolViolation);
  EXPECT_NE(r.error().reason().find("does not exist on this node"), std::string::npos);

  auto closed = NewPort();
  ports::PortName closed_name = closed.name();
  ASSERT_TRUE(node_.ClosePort(closed).ok());
  r = Deserialize(Valid(body, &closed_name));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kProtocolViolation);

  auto owned = NewPort();
  ports::PortName owned_name = owned.name();
  bound_.insert(owned_name);
  r = Deserialize(Valid(body, &owned_name));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().reason().find("already owned by a handle"), std::string::npos);
}

TEST_F(EndpointSerializationTest, TableCountsMustMatchTheMessage) {
  std::vector<uint8_t> none;
  auto payload = EncodeSystemMessage(none, 1);
  // Claims 1 descriptor the message does not carry.
  payload[kSystemHeaderSize + 12] = 1;
  auto p = NewPort();
  std::vector<ports::PortName> names = {p.name()};
  auto r = DecodeSystemMessage(payload, names, 0);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().reason(), "HandleHeader[0].num_fds: 1 descriptors exceed the 0 the message carries");
  // A body length that would wrap around.
  payload = EncodeSystemMessage(none, 1);
  payload[kSystemHeaderSize + 4] = 0xff;
  payload[kSystemHeaderSize + 5] = 0xff;
  payload[kSystemHeaderSize + 6] = 0xff;
  payload[kSystemHeaderSize + 7] = 0xff;
  r = DecodeSystemMessage(payload, names, 0);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().reason().find("num_bytes: 4294967295"), std::string::npos);
  // Too many descriptors for any legal message.
  r = DecodeSystemMessage(EncodeSystemMessage(none, 0), {}, 129);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kLimitExceeded);
}

TEST_F(EndpointSerializationTest, NoHandlesMeansNoTable) {
  const std::vector<uint8_t> user = {'M', 'O', 'S', 'M', 0, 0, 0, 0};
  auto payload = EncodeSystemMessage(user, 0);
  EXPECT_EQ(payload, user);
  auto parsed = DecodeSystemMessage(payload, {}, 2);
  ASSERT_TRUE(parsed.ok()) << parsed.error().ToString();
  EXPECT_TRUE(parsed->handles.empty());
  EXPECT_EQ(parsed->user_payload.data(), payload.data());
  EXPECT_EQ(parsed->user_payload.size(), payload.size());
  EXPECT_EQ(parsed->first_user_fd, 0u);
  // With a port, the same bytes must be a table that accounts for it.
  auto p = NewPort();
  std::vector<ports::PortName> names = {p.name()};
  auto r = DecodeSystemMessage(payload, names, 0);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().reason().find("accounts for 0"), std::string::npos) << r.error().ToString();
}

TEST(EndpointSerializationDeathTest, OverLimitEncodeIsAProgrammerError) {
  std::vector<uint8_t> none;
  EXPECT_DEATH(EncodeSystemMessage(none, 65), "exceeds MAX_MESSAGE_HANDLE_COUNT 64");
}

}  // namespace
}  // namespace moat::system
