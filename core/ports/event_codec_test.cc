#include "core/ports/event_codec.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "core/ports/test_network.h"
#include "limits/limits.h"

namespace moat::ports {
namespace {

PortDescriptor Desc() {
  PortDescriptor d;
  d.peer_node = NodeName::Random();
  d.peer_port = PortName::Random();
  d.referring_node = NodeName::Random();
  d.referring_port = PortName::Random();
  d.next_sequence_num_to_send = 5;
  d.next_sequence_num_to_receive = 3;
  return d;
}

std::vector<std::unique_ptr<Event>> AllEvents() {
  PortName t = PortName::Random(), f = PortName::Random();
  std::vector<std::unique_ptr<Event>> out;
  auto m = std::make_unique<UserMessage>();
  m->payload = {1, 2, 3};
  m->fds.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  m->ports.push_back(PortName::Random());
  auto um = std::make_unique<UserMessageEvent>(t, f, 4, 9, std::move(m));
  um->port_descriptors.push_back(Desc());
  out.push_back(std::move(um));
  out.push_back(std::make_unique<PortAcceptedEvent>(t, f));
  out.push_back(std::make_unique<ObserveProxyEvent>(t, f, 2, NodeName::Random(), PortName::Random(),
                                                    NodeName::Random(), PortName::Random()));
  out.push_back(std::make_unique<ObserveProxyAckEvent>(t, f, 2, kInvalidSequenceNum));
  out.push_back(std::make_unique<ObserveClosureEvent>(t, f, 3, 7));
  PortDescriptor closed = Desc();
  closed.peer_closed = true;
  closed.last_sequence_num_to_receive = 8;
  out.push_back(std::make_unique<MergePortEvent>(t, PortName::Random(), closed));
  out.push_back(std::make_unique<UserMessageReadAckRequestEvent>(t, f, 1, 10));
  out.push_back(std::make_unique<UserMessageReadAckEvent>(t, f, 1, 10));
  out.push_back(std::make_unique<UpdatePreviousPeerEvent>(t, f, 6, NodeName::Random(),
                                                          PortName::Random()));
  out.push_back(std::make_unique<RouteLostEvent>(t, f));
  out.push_back(std::make_unique<RouteLostEvent>(t, f, NodeName::Random(), PortName::Random()));
  return out;
}

TEST(EventCodecTest, EveryEventTypeRoundTripsByteIdentically) {
  for (auto& event : AllEvents()) {
    std::vector<UniqueFd> fds;
    std::vector<uint8_t> bytes = SerializeEvent(*event, &fds);
    auto back = DeserializeEvent(bytes, fds);
    ASSERT_TRUE(back.ok()) << EventTypeName(event->type()) << ": " << back.error().ToString();
    EXPECT_EQ((*back)->type(), event->type());
    EXPECT_EQ((*back)->port_name, event->port_name);
    EXPECT_EQ((*back)->control_sequence_num, event->control_sequence_num);
    std::vector<UniqueFd> fds2;
    EXPECT_EQ(SerializeEvent(**back, &fds2), bytes) << EventTypeName(event->type());
    EXPECT_EQ(fds2.size(), fds.size());
  }
}

// A message whose writer reserved headroom (a peer on another node) is
// serialized in place: the same bytes as without headroom, in the message's
// own buffer (its payload is not copied again).
TEST(EventCodecTest, HeadroomSerializesInPlaceToTheSameBytes) {
  constexpr size_t kPrefix = 61;  // e.g. a node channel envelope header
  const PortName t = PortName::Random(), f = PortName::Random();
  for (size_t ports : {0, 2}) {
    auto make = [&](size_t headroom) {
      auto m = std::make_unique<UserMessage>();
      m->payload.reserve(headroom + 1000 + UserMessageEventTailSize(1, ports));
      m->payload.resize(headroom, 0xEE);  // garbage in the room: it must be overwritten
      for (int i = 0; i < 1000; ++i) m->payload.push_back(static_cast<uint8_t>(i * 7));
      m->headroom = headroom;
      m->fds.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
      auto um = std::make_unique<UserMessageEvent>(t, f, 4, 9, std::move(m));
      for (size_t i = 0; i < ports; ++i) {
        um->message->ports.push_back(PortName{7, 100 + i});
        um->port_descriptors.push_back(PortDescriptor{});
        um->port_descriptors.back().peer_node = NodeName{1, 2};
        um->port_descriptors.back().peer_port = PortName{3, 4};
        um->port_descriptors.back().referring_node = NodeName{5, 6};
        um->port_descriptors.back().referring_port = PortName{7, 8};
      }
      return um;
    };
    std::vector<UniqueFd> plain_fds, room_fds;
    const std::vector<uint8_t> plain = SerializeEventAfterPrefix(make(0), kPrefix, &plain_fds);
    auto with_room = make(kPrefix + kUserMessageEventHeadSize);
    const uint8_t* buffer = with_room->message->payload.data();
    const std::vector<uint8_t> in_place =
        SerializeEventAfterPrefix(std::move(with_room), kPrefix, &room_fds);
    EXPECT_EQ(in_place, plain) << ports << " ports";
    EXPECT_EQ(in_place.data(), buffer) << "serialized into another buffer";
    EXPECT_EQ(room_fds.size(), 1u);
    EXPECT_EQ(plain_fds.size(), 1u);
    auto back = DeserializeEvent(std::span(in_place).subspan(kPrefix), room_fds);
    ASSERT_TRUE(back.ok()) << back.error().ToString();
    const auto& um = static_cast<const UserMessageEvent&>(**back);
    ASSERT_EQ(um.message->payload.size(), 1000u);
    EXPECT_EQ(um.message->payload[999], static_cast<uint8_t>(999 * 7));
  }
  // Headroom that does not fit the prefix exactly: the bytes are copied, same result.
  auto m = std::make_unique<UserMessage>();
  m->payload = {0, 0, 0, 1, 2, 3};
  m->headroom = 3;
  std::vector<UniqueFd> fds;
  auto odd = SerializeEvent(std::make_unique<UserMessageEvent>(t, f, 4, 9, std::move(m)), &fds);
  auto back = DeserializeEvent(odd, fds);
  ASSERT_TRUE(back.ok()) << back.error().ToString();
  EXPECT_EQ(static_cast<const UserMessageEvent&>(**back).message->payload,
            (std::vector<uint8_t>{1, 2, 3}));
}

// A received event in a buffer of its own: the user message keeps that
// buffer (no copy of the payload); same result and same errors as
// DeserializeEvent, and the buffer is left alone when it is not taken.
TEST(EventCodecTest, AdoptingKeepsTheReceiveBuffer) {
  constexpr size_t kPrefix = 61;
  const PortName t = PortName::Random(), f = PortName::Random();
  auto m = std::make_unique<UserMessage>();
  for (int i = 0; i < 5000; ++i) m->payload.push_back(static_cast<uint8_t>(i * 13));
  const std::vector<uint8_t> want = m->payload;
  m->fds.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  std::vector<UniqueFd> fds;
  std::vector<uint8_t> wire = SerializeEventAfterPrefix(
      std::make_unique<UserMessageEvent>(t, f, 4, 9, std::move(m)), kPrefix, &fds);
  const uint8_t* buffer = wire.data();
  auto event = DeserializeEventAdopting(wire, std::span(wire).subspan(kPrefix), fds);
  ASSERT_TRUE(event.ok()) << event.error().ToString();
  const UserMessage& got = *static_cast<const UserMessageEvent&>(**event).message;
  EXPECT_EQ(got.payload.data(), buffer) << "the payload was copied";
  EXPECT_EQ(got.headroom, kPrefix + kUserMessageEventHeadSize);
  EXPECT_TRUE(std::ranges::equal(got.bytes(), want));
  EXPECT_EQ(got.size_in_bytes(), want.size());
  EXPECT_EQ(got.fds.size(), 1u);

  // Not a user message: the buffer stays with the caller.
  std::vector<UniqueFd> none;
  std::vector<uint8_t> ack = SerializeEventAfterPrefix(
      std::make_unique<UserMessageReadAckEvent>(t, f, 1, 10), kPrefix, &none);
  const std::vector<uint8_t> ack_copy = ack;
  ASSERT_TRUE(DeserializeEventAdopting(ack, std::span(ack).subspan(kPrefix), none).ok());
  EXPECT_EQ(ack, ack_copy);

  // Malformed: the same error as DeserializeEvent, the buffer untouched.
  std::vector<UniqueFd> fds2;
  auto m2 = std::make_unique<UserMessage>();
  m2->payload = {1, 2, 3};
  std::vector<uint8_t> bad = SerializeEventAfterPrefix(
      std::make_unique<UserMessageEvent>(t, f, 4, 9, std::move(m2)), kPrefix, &fds2);
  bad.push_back(0);  // a trailing byte
  const std::vector<uint8_t> bad_copy = bad;
  auto plain = DeserializeEvent(std::span(bad).subspan(kPrefix), fds2);
  auto adopted = DeserializeEventAdopting(bad, std::span(bad).subspan(kPrefix), fds2);
  ASSERT_FALSE(plain.ok());
  ASSERT_FALSE(adopted.ok());
  EXPECT_EQ(adopted.error().ToString(), plain.error().ToString());
  EXPECT_EQ(bad, bad_copy);
}

TEST(EventCodecTest, UserMessageKeepsPayloadFdsAndDescriptors) {
  auto events = AllEvents();
  auto& original = static_cast<UserMessageEvent&>(*events[0]);
  PortDescriptor desc = original.port_descriptors[0];
  std::vector<UniqueFd> fds;
  std::vector<uint8_t> bytes = SerializeEvent(std::move(events[0]), &fds);
  ASSERT_EQ(fds.size(), 1u);
  EXPECT_TRUE(fds[0].valid());
  auto back = DeserializeEvent(bytes, fds);
  ASSERT_TRUE(back.ok()) << back.error().ToString();
  auto& u = static_cast<UserMessageEvent&>(**back);
  EXPECT_EQ(u.sequence_num, 9u);
  EXPECT_EQ(u.message->payload, (std::vector<uint8_t>{1, 2, 3}));
  ASSERT_EQ(u.message->fds.size(), 1u);
  EXPECT_TRUE(u.message->fds[0].valid());
  EXPECT_FALSE(fds[0].valid());  // moved into the event
  ASSERT_EQ(u.port_descriptors.size(), 1u);
  EXPECT_EQ(u.port_descriptors[0], desc);
}

Status Decode(std::vector<uint8_t> bytes) {
  auto r = DeserializeEvent(bytes, {});
  if (r.ok()) return OkStatus();
  return std::move(r).error();
}

std::vector<uint8_t> Bytes(const Event& e) {
  std::vector<UniqueFd> fds;
  auto b = SerializeEvent(e, &fds);
  EXPECT_TRUE(fds.empty());
  return b;
}

TEST(EventCodecTest, RejectsMalformedEvents) {
  PortName t = PortName::Random(), f = PortName::Random();
  auto good = Bytes(ObserveClosureEvent(t, f, 1, 0));
  ASSERT_TRUE(Decode(good).ok());

  auto unknown = good;
  unknown[0] = 10;
  Status s = Decode(unknown);
  EXPECT_EQ(s.error().code(), ErrorCode::kMalformed);
  EXPECT_NE(s.error().ToString().find("unknown type 10"), std::string::npos) << s.error().ToString();

  // RouteLost: unsequenced, and its far end is all or nothing.
  auto half = Bytes(RouteLostEvent(t, f, NodeName::Random(), PortName::Random()));
  ASSERT_TRUE(Decode(half).ok());
  std::fill(half.end() - 16, half.end(), 0);  // far_port invalid, far_node valid
  s = Decode(half);
  EXPECT_EQ(s.error().code(), ErrorCode::kMalformed);
  EXPECT_NE(s.error().ToString().find("far_node and far_port"), std::string::npos)
      << s.error().ToString();
  auto sequenced = Bytes(RouteLostEvent(t, f));
  sequenced[36] = 1;  // control_sequence_num (after type, port_name, from_port)
  EXPECT_FALSE(Decode(sequenced).ok());

  auto trailing = good;
  trailing.push_back(0);
  EXPECT_FALSE(Decode(trailing).ok());

  for (size_t cut = 0; cut < good.size(); ++cut) {
    std::vector<uint8_t> shorter(good.begin(), good.begin() + static_cast<ptrdiff_t>(cut));
    EXPECT_EQ(Decode(shorter).error().code(), ErrorCode::kIncomplete) << cut;
  }

  // Ring event without a control sequence number.
  EXPECT_EQ(Decode(Bytes(ObserveClosureEvent(t, f, kInvalidSequenceNum, 0))).error().code(),
            ErrorCode::kMalformed);
  // Unsequenced event carrying one.
  auto merge = Bytes(MergePortEvent(t, PortName::Random(), Desc()));
  ASSERT_TRUE(Decode(merge).ok());
  std::memset(merge.data() + 36, 0, 8);  // control_sequence_num := 0
  EXPECT_EQ(Decode(merge).error().code(), ErrorCode::kMalformed);
}

TEST(EventCodecTest, RejectsImpossibleDescriptorsAndTooManyPorts) {
  PortName t = PortName::Random(), f = PortName::Random();
  PortDescriptor bad = Desc();
  bad.peer_closed = true;
  bad.last_sequence_num_to_receive = 1;  // before next_sequence_num_to_receive 3 - 1
  Status s = Decode(Bytes(MergePortEvent(t, PortName::Random(), bad)));
  EXPECT_EQ(s.error().code(), ErrorCode::kMalformed);
  EXPECT_NE(s.error().ToString().find("new_port_descriptor"), std::string::npos)
      << s.error().ToString();

  bad = Desc();
  bad.next_sequence_num_to_send = 0;
  EXPECT_FALSE(Decode(Bytes(MergePortEvent(t, PortName::Random(), bad))).ok());

  auto m = std::make_unique<UserMessage>();
  for (uint32_t i = 0; i < limits::MAX_MESSAGE_HANDLE_COUNT; ++i) m->ports.push_back(PortName::Random());
  UserMessageEvent e(t, f, 1, 1, std::move(m));
  e.port_descriptors.assign(limits::MAX_MESSAGE_HANDLE_COUNT, Desc());
  auto bytes = Bytes(e);
  ASSERT_TRUE(Decode(bytes).ok());
  // Bump port_count past the limit: offset = 44 header + 8 seq + 4 len + 0 payload + 4 fd_count.
  uint32_t too_many = limits::MAX_MESSAGE_HANDLE_COUNT + 1;
  std::memcpy(bytes.data() + 60, &too_many, 4);
  s = Decode(bytes);
  EXPECT_EQ(s.error().code(), ErrorCode::kLimitExceeded);
  EXPECT_NE(s.error().ToString().find("MAX_MESSAGE_HANDLE_COUNT"), std::string::npos);

  // The same port twice.
  auto m2 = std::make_unique<UserMessage>();
  PortName dup = PortName::Random();
  m2->ports = {dup, dup};
  UserMessageEvent e2(t, f, 1, 1, std::move(m2));
  e2.port_descriptors.assign(2, Desc());
  EXPECT_EQ(Decode(Bytes(e2)).error().code(), ErrorCode::kMalformed);
}

TEST(EventCodecTest, MissingOrUnusedDescriptorsAreRejected) {
  PortName t = PortName::Random(), f = PortName::Random();
  auto m = std::make_unique<UserMessage>();
  m->fds.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  UserMessageEvent e(t, f, 1, 1, std::move(m));
  std::vector<UniqueFd> fds;
  auto bytes = SerializeEvent(e, &fds);
  EXPECT_FALSE(DeserializeEvent(bytes, {}).ok());  // fd slot without an fd
  auto plain = Bytes(ObserveClosureEvent(t, f, 1, 0));
  EXPECT_FALSE(DeserializeEvent(plain, fds).ok());  // an fd nobody claims
}

// The whole multi-node protocol works through the codec.
TEST(EventCodecTest, NetworkRunsOverSerializedEvents) {
  testing::TestNetwork net;
  net.transform = [](std::unique_ptr<Event> e) -> Result<std::unique_ptr<Event>> {
    std::vector<UniqueFd> fds;
    auto bytes = SerializeEvent(std::move(e), &fds);
    return DeserializeEvent(bytes, fds);
  };
  Node& n0 = net.AddNode();
  Node& n1 = net.AddNode();
  auto [a, b] = net.CreatePipe(0, 1);
  PortRef x, y;
  ASSERT_TRUE(n0.CreatePortPair(&x, &y).ok());
  auto m = std::make_unique<UserMessage>();
  m->payload = {7};
  m->ports = {y.name()};
  ASSERT_TRUE(n0.SendUserMessage(a, std::move(m)).ok());
  ASSERT_TRUE(net.Pump());
  std::unique_ptr<UserMessage> got;
  ASSERT_TRUE(n1.GetMessage(b, &got).ok());
  ASSERT_NE(got, nullptr);
  PortRef y1;
  ASSERT_TRUE(n1.GetPort(got->ports[0], &y1).ok());
  auto m2 = std::make_unique<UserMessage>();
  m2->payload = {8};
  ASSERT_TRUE(n0.SendUserMessage(x, std::move(m2)).ok());
  ASSERT_TRUE(net.Pump());
  ASSERT_TRUE(n1.GetMessage(y1, &got).ok());
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(got->payload, (std::vector<uint8_t>{8}));
  for (auto p : {a, x}) ASSERT_TRUE(n0.ClosePort(p).ok());
  for (auto p : {b, y1}) ASSERT_TRUE(n1.ClosePort(p).ok());
  ASSERT_TRUE(net.Pump());
  EXPECT_TRUE(net.AllClean()) << net.Describe();
  EXPECT_TRUE(net.violations().empty());
}

}  // namespace
}  // namespace moat::ports
