#include "core/node/internal/event_bytes.h"

#include <tuple>
#include <utility>

#include "core/check.h"
#include "core/codec/decoder.h"
#include "limits/limits.h"

namespace moat::node {
namespace {

using ports::EventType;

constexpr size_t kCommonSize = 4 + 16 + 16 + 8;
constexpr size_t kNameSize = 16;
constexpr size_t kDescriptorSize = 4 * kNameSize + 3 * 8 + 1;

class Writer {
 public:
  explicit Writer(std::vector<uint8_t>* out) : out_(out) {}
  void U64(uint64_t v) { Put(v, 8); }
  void U32(uint32_t v) { Put(v, 4); }
  void U8(uint8_t v) { out_->push_back(v); }
  template <typename Name>
  void NameOf(const Name& n) {
    U64(n.hi);
    U64(n.lo);
  }
  void Descriptor(const ports::PortDescriptor& d) {
    NameOf(d.peer_node);
    NameOf(d.peer_port);
    NameOf(d.referring_node);
    NameOf(d.referring_port);
    U64(d.next_sequence_num_to_send);
    U64(d.next_sequence_num_to_receive);
    U64(d.last_sequence_num_to_receive);
    U8(d.peer_closed ? 1 : 0);
  }
  void Raw(std::span<const uint8_t> b) { out_->insert(out_->end(), b.begin(), b.end()); }

 private:
  void Put(uint64_t v, size_t n) {
    for (size_t i = 0; i < n; ++i) out_->push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  std::vector<uint8_t>* out_;
};

template <typename Name>
Result<Name> ReadName(Decoder& d, std::string_view field) {
  auto hi = d.ReadU64();
  if (!hi.ok()) return std::move(hi).error().WithField(field);
  auto lo = d.ReadU64();
  if (!lo.ok()) return std::move(lo).error().WithField(field);
  return Name{*hi, *lo};
}

Result<uint64_t> ReadU64(Decoder& d, std::string_view field) {
  auto v = d.ReadU64();
  if (!v.ok()) return std::move(v).error().WithField(field);
  return *v;
}

Result<ports::PortDescriptor> ReadDescriptor(Decoder& d) {
  ports::PortDescriptor out;
  MOAT_ASSIGN_OR_RETURN(out.peer_node, ReadName<ports::NodeName>(d, "peer_node"));
  MOAT_ASSIGN_OR_RETURN(out.peer_port, ReadName<ports::PortName>(d, "peer_port"));
  MOAT_ASSIGN_OR_RETURN(out.referring_node, ReadName<ports::NodeName>(d, "referring_node"));
  MOAT_ASSIGN_OR_RETURN(out.referring_port, ReadName<ports::PortName>(d, "referring_port"));
  MOAT_ASSIGN_OR_RETURN(out.next_sequence_num_to_send, ReadU64(d, "next_sequence_num_to_send"));
  MOAT_ASSIGN_OR_RETURN(out.next_sequence_num_to_receive,
                        ReadU64(d, "next_sequence_num_to_receive"));
  MOAT_ASSIGN_OR_RETURN(out.last_sequence_num_to_receive,
                        ReadU64(d, "last_sequence_num_to_receive"));
  auto closed = d.ReadBool();  // Decoder rejects anything but 0/1
  if (!closed.ok()) return std::move(closed).error().WithField("peer_closed");
  out.peer_closed = *closed;
  return out;
}

Result<std::unique_ptr<ports::Event>> DecodeUserMessage(Decoder& d, const ports::PortName& port,
                                                        const ports::PortName& from,
                                                        uint64_t control_seq,
                                                        std::vector<UniqueFd>& fds) {
  MOAT_ASSIGN_OR_RETURN(uint64_t sequence_num, ReadU64(d, "sequence_num"));
  auto message = std::make_unique<ports::UserMessage>();
  // ReadBytes goes through decode_size: the length is checked against
  // MAX_DECODED_SIZE and the bytes that remain before anything is allocated.
  auto payload = d.ReadBytes();
  if (!payload.ok()) return std::move(payload).error().WithField("payload");
  message->payload = std::move(*payload);
  auto fd_count = d.ReadU32();
  if (!fd_count.ok()) return std::move(fd_count).error().WithField("fd_count");
  // Attack: a message claiming descriptors that never arrived (or hiding some
  // that did), so they are misattributed or pile up.
  MOAT_REQUIRE(*fd_count == fds.size(), ErrorCode::kMalformed, "fd_count ", *fd_count,
               " but ", fds.size(), " descriptors arrived");
  auto port_count = d.ReadU32();
  if (!port_count.ok()) return std::move(port_count).error().WithField("port_count");
  // Attack: one message creating thousands of ports in this node.
  MOAT_REQUIRE(*port_count <= limits::MAX_MESSAGE_HANDLE_COUNT, ErrorCode::kLimitExceeded,
               "port_count ", *port_count, " exceeds MAX_MESSAGE_HANDLE_COUNT ",
               limits::MAX_MESSAGE_HANDLE_COUNT);
  // Attack: a count the bytes cannot back (checked before reserving).
  MOAT_TRY(d.Need(*port_count * (kNameSize + kDescriptorSize), "ports"));
  message->ports.reserve(*port_count);
  for (uint32_t i = 0; i < *port_count; ++i) {
    MOAT_ASSIGN_OR_RETURN(ports::PortName p, ReadName<ports::PortName>(d, "ports"));
    message->ports.push_back(p);
  }
  auto event = std::make_unique<ports::UserMessageEvent>(port, from, control_seq, sequence_num,
                                                         std::move(message));
  event->port_descriptors.reserve(*port_count);
  for (uint32_t i = 0; i < *port_count; ++i) {
    auto desc = ReadDescriptor(d);
    if (!desc.ok()) return std::move(desc).error().WithField("port_descriptors");
    event->port_descriptors.push_back(*desc);
  }
  event->message->fds = std::move(fds);
  fds.clear();
  return std::unique_ptr<ports::Event>(std::move(event));
}

}  // namespace

size_t EventBytesSize(const ports::Event& event) {
  switch (event.type()) {
    case EventType::kUserMessage: {
      const auto& e = static_cast<const ports::UserMessageEvent&>(event);
      return kCommonSize + 8 + 4 + e.message->payload.size() + 4 + 4 +
             e.message->ports.size() * (kNameSize + kDescriptorSize);
    }
    case EventType::kPortAccepted: return kCommonSize;
    case EventType::kObserveProxy: return kCommonSize + 4 * kNameSize + 4;
    case EventType::kObserveProxyAck:
    case EventType::kObserveClosure:
    case EventType::kUserMessageReadAckRequest:
    case EventType::kUserMessageReadAck: return kCommonSize + 8;
    case EventType::kMergePort: return kCommonSize + kNameSize + kDescriptorSize;
    case EventType::kUpdatePreviousPeer: return kCommonSize + 2 * kNameSize;
  }
  MOAT_UNREACHABLE("event type ", static_cast<uint32_t>(event.type()));
}

void AppendEventBytes(ports::Event& event, std::vector<uint8_t>* out,
                      std::vector<UniqueFd>* fds) {
  Writer w(out);
  w.U32(static_cast<uint32_t>(event.type()));
  w.NameOf(event.port_name);
  w.NameOf(event.from_port);
  w.U64(event.control_sequence_num);
  switch (event.type()) {
    case EventType::kUserMessage: {
      auto& e = static_cast<ports::UserMessageEvent&>(event);
      MOAT_ASSERT(e.message->ports.size() == e.port_descriptors.size(),
                  "user message with ", e.message->ports.size(), " ports but ",
                  e.port_descriptors.size(), " descriptors");
      MOAT_ASSERT(e.message->payload.size() <= limits::MAX_DECODED_SIZE, "payload of ",
                  e.message->payload.size(), " bytes exceeds MAX_DECODED_SIZE");
      w.U64(e.sequence_num);
      w.U32(static_cast<uint32_t>(e.message->payload.size()));
      w.Raw(e.message->payload);
      w.U32(static_cast<uint32_t>(e.message->fds.size()));
      w.U32(static_cast<uint32_t>(e.message->ports.size()));
      for (const ports::PortName& p : e.message->ports) w.NameOf(p);
      for (const ports::PortDescriptor& d : e.port_descriptors) w.Descriptor(d);
      for (UniqueFd& fd : e.message->fds) fds->push_back(std::move(fd));
      e.message->fds.clear();
      return;
    }
    case EventType::kPortAccepted: return;
    case EventType::kObserveProxy: {
      auto& e = static_cast<ports::ObserveProxyEvent&>(event);
      w.NameOf(e.proxy_node);
      w.NameOf(e.proxy_port);
      w.NameOf(e.proxy_target_node);
      w.NameOf(e.proxy_target_port);
      w.U32(e.hops);
      return;
    }
    case EventType::kObserveProxyAck:
      w.U64(static_cast<ports::ObserveProxyAckEvent&>(event).last_sequence_num);
      return;
    case EventType::kObserveClosure:
      w.U64(static_cast<ports::ObserveClosureEvent&>(event).last_sequence_num);
      return;
    case EventType::kMergePort: {
      auto& e = static_cast<ports::MergePortEvent&>(event);
      w.NameOf(e.new_port_name);
      w.Descriptor(e.new_port_descriptor);
      return;
    }
    case EventType::kUserMessageReadAckRequest:
      w.U64(static_cast<ports::UserMessageReadAckRequestEvent&>(event).sequence_num_to_acknowledge);
      return;
    case EventType::kUserMessageReadAck:
      w.U64(static_cast<ports::UserMessageReadAckEvent&>(event).sequence_num_acknowledged);
      return;
    case EventType::kUpdatePreviousPeer: {
      auto& e = static_cast<ports::UpdatePreviousPeerEvent&>(event);
      w.NameOf(e.new_prev_node);
      w.NameOf(e.new_prev_port);
      return;
    }
  }
  MOAT_UNREACHABLE("event type ", static_cast<uint32_t>(event.type()));
}

MOAT_DECODER(node_event)
Result<std::unique_ptr<ports::Event>> DecodeEventBytes(std::span<const uint8_t> bytes,
                                                       std::vector<UniqueFd>& fds) {
  Decoder d(bytes);
  auto raw_type = d.ReadU32();
  if (!raw_type.ok()) return std::move(raw_type).error().WithField("Event.type");
  // Attack: an undeclared event type steering dispatch into an unhandled branch.
  MOAT_REQUIRE(*raw_type <= ports::kMaxEventType, ErrorCode::kMalformed, "Event.type: value ",
               *raw_type, " is not a declared EventType");
  const auto type = static_cast<EventType>(*raw_type);
  auto common = [&]() -> Result<std::tuple<ports::PortName, ports::PortName, uint64_t>> {
    MOAT_ASSIGN_OR_RETURN(auto port, ReadName<ports::PortName>(d, "port_name"));
    MOAT_ASSIGN_OR_RETURN(auto from, ReadName<ports::PortName>(d, "from_port"));
    MOAT_ASSIGN_OR_RETURN(uint64_t seq, ReadU64(d, "control_sequence_num"));
    return std::make_tuple(port, from, seq);
  }();
  if (!common.ok()) return std::move(common).error().WithField("Event");
  const ports::PortName port = std::get<0>(*common);
  const ports::PortName from = std::get<1>(*common);
  const uint64_t seq = std::get<2>(*common);
  // Attack: descriptors riding an event that cannot carry any.
  MOAT_REQUIRE(type == EventType::kUserMessage || fds.empty(), ErrorCode::kMalformed,
               ports::EventTypeName(type), " event with ", fds.size(),
               " descriptors (only user messages carry descriptors)");

  Result<std::unique_ptr<ports::Event>> out = [&]() -> Result<std::unique_ptr<ports::Event>> {
    switch (type) {
      case EventType::kUserMessage: return DecodeUserMessage(d, port, from, seq, fds);
      case EventType::kPortAccepted:
        return std::unique_ptr<ports::Event>(new ports::PortAcceptedEvent(port, from));
      case EventType::kObserveProxy: {
        MOAT_ASSIGN_OR_RETURN(auto pn, ReadName<ports::NodeName>(d, "proxy_node"));
        MOAT_ASSIGN_OR_RETURN(auto pp, ReadName<ports::PortName>(d, "proxy_port"));
        MOAT_ASSIGN_OR_RETURN(auto tn, ReadName<ports::NodeName>(d, "proxy_target_node"));
        MOAT_ASSIGN_OR_RETURN(auto tp, ReadName<ports::PortName>(d, "proxy_target_port"));
        auto hops = d.ReadU32();
        if (!hops.ok()) return std::move(hops).error().WithField("hops");
        auto e = std::make_unique<ports::ObserveProxyEvent>(port, from, seq, pn, pp, tn, tp);
        e->hops = *hops;
        return std::unique_ptr<ports::Event>(std::move(e));
      }
      case EventType::kObserveProxyAck: {
        MOAT_ASSIGN_OR_RETURN(uint64_t v, ReadU64(d, "last_sequence_num"));
        return std::unique_ptr<ports::Event>(new ports::ObserveProxyAckEvent(port, from, seq, v));
      }
      case EventType::kObserveClosure: {
        MOAT_ASSIGN_OR_RETURN(uint64_t v, ReadU64(d, "last_sequence_num"));
        return std::unique_ptr<ports::Event>(new ports::ObserveClosureEvent(port, from, seq, v));
      }
      case EventType::kMergePort: {
        MOAT_ASSIGN_OR_RETURN(auto name, ReadName<ports::PortName>(d, "new_port_name"));
        auto desc = ReadDescriptor(d);
        if (!desc.ok()) return std::move(desc).error().WithField("new_port_descriptor");
        return std::unique_ptr<ports::Event>(new ports::MergePortEvent(port, name, *desc));
      }
      case EventType::kUserMessageReadAckRequest: {
        MOAT_ASSIGN_OR_RETURN(uint64_t v, ReadU64(d, "sequence_num_to_acknowledge"));
        return std::unique_ptr<ports::Event>(
            new ports::UserMessageReadAckRequestEvent(port, from, seq, v));
      }
      case EventType::kUserMessageReadAck: {
        MOAT_ASSIGN_OR_RETURN(uint64_t v, ReadU64(d, "sequence_num_acknowledged"));
        return std::unique_ptr<ports::Event>(
            new ports::UserMessageReadAckEvent(port, from, seq, v));
      }
      case EventType::kUpdatePreviousPeer: {
        MOAT_ASSIGN_OR_RETURN(auto n, ReadName<ports::NodeName>(d, "new_prev_node"));
        MOAT_ASSIGN_OR_RETURN(auto p, ReadName<ports::PortName>(d, "new_prev_port"));
        return std::unique_ptr<ports::Event>(
            new ports::UpdatePreviousPeerEvent(port, from, seq, n, p));
      }
    }
    MOAT_UNREACHABLE("checked above");
  }();
  if (!out.ok()) {
    return std::move(out).error().WithField(std::string(ports::EventTypeName(type)) + "Event");
  }
  Status finish = d.Finish();
  if (!finish.ok()) return std::move(finish).error().WithField("Event");
  return out;
}

}  // namespace moat::node
