#include "core/node/node_channel.h"

#include <string>

#include "core/check.h"
#include "core/codec/decoder.h"
#include "core/codec/utf8.h"
#include "limits/limits.h"

namespace moat::node {
namespace {

constexpr std::string_view kStruct = "NodeChannelMessage";

bool IsDeclared(uint8_t raw) { return raw >= 1 && raw <= kMaxNodeChannelMessageType; }

bool HasSubject(NodeChannelMessageType type) {
  return type == NodeChannelMessageType::kHello || type == NodeChannelMessageType::kNodeLost;
}

Error FieldError(Error e, std::string_view field) {
  return std::move(e).WithField(field).WithField(kStruct);
}

// The per-type rules, shared by both sides: the encoder asserts them (we
// never send what the peer must reject), the decoder requires them.
Status CheckRules(const NodeChannelHeader& h, size_t body_size, size_t num_fds) {
  // Attack: an invalid (all-zero) name would alias "no node" in routing tables.
  MOAT_REQUIRE(h.sender.is_valid(), ErrorCode::kMalformed, "sender node name is invalid (zero)");
  // Attack: as above, for the destination.
  MOAT_REQUIRE(h.target.is_valid(), ErrorCode::kMalformed, "target node name is invalid (zero)");
  // Attack: a message "from" its own destination, to loop events back into a node.
  MOAT_REQUIRE(h.sender != h.target, ErrorCode::kMalformed, "sender equals target ",
               h.sender.ToString());
  // Attack: descriptors that no field accounts for (or a field counting
  // descriptors that never arrived) would pile up or be misattributed.
  MOAT_REQUIRE(h.fd_count == num_fds, ErrorCode::kMalformed, "fd_count ", h.fd_count,
               " but the message carries ", num_fds, " descriptors");
  const bool subject_set = h.subject_hi != 0 || h.subject_lo != 0;
  if (h.type == NodeChannelMessageType::kEvent) {
    // Attack: an event envelope without an event (a cheap no-op flood).
    MOAT_REQUIRE(body_size > 0, ErrorCode::kMalformed, "event message with an empty body");
    // Attack: smuggled state in a field the type does not use.
    MOAT_REQUIRE(!subject_set, ErrorCode::kMalformed, "subject must be zero in an event message");
  } else if (h.type == NodeChannelMessageType::kDisconnect) {
    // Attack: a parting message as a memory or log flood.
    MOAT_REQUIRE(body_size >= 1 && body_size <= limits::MAX_DISCONNECT_REASON_SIZE,
                 ErrorCode::kLimitExceeded, "disconnect reason of ", body_size,
                 " bytes (must be 1..MAX_DISCONNECT_REASON_SIZE ",
                 limits::MAX_DISCONNECT_REASON_SIZE, ")");
    // Attack: descriptors riding a control message that nobody will consume.
    MOAT_REQUIRE(num_fds == 0, ErrorCode::kMalformed, "disconnect message with ", num_fds,
                 " descriptors (must have none)");
    // Attack: smuggled state in a field the type does not use.
    MOAT_REQUIRE(!subject_set, ErrorCode::kMalformed, "disconnect message with a non-zero subject");
  } else {
    const std::string_view name = NodeChannelMessageTypeName(h.type);
    // Attack: smuggled bytes behind a control message.
    MOAT_REQUIRE(body_size == 0, ErrorCode::kMalformed, name, " message with a ", body_size,
                 "-byte body (must be empty)");
    // Attack: descriptors riding a control message that nobody will consume.
    MOAT_REQUIRE(num_fds == 0, ErrorCode::kMalformed, name, " message with ", num_fds,
                 " descriptors (must have none)");
    if (HasSubject(h.type)) {
      // Attack: an introduction/loss report naming no port or node.
      MOAT_REQUIRE(subject_set, ErrorCode::kMalformed, name, " message with a zero subject");
    } else {
      // Attack: smuggled state in a field the type does not use.
      MOAT_REQUIRE(!subject_set, ErrorCode::kMalformed, name,
                   " message with a non-zero subject");
    }
  }
  return OkStatus();
}

}  // namespace

std::string_view NodeChannelMessageTypeName(NodeChannelMessageType type) {
  switch (type) {
    case NodeChannelMessageType::kHello: return "hello";
    case NodeChannelMessageType::kHelloReply: return "hello_reply";
    case NodeChannelMessageType::kEvent: return "event";
    case NodeChannelMessageType::kNodeLost: return "node_lost";
    case NodeChannelMessageType::kDisconnect: return "disconnect";
  }
  return "unknown";
}

void WriteNodeChannelHeader(const NodeChannelHeader& h, size_t body_size,
                            std::span<uint8_t, kNodeChannelHeaderSize> out) {
  MOAT_ASSERT(IsDeclared(static_cast<uint8_t>(h.type)), "undeclared node channel type ",
              +static_cast<uint8_t>(h.type));
  Status rules = CheckRules(h, body_size, h.fd_count);
  MOAT_ASSERT(rules.ok(), "encoding an invalid node channel message: ",
              rules.ok() ? std::string() : rules.error().ToString());
  MOAT_ASSERT(body_size <= limits::MAX_MESSAGE_PAYLOAD_SIZE - kNodeChannelHeaderSize,
              "node channel body of ", body_size, " bytes exceeds the payload limit");
  size_t at = 0;
  auto put = [&out, &at](uint64_t v, size_t n) {
    for (size_t i = 0; i < n; ++i) out[at++] = static_cast<uint8_t>(v >> (8 * i));
  };
  put(static_cast<uint8_t>(h.type), 1);
  put(h.sender.hi, 8);
  put(h.sender.lo, 8);
  put(h.target.hi, 8);
  put(h.target.lo, 8);
  put(h.subject_hi, 8);
  put(h.subject_lo, 8);
  put(h.fd_count, 4);
  put(body_size, 4);
}

std::vector<uint8_t> BeginNodeChannelMessage(const NodeChannelHeader& h, size_t body_size) {
  std::vector<uint8_t> out;
  out.reserve(kNodeChannelHeaderSize + body_size);
  out.resize(kNodeChannelHeaderSize);
  WriteNodeChannelHeader(h, body_size, std::span<uint8_t, kNodeChannelHeaderSize>(out.data(), kNodeChannelHeaderSize));
  return out;
}

std::vector<uint8_t> EncodeNodeChannelMessage(const NodeChannelHeader& h,
                                              std::span<const uint8_t> body) {
  MOAT_ASSERT(h.type != NodeChannelMessageType::kDisconnect || IsValidUtf8(body),
              "disconnect reason is not UTF-8 (use EncodeDisconnectMessage)");
  std::vector<uint8_t> out = BeginNodeChannelMessage(h, body.size());
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

std::vector<uint8_t> EncodeDisconnectMessage(const ports::NodeName& sender,
                                             const ports::NodeName& target,
                                             std::string_view reason) {
  std::string text;
  std::span<const uint8_t> rest(reinterpret_cast<const uint8_t*>(reason.data()), reason.size());
  while (!rest.empty() && text.size() < limits::MAX_DISCONNECT_REASON_SIZE) {
    const size_t valid = FindInvalidUtf8(rest).value_or(rest.size());
    text.append(reinterpret_cast<const char*>(rest.data()), valid);
    if (valid == rest.size()) break;
    text.push_back('?');
    rest = rest.subspan(valid + 1);
  }
  if (text.size() > limits::MAX_DISCONNECT_REASON_SIZE) {
    size_t cut = limits::MAX_DISCONNECT_REASON_SIZE;
    while ((static_cast<uint8_t>(text[cut]) & 0xC0) == 0x80) --cut;  // not inside a character
    text.resize(cut);
  }
  if (text.empty()) text = "no reason given";
  NodeChannelHeader h;
  h.type = NodeChannelMessageType::kDisconnect;
  h.sender = sender;
  h.target = target;
  return EncodeNodeChannelMessage(
      h, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

MOAT_DECODER(node_channel_message)
Result<NodeChannelMessage> DecodeNodeChannelMessage(std::span<const uint8_t> payload,
                                                    size_t num_fds) {
  Decoder d(payload);
  NodeChannelMessage out;
  NodeChannelHeader& h = out.header;

  auto u8 = d.ReadU8();
  if (!u8.ok()) return FieldError(std::move(u8).error(), "type");
  // Attack: an undeclared type steering dispatch into an unhandled branch.
  MOAT_REQUIRE(IsDeclared(*u8), ErrorCode::kMalformed, "NodeChannelMessage.type: value ", +*u8,
               " is not a declared NodeChannelMessageType");
  h.type = static_cast<NodeChannelMessageType>(*u8);

  uint64_t* words[] = {&h.sender.hi, &h.sender.lo, &h.target.hi,
                       &h.target.lo, &h.subject_hi, &h.subject_lo};
  static constexpr std::string_view kWordFields[] = {"sender", "sender", "target",
                                                     "target", "subject", "subject"};
  for (size_t i = 0; i < 6; ++i) {
    auto w = d.ReadU64();
    if (!w.ok()) return FieldError(std::move(w).error(), kWordFields[i]);
    *words[i] = *w;
  }
  auto fd_count = d.ReadU32();
  if (!fd_count.ok()) return FieldError(std::move(fd_count).error(), "fd_count");
  h.fd_count = *fd_count;
  auto body_size = d.ReadU32();
  if (!body_size.ok()) return FieldError(std::move(body_size).error(), "body_size");
  // Attack: a body_size larger than the bytes that follow. A transport
  // message is one whole frame, so nothing more can come: the frame is
  // malformed, not incomplete (NCH-5).
  if (*body_size > d.remaining()) {
    return FieldError(Error(ErrorCode::kMalformed,
                            ::moat::internal::Concat("body_size ", *body_size, " but only ",
                                                     d.remaining(),
                                                     " bytes follow the header in this "
                                                     "(complete) message")),
                      "body_size");
  }
  // A view: nothing is allocated here.
  auto body = d.ReadRaw(*body_size);
  if (!body.ok()) return FieldError(std::move(body).error(), "body");
  out.body = *body;
  Status finish = d.Finish();
  if (!finish.ok()) return std::move(finish).error().WithField(kStruct);

  Status rules = CheckRules(h, out.body.size(), num_fds);
  if (!rules.ok()) return std::move(rules).error().WithField(kStruct);
  if (h.type == NodeChannelMessageType::kDisconnect) {
    // Attack: invalid text handed on to the embedder's logs and callbacks.
    if (std::optional<size_t> bad = FindInvalidUtf8(out.body)) {
      return FieldError(Error(ErrorCode::kMalformed,
                              ::moat::internal::Concat("disconnect reason is not UTF-8 at byte ",
                                                       *bad)),
                        "body");
    }
  }
  return out;
}

}  // namespace moat::node
