#include "core/ports/event_codec.h"

#include <algorithm>
#include <limits>
#include <set>
#include <string>

#include "core/check.h"
#include "core/codec/decoder.h"
#include "core/codec/encoder.h"
#include "limits/limits.h"

namespace moat::ports {
namespace {

template <typename Name>
void WriteName(Encoder& enc, const Name& n) {
  enc.WriteU64(n.hi);
  enc.WriteU64(n.lo);
}

template <typename Name>
Result<Name> ReadName(Decoder& dec, const char* field) {
  Name n;
  auto hi = dec.ReadU64();
  if (!hi.ok()) return std::move(hi).error().WithField(field);
  auto lo = dec.ReadU64();
  if (!lo.ok()) return std::move(lo).error().WithField(field);
  n.hi = *hi;
  n.lo = *lo;
  return n;
}

void WriteDescriptor(Encoder& enc, const PortDescriptor& d) {
  WriteName(enc, d.peer_node);
  WriteName(enc, d.peer_port);
  WriteName(enc, d.referring_node);
  WriteName(enc, d.referring_port);
  enc.WriteU64(d.next_sequence_num_to_send);
  enc.WriteU64(d.next_sequence_num_to_receive);
  enc.WriteU64(d.last_sequence_num_to_receive);
  enc.WriteBool(d.peer_closed);
}

Error InField(Error e, std::string_view field) {
  if (!field.empty()) e.WithField(field);
  return e;
}

// Reads into lhs or returns the error with `field` prepended to its path.
#define MOAT_READ(lhs, expr, field)                                                   \
  auto MOAT_INTERNAL_CONCAT(r_, __LINE__) = (expr);                                   \
  if (!MOAT_INTERNAL_CONCAT(r_, __LINE__).ok())                                       \
    return InField(std::move(MOAT_INTERNAL_CONCAT(r_, __LINE__)).error(), (field));    \
  lhs = std::move(MOAT_INTERNAL_CONCAT(r_, __LINE__)).value()

Result<PortDescriptor> ReadDescriptor(Decoder& dec) {
  PortDescriptor d;
  MOAT_READ(d.peer_node, ReadName<NodeName>(dec, "peer_node"), "");
  MOAT_READ(d.peer_port, ReadName<PortName>(dec, "peer_port"), "");
  MOAT_READ(d.referring_node, ReadName<NodeName>(dec, "referring_node"), "");
  MOAT_READ(d.referring_port, ReadName<PortName>(dec, "referring_port"), "");
  MOAT_READ(d.next_sequence_num_to_send, dec.ReadU64(), "next_sequence_num_to_send");
  MOAT_READ(d.next_sequence_num_to_receive, dec.ReadU64(), "next_sequence_num_to_receive");
  MOAT_READ(d.last_sequence_num_to_receive, dec.ReadU64(), "last_sequence_num_to_receive");
  MOAT_READ(d.peer_closed, dec.ReadBool(), "peer_closed");
  // Attack: a port descriptor without a route (it could never deliver or be
  // closed cleanly) smuggled into a node.
  MOAT_REQUIRE(d.peer_node.is_valid() && d.peer_port.is_valid() && d.referring_node.is_valid() &&
                   d.referring_port.is_valid(),
               ErrorCode::kMalformed, "port descriptor has an invalid peer or referring name");
  // Attack: counters a real port can never have (0 or the invalid marker).
  MOAT_REQUIRE(d.next_sequence_num_to_send >= kInitialSequenceNum &&
                   d.next_sequence_num_to_receive >= kInitialSequenceNum &&
                   d.next_sequence_num_to_send != kInvalidSequenceNum &&
                   d.next_sequence_num_to_receive != kInvalidSequenceNum,
               ErrorCode::kMalformed, "port descriptor sequence numbers ",
               d.next_sequence_num_to_send, "/", d.next_sequence_num_to_receive,
               " are outside [1, 2^64-2]");
  if (d.peer_closed) {
    // Attack: a closed peer whose last message precedes ones already delivered.
    MOAT_REQUIRE(d.last_sequence_num_to_receive != kInvalidSequenceNum &&
                     d.last_sequence_num_to_receive + 1 >= d.next_sequence_num_to_receive,
                 ErrorCode::kMalformed, "port descriptor last_sequence_num_to_receive ",
                 d.last_sequence_num_to_receive, " is before next_sequence_num_to_receive ",
                 d.next_sequence_num_to_receive);
  } else {
    // Attack: a second encoding of "peer open" (non-canonical bytes).
    MOAT_REQUIRE(d.last_sequence_num_to_receive == kInvalidSequenceNum, ErrorCode::kMalformed,
                 "port descriptor has last_sequence_num_to_receive without peer_closed");
  }
  return d;
}

// What follows a user message's payload: its descriptors (moved out of
// `moved_fds`, else duplicated) and its ports with their descriptors.
void WriteUserMessageTail(Encoder& enc, const UserMessageEvent& e,
                          std::vector<UniqueFd>* moved_fds) {
  MOAT_ASSERT(e.message != nullptr);
  MOAT_ASSERT(e.message->ports.size() == e.port_descriptors.size(),
              "serializing a message whose ports have no descriptors");
  MOAT_ASSERT(e.message->ports.size() <= limits::MAX_MESSAGE_HANDLE_COUNT);
  enc.WriteU32(static_cast<uint32_t>(e.message->fds.size()));
  if (moved_fds != nullptr) {
    for (UniqueFd& fd : *moved_fds) enc.WriteU32(enc.AttachFd(std::move(fd)));
  } else {
    for (const UniqueFd& fd : e.message->fds) {
      auto dup = fd.Duplicate();
      MOAT_ASSERT(dup.ok(), "dup() failed while serializing: ", dup.error().ToString());
      enc.WriteU32(enc.AttachFd(std::move(*dup)));
    }
  }
  enc.WriteU32(static_cast<uint32_t>(e.message->ports.size()));
  for (size_t i = 0; i < e.message->ports.size(); ++i) {
    WriteName(enc, e.message->ports[i]);
    WriteDescriptor(enc, e.port_descriptors[i]);
  }
}

// Little-endian stores into a fixed span, byte by byte (no memcpy: the head
// is small, and the bench counts every memcpy the size of a small payload).
class HeadWriter {
 public:
  explicit HeadWriter(std::span<uint8_t> out) : out_(out) {}
  void U32(uint32_t v) { Put(v, 4); }
  void U64(uint64_t v) { Put(v, 8); }
  void Name(const PortName& n) {
    U64(n.hi);
    U64(n.lo);
  }
  size_t written() const { return at_; }

 private:
  void Put(uint64_t v, size_t n) {
    MOAT_ASSERT(at_ + n <= out_.size(), "event head overflows its headroom");
    for (size_t i = 0; i < n; ++i) out_[at_++] = static_cast<uint8_t>(v >> (8 * i));
  }
  std::span<uint8_t> out_;
  size_t at_ = 0;
};

// Serialize() for a user message whose payload vector has exactly the room
// in front for `prefix_size` bytes and the event's head (the writer reserved
// it: UserMessage::headroom): the head is written into that room and the
// tail appended (the writer reserved capacity for it), so the payload is
// never copied and the vector itself becomes the serialized event. The bytes
// are exactly Serialize()'s (event_codec_test checks).
std::vector<uint8_t> SerializeInPlace(UserMessageEvent& e, std::vector<UniqueFd>* moved_fds,
                                      std::vector<UniqueFd>* fds_out, size_t prefix_size) {
  std::vector<uint8_t> out = std::move(e.message->payload);
  const size_t length = out.size() - e.message->headroom;
  e.message->payload.clear();
  e.message->headroom = 0;
  std::span<uint8_t> room(out.data(), prefix_size + kUserMessageEventHeadSize);
  std::fill(room.begin(), room.begin() + static_cast<ptrdiff_t>(prefix_size), uint8_t{0});
  HeadWriter head(room.subspan(prefix_size));
  head.U32(static_cast<uint32_t>(e.type()));
  head.Name(e.port_name);
  head.Name(e.from_port);
  head.U64(e.control_sequence_num);
  head.U64(e.sequence_num);
  head.U32(static_cast<uint32_t>(length));
  MOAT_ASSERT(head.written() == kUserMessageEventHeadSize, "kUserMessageEventHeadSize is stale");

  Encoder enc;
  // As Encoder::WriteBytes checks and charges for the payload.
  MOAT_ASSERT(length <= std::numeric_limits<uint32_t>::max() &&
                  length <= enc.limits().max_decoded_size,
              "payload of ", length, " bytes exceeds MAX_DECODED_SIZE (the peer would reject it)");
  enc.ChargeMemory(length, 1);
  // The tail goes into the capacity the writer reserved behind the payload.
  enc.ContinueAfter(std::move(out));
  WriteUserMessageTail(enc, e, moved_fds);
  Status s = enc.Finish();
  MOAT_ASSERT(s.ok(), "serializing a ports event: ", s.error().ToString());
  for (UniqueFd& fd : enc.TakeFds()) fds_out->push_back(std::move(fd));
  return enc.TakeBytes();
}

std::vector<uint8_t> Serialize(const Event& event, std::vector<UniqueFd>* moved_fds,
                               std::vector<UniqueFd>* fds_out, size_t prefix_size = 0) {
  Encoder enc;
  // Exact for events without attachments; the payload is copied once.
  size_t estimate = prefix_size + 4 + 2 * 16 + 8 + 64;
  if (event.type() == EventType::kUserMessage) {
    const auto& e = static_cast<const UserMessageEvent&>(event);
    estimate += 8 + 4 + e.message->size_in_bytes() +
                UserMessageEventTailSize(e.message->fds.size(), e.message->ports.size());
  }
  enc.Reserve(estimate);
  // The caller's prefix, zeroed without a temporary buffer per event.
  static constexpr uint8_t kZeros[64] = {};
  for (size_t left = prefix_size; left > 0;) {
    const size_t n = std::min(left, sizeof(kZeros));
    enc.WriteRaw(std::span<const uint8_t>(kZeros, n));
    left -= n;
  }
  enc.WriteU32(static_cast<uint32_t>(event.type()));
  WriteName(enc, event.port_name);
  WriteName(enc, event.from_port);
  enc.WriteU64(event.control_sequence_num);
  switch (event.type()) {
    case EventType::kUserMessage: {
      const auto& e = static_cast<const UserMessageEvent&>(event);
      MOAT_ASSERT(e.message != nullptr);
      MOAT_ASSERT(e.message->ports.size() == e.port_descriptors.size(),
                  "serializing a message whose ports have no descriptors");
      MOAT_ASSERT(e.message->ports.size() <= limits::MAX_MESSAGE_HANDLE_COUNT);
      enc.WriteU64(e.sequence_num);
      enc.WriteBytes(e.message->bytes());
      WriteUserMessageTail(enc, e, moved_fds);
      break;
    }
    case EventType::kPortAccepted:
      break;
    case EventType::kRouteLost: {
      const auto& e = static_cast<const RouteLostEvent&>(event);
      WriteName(enc, e.far_node);
      WriteName(enc, e.far_port);
      break;
    }
    case EventType::kObserveProxy: {
      const auto& e = static_cast<const ObserveProxyEvent&>(event);
      WriteName(enc, e.proxy_node);
      WriteName(enc, e.proxy_port);
      WriteName(enc, e.proxy_target_node);
      WriteName(enc, e.proxy_target_port);
      enc.WriteU32(e.hops);
      break;
    }
    case EventType::kObserveProxyAck:
      enc.WriteU64(static_cast<const ObserveProxyAckEvent&>(event).last_sequence_num);
      break;
    case EventType::kObserveClosure:
      enc.WriteU64(static_cast<const ObserveClosureEvent&>(event).last_sequence_num);
      break;
    case EventType::kMergePort: {
      const auto& e = static_cast<const MergePortEvent&>(event);
      WriteName(enc, e.new_port_name);
      WriteDescriptor(enc, e.new_port_descriptor);
      break;
    }
    case EventType::kUserMessageReadAckRequest:
      enc.WriteU64(
          static_cast<const UserMessageReadAckRequestEvent&>(event).sequence_num_to_acknowledge);
      break;
    case EventType::kUserMessageReadAck:
      enc.WriteU64(static_cast<const UserMessageReadAckEvent&>(event).sequence_num_acknowledged);
      break;
    case EventType::kUpdatePreviousPeer: {
      const auto& e = static_cast<const UpdatePreviousPeerEvent&>(event);
      WriteName(enc, e.new_prev_node);
      WriteName(enc, e.new_prev_port);
      break;
    }
  }
  Status s = enc.Finish();
  MOAT_ASSERT(s.ok(), "serializing a ports event: ", s.error().ToString());
  std::vector<UniqueFd> fds = enc.TakeFds();
  for (UniqueFd& fd : fds) fds_out->push_back(std::move(fd));
  return enc.TakeBytes();
}

// With `payload_view`, a user message's payload is not copied out: *payload_view
// is set to it (a view into the input) and the message's payload left empty.
Result<std::unique_ptr<Event>> DecodeBody(Decoder& dec, EventType type, const PortName& target,
                                          const PortName& from, uint64_t control_seq,
                                          std::span<const uint8_t>* payload_view) {
  switch (type) {
    case EventType::kUserMessage: {
      uint64_t seq;
      MOAT_READ(seq, dec.ReadU64(), "sequence_num");
      // Attack: a sequence number no sender can produce (0 or the marker).
      MOAT_REQUIRE(seq >= kInitialSequenceNum && seq != kInvalidSequenceNum,
                   ErrorCode::kMalformed, "sequence_num ", seq, " is outside [1, 2^64-2]");
      auto message = std::make_unique<UserMessage>();
      if (payload_view != nullptr) {
        MOAT_READ(*payload_view, dec.ReadBytesView(), "payload");
      } else {
        MOAT_READ(message->payload, dec.ReadBytes(), "payload");
      }
      uint32_t fd_count;
      MOAT_READ(fd_count, dec.ReadU32(), "fd_count");
      // Attack: descriptor-table exhaustion with one message.
      MOAT_REQUIRE(fd_count <= limits::MAX_MESSAGE_FD_COUNT, ErrorCode::kLimitExceeded,
                   "fd_count ", fd_count, " exceeds MAX_MESSAGE_FD_COUNT ",
                   limits::MAX_MESSAGE_FD_COUNT);
      for (uint32_t i = 0; i < fd_count; ++i) {
        UniqueFd fd;
        MOAT_READ(fd, dec.TakeFd(), "fds[" + std::to_string(i) + "]");
        message->fds.push_back(std::move(fd));
      }
      uint32_t port_count;
      MOAT_READ(port_count, dec.ReadU32(), "port_count");
      // Attack: one message creating thousands of ports in the receiving node.
      MOAT_REQUIRE(port_count <= limits::MAX_MESSAGE_HANDLE_COUNT, ErrorCode::kLimitExceeded,
                   "port_count ", port_count, " exceeds MAX_MESSAGE_HANDLE_COUNT ",
                   limits::MAX_MESSAGE_HANDLE_COUNT);
      std::vector<PortDescriptor> descriptors;
      std::set<PortName> seen;
      for (uint32_t i = 0; i < port_count; ++i) {
        const std::string field = "ports[" + std::to_string(i) + "]";
        PortName name;
        MOAT_READ(name, ReadName<PortName>(dec, "name"), field);
        // Attack: one port name twice (one would overwrite the other's state).
        MOAT_REQUIRE(name.is_valid() && seen.insert(name).second, ErrorCode::kMalformed,
                     field, " name is invalid or repeated");
        PortDescriptor d;
        MOAT_READ(d, ReadDescriptor(dec), field + ".descriptor");
        message->ports.push_back(name);
        descriptors.push_back(d);
      }
      auto e = std::make_unique<UserMessageEvent>(target, from, control_seq, seq, std::move(message));
      e->port_descriptors = std::move(descriptors);
      return std::unique_ptr<Event>(std::move(e));
    }
    case EventType::kPortAccepted:
      return std::unique_ptr<Event>(std::make_unique<PortAcceptedEvent>(target, from));
    case EventType::kRouteLost: {
      NodeName n;
      PortName p;
      MOAT_READ(n, ReadName<NodeName>(dec, "far_node"), "");
      MOAT_READ(p, ReadName<PortName>(dec, "far_port"), "");
      // Attack: half a name, which no sender produces (non-canonical).
      MOAT_REQUIRE(n.is_valid() == p.is_valid(), ErrorCode::kMalformed,
                   "RouteLost far_node and far_port must be both valid or both invalid");
      return std::unique_ptr<Event>(std::make_unique<RouteLostEvent>(target, from, n, p));
    }
    case EventType::kObserveProxy: {
      NodeName pn, tn;
      PortName pp, tp;
      uint32_t hops;
      MOAT_READ(pn, ReadName<NodeName>(dec, "proxy_node"), "");
      MOAT_READ(pp, ReadName<PortName>(dec, "proxy_port"), "");
      MOAT_READ(tn, ReadName<NodeName>(dec, "proxy_target_node"), "");
      MOAT_READ(tp, ReadName<PortName>(dec, "proxy_target_port"), "");
      MOAT_READ(hops, dec.ReadU32(), "hops");
      // Attack: redirecting a pipe to a nameless target (messages vanish).
      MOAT_REQUIRE(pn.is_valid() && pp.is_valid() && tn.is_valid() && tp.is_valid(),
                   ErrorCode::kMalformed, "ObserveProxy names an invalid proxy or target");
      auto e = std::make_unique<ObserveProxyEvent>(target, from, control_seq, pn, pp, tn, tp);
      e->hops = hops;
      return std::unique_ptr<Event>(std::move(e));
    }
    case EventType::kObserveProxyAck: {
      uint64_t last;
      MOAT_READ(last, dec.ReadU64(), "last_sequence_num");
      return std::unique_ptr<Event>(
          std::make_unique<ObserveProxyAckEvent>(target, from, control_seq, last));
    }
    case EventType::kObserveClosure: {
      uint64_t last;
      MOAT_READ(last, dec.ReadU64(), "last_sequence_num");
      return std::unique_ptr<Event>(
          std::make_unique<ObserveClosureEvent>(target, from, control_seq, last));
    }
    case EventType::kMergePort: {
      PortName name;
      PortDescriptor d;
      MOAT_READ(name, ReadName<PortName>(dec, "new_port_name"), "");
      // Attack: a merge creating a nameless port.
      MOAT_REQUIRE(name.is_valid(), ErrorCode::kMalformed, "new_port_name is invalid");
      MOAT_READ(d, ReadDescriptor(dec), "new_port_descriptor");
      return std::unique_ptr<Event>(std::make_unique<MergePortEvent>(target, name, d));
    }
    case EventType::kUserMessageReadAckRequest: {
      uint64_t n;
      MOAT_READ(n, dec.ReadU64(), "sequence_num_to_acknowledge");
      return std::unique_ptr<Event>(
          std::make_unique<UserMessageReadAckRequestEvent>(target, from, control_seq, n));
    }
    case EventType::kUserMessageReadAck: {
      uint64_t n;
      MOAT_READ(n, dec.ReadU64(), "sequence_num_acknowledged");
      return std::unique_ptr<Event>(
          std::make_unique<UserMessageReadAckEvent>(target, from, control_seq, n));
    }
    case EventType::kUpdatePreviousPeer: {
      NodeName n;
      PortName p;
      MOAT_READ(n, ReadName<NodeName>(dec, "new_prev_node"), "");
      MOAT_READ(p, ReadName<PortName>(dec, "new_prev_port"), "");
      // Attack: pointing a port's previous hop at nothing (it would hang).
      MOAT_REQUIRE(n.is_valid() && p.is_valid(), ErrorCode::kMalformed,
                   "UpdatePreviousPeer names an invalid previous hop");
      return std::unique_ptr<Event>(
          std::make_unique<UpdatePreviousPeerEvent>(target, from, control_seq, n, p));
    }
  }
  MOAT_UNREACHABLE("event type checked before DecodeBody");
}

}  // namespace

std::vector<uint8_t> SerializeEvent(std::unique_ptr<Event> event, std::vector<UniqueFd>* fds_out) {
  return SerializeEventAfterPrefix(std::move(event), 0, fds_out);
}

std::vector<uint8_t> SerializeEventAfterPrefix(std::unique_ptr<Event> event, size_t prefix_size,
                                               std::vector<UniqueFd>* fds_out) {
  MOAT_ASSERT(event != nullptr && fds_out != nullptr);
  if (event->type() == EventType::kUserMessage) {
    auto& e = static_cast<UserMessageEvent&>(*event);
    std::vector<UniqueFd> fds = std::move(e.message->fds);
    e.message->fds.clear();
    // The count written must match: temporarily size the vector for Serialize.
    e.message->fds.resize(fds.size());
    if (e.message->headroom == prefix_size + kUserMessageEventHeadSize) {
      return SerializeInPlace(e, &fds, fds_out, prefix_size);
    }
    return Serialize(*event, &fds, fds_out, prefix_size);
  }
  return Serialize(*event, nullptr, fds_out, prefix_size);
}

std::vector<uint8_t> SerializeEvent(const Event& event, std::vector<UniqueFd>* fds_out) {
  MOAT_ASSERT(fds_out != nullptr);
  return Serialize(event, nullptr, fds_out);
}

namespace {

Result<std::unique_ptr<Event>> Deserialize(std::span<const uint8_t> bytes, std::span<UniqueFd> fds,
                                           std::vector<uint8_t>* owner);

}  // namespace

Result<std::unique_ptr<Event>> DeserializeEvent(std::span<const uint8_t> bytes,
                                                std::span<UniqueFd> fds) {
  return Deserialize(bytes, fds, nullptr);
}

Result<std::unique_ptr<Event>> DeserializeEventAdopting(std::vector<uint8_t>& owner,
                                                        std::span<const uint8_t> bytes,
                                                        std::span<UniqueFd> fds) {
  MOAT_ASSERT(bytes.empty() || (bytes.data() >= owner.data() &&
                                bytes.data() + bytes.size() <= owner.data() + owner.size()),
              "DeserializeEventAdopting: the bytes are not in `owner`");
  return Deserialize(bytes, fds, &owner);
}

namespace {

Result<std::unique_ptr<Event>> Deserialize(std::span<const uint8_t> bytes, std::span<UniqueFd> fds,
                                           std::vector<uint8_t>* owner) {
  Decoder dec(bytes, fds);
  uint32_t raw_type;
  MOAT_READ(raw_type, dec.ReadU32(), "Event.type");
  // Attack: an unknown event type dispatched as if it were a known one.
  MOAT_REQUIRE(raw_type <= kMaxEventType, ErrorCode::kMalformed, "Event.type: unknown type ",
               raw_type, " (max ", kMaxEventType, ")");
  const auto type = static_cast<EventType>(raw_type);
  PortName target, from;
  uint64_t control_seq;
  MOAT_READ(target, ReadName<PortName>(dec, "port_name"), "Event");
  MOAT_READ(from, ReadName<PortName>(dec, "from_port"), "Event");
  MOAT_READ(control_seq, dec.ReadU64(), "Event.control_sequence_num");
  // Attack: an event addressed to no port.
  MOAT_REQUIRE(target.is_valid(), ErrorCode::kMalformed, "Event.port_name is invalid");
  const bool ring = type != EventType::kPortAccepted && type != EventType::kMergePort &&
                    type != EventType::kRouteLost;
  if (ring) {
    // Attack: an unsequenced ring event slipping past in-order processing.
    MOAT_REQUIRE(from.is_valid() && control_seq >= kInitialSequenceNum &&
                     control_seq != kInvalidSequenceNum,
                 ErrorCode::kMalformed, "Event.control_sequence_num ", control_seq,
                 " or from_port invalid for ", EventTypeName(type));
  } else {
    // Attack: non-canonical encodings of unsequenced events.
    MOAT_REQUIRE(control_seq == kInvalidSequenceNum &&
                     (type == EventType::kPortAccepted || type == EventType::kRouteLost
                          ? from.is_valid()
                          : !from.is_valid()),
                 ErrorCode::kMalformed, "Event.control_sequence_num/from_port must be unset for ",
                 EventTypeName(type));
  }
  std::span<const uint8_t> payload;
  Result<std::unique_ptr<Event>> event =
      DecodeBody(dec, type, target, from, control_seq, owner != nullptr ? &payload : nullptr);
  if (!event.ok()) return std::move(event).error().WithField(EventTypeName(type));
  // Attack: trailing bytes or unused descriptors (smuggled data, fd leaks).
  MOAT_TRY(dec.Finish());
  if (owner != nullptr && type == EventType::kUserMessage) {
    // The message keeps the buffer the event arrived in: its payload is
    // buffer[headroom..], the tail behind it cut off (no reallocation).
    UserMessage& message = *static_cast<UserMessageEvent&>(**event).message;
    if (!payload.empty()) {
      const size_t headroom = static_cast<size_t>(payload.data() - owner->data());
      message.payload = std::move(*owner);
      message.payload.resize(headroom + payload.size());
      message.headroom = headroom;
    }
  }
  return event;
}

}  // namespace

}  // namespace moat::ports
