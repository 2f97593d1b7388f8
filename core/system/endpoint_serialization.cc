#include "core/system/endpoint_serialization.h"

#include <algorithm>

#include "core/check.h"
#include "core/checked.h"
#include "limits/limits.h"

namespace moat::system {
namespace {

void PutU32(std::vector<uint8_t>* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<uint8_t>(v >> (8 * i)));
}

uint32_t GetU32(std::span<const uint8_t> bytes, size_t offset) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | bytes[offset + static_cast<size_t>(i)];
  return v;
}

}  // namespace

std::vector<uint8_t> EncodeSystemMessage(std::span<const uint8_t> user_payload,
                                         size_t num_endpoints) {
  return EncodeSystemMessage(user_payload, num_endpoints, 0, 0);
}

std::vector<uint8_t> EncodeSystemMessage(std::span<const uint8_t> user_payload,
                                         size_t num_endpoints, size_t headroom, size_t tailroom) {
  MOAT_ASSERT(num_endpoints <= limits::MAX_MESSAGE_HANDLE_COUNT, "attaching ", num_endpoints,
              " handles exceeds MAX_MESSAGE_HANDLE_COUNT ", limits::MAX_MESSAGE_HANDLE_COUNT);
  const size_t overhead =
      kSystemHeaderSize + num_endpoints * (kHandleHeaderSize + kSerializedEndpointSize);
  MOAT_ASSERT(user_payload.size() <= limits::MAX_MESSAGE_PAYLOAD_SIZE - overhead,
              "payload of ", user_payload.size(), " bytes exceeds MAX_MESSAGE_PAYLOAD_SIZE ",
              limits::MAX_MESSAGE_PAYLOAD_SIZE, " with its handle table");
  if (num_endpoints == 0 && headroom == 0 && tailroom == 0) {
    return std::vector<uint8_t>(user_payload.begin(), user_payload.end());
  }
  std::vector<uint8_t> out;
  out.reserve(headroom + (num_endpoints == 0 ? 0 : overhead) + user_payload.size() + tailroom);
  out.resize(headroom);
  if (num_endpoints == 0) {
    out.insert(out.end(), user_payload.begin(), user_payload.end());
    return out;
  }
  PutU32(&out, kSystemMessageMagic);
  PutU32(&out, static_cast<uint32_t>(num_endpoints));
  for (size_t i = 0; i < num_endpoints; ++i) {
    PutU32(&out, static_cast<uint32_t>(HandleType::kMessagePipe));
    PutU32(&out, kSerializedEndpointSize);
    PutU32(&out, 1);  // ports
    PutU32(&out, 0);  // fds
  }
  for (size_t i = 0; i < num_endpoints; ++i) {
    PutU32(&out, kSerializedEndpointMagic);
    PutU32(&out, 0);  // flags
  }
  out.insert(out.end(), user_payload.begin(), user_payload.end());
  return out;
}

Result<ParsedSystemMessage> DecodeSystemMessage(std::span<const uint8_t> payload,
                                                std::span<const ports::PortName> ports,
                                                size_t num_fds) {
  // Attack: the descriptor/port lists we were handed exceed what any legal message carries.
  MOAT_REQUIRE(num_fds <= limits::MAX_MESSAGE_FD_COUNT, ErrorCode::kLimitExceeded,
               "message carries ", num_fds, " descriptors, exceeds MAX_MESSAGE_FD_COUNT ",
               limits::MAX_MESSAGE_FD_COUNT);
  // Attack: extra ports beyond the handle limit, created in our node without an owner.
  MOAT_REQUIRE(ports.size() <= limits::MAX_MESSAGE_HANDLE_COUNT, ErrorCode::kLimitExceeded,
               "message carries ", ports.size(), " ports, exceeds MAX_MESSAGE_HANDLE_COUNT ",
               limits::MAX_MESSAGE_HANDLE_COUNT);
  if (ports.empty()) {
    // No handle owns no port, so there is no table: every byte and every
    // descriptor is the user's (and stays opaque to us).
    ParsedSystemMessage out;
    out.user_payload = payload;
    return out;
  }
  // Attack: a truncated message makes us read past the end of the payload.
  MOAT_REQUIRE(payload.size() >= kSystemHeaderSize, ErrorCode::kMalformed,
               "SystemHeader: payload of ", payload.size(), " bytes is shorter than the ",
               kSystemHeaderSize, "-byte header");
  const uint32_t magic = GetU32(payload, 0);
  // Attack: bytes that are not a system message (or an old/foreign format) parsed as one.
  MOAT_REQUIRE(magic == kSystemMessageMagic, ErrorCode::kMalformed, "SystemHeader.magic: 0x",
               std::hex, magic, " is not 0x", kSystemMessageMagic);
  const uint32_t num_handles = GetU32(payload, 4);
  // Attack: a message claiming thousands of handles to make us create ports.
  MOAT_REQUIRE(num_handles <= limits::MAX_MESSAGE_HANDLE_COUNT, ErrorCode::kLimitExceeded,
               "SystemHeader.num_handles: ", num_handles, " exceeds MAX_MESSAGE_HANDLE_COUNT ",
               limits::MAX_MESSAGE_HANDLE_COUNT);

  Checked<size_t> table_end = kSystemHeaderSize;
  table_end += Checked<size_t>(num_handles) * Checked<size_t>(kHandleHeaderSize);
  // Attack: a handle count whose table runs past the payload (out-of-bounds read).
  MOAT_REQUIRE(!table_end.has_overflow() && table_end.value() <= payload.size(),
               ErrorCode::kMalformed, "SystemHeader.num_handles: table of ", num_handles,
               " handles does not fit in a payload of ", payload.size(), " bytes");

  ParsedSystemMessage out;
  out.handles.reserve(num_handles);
  Checked<size_t> bytes_at = table_end.value();
  Checked<size_t> ports_at = 0;
  Checked<size_t> fds_at = 0;
  for (uint32_t i = 0; i < num_handles; ++i) {
    const size_t h = kSystemHeaderSize + static_cast<size_t>(i) * kHandleHeaderSize;
    const std::string field = internal::Concat("HandleHeader[", i, "]");
    HandleRecord record;
    record.type = GetU32(payload, h);
    const uint32_t num_bytes = GetU32(payload, h + 4);
    const uint32_t num_ports = GetU32(payload, h + 8);
    const uint32_t num_handle_fds = GetU32(payload, h + 12);

    Checked<size_t> bytes_end = bytes_at + Checked<size_t>(num_bytes);
    // Attack: a handle body running past the payload (out-of-bounds read, overflow).
    MOAT_REQUIRE(!bytes_end.has_overflow() && bytes_end.value() <= payload.size(),
                 ErrorCode::kMalformed, field, ".num_bytes: ", num_bytes,
                 " bytes do not fit in the payload of ", payload.size(), " bytes");
    Checked<size_t> ports_end = ports_at + Checked<size_t>(num_ports);
    // Attack: a handle claiming ports the message does not carry (or stealing another's).
    MOAT_REQUIRE(!ports_end.has_overflow() && ports_end.value() <= ports.size(),
                 ErrorCode::kMalformed, field, ".num_ports: ", num_ports,
                 " ports exceed the ", ports.size(), " ports the message carries");
    Checked<size_t> fds_end = fds_at + Checked<size_t>(num_handle_fds);
    // Attack: a handle claiming descriptors the message does not carry.
    MOAT_REQUIRE(!fds_end.has_overflow() && fds_end.value() <= num_fds, ErrorCode::kMalformed,
                 field, ".num_fds: ", num_handle_fds, " descriptors exceed the ", num_fds,
                 " the message carries");

    record.bytes = payload.subspan(bytes_at.value(), num_bytes);
    record.ports = ports.subspan(ports_at.value(), num_ports);
    record.num_fds = num_handle_fds;
    out.handles.push_back(record);
    bytes_at = bytes_end;
    ports_at = ports_end;
    fds_at = fds_end;
  }
  // Attack: ports the table does not account for would be created here with no owner.
  MOAT_REQUIRE(ports_at.value() == ports.size(), ErrorCode::kMalformed, "message carries ",
               ports.size(), " ports but its handle table accounts for ", ports_at.value());

  std::vector<ports::PortName> sorted(ports.begin(), ports.end());
  std::sort(sorted.begin(), sorted.end());
  // Attack: one port named twice would become two handles to one endpoint.
  MOAT_REQUIRE(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end(),
               ErrorCode::kMalformed, "message names the same port twice");

  out.user_payload = payload.subspan(bytes_at.value());
  out.first_user_fd = fds_at.value();
  return out;
}

Result<ports::PortRef> DeserializeEndpoint(const HandleRecord& record, ports::Node& node,
                                           const PortBoundCheck& is_bound) {
  // Attack: another kind of handle passed off as a pipe endpoint (type confusion).
  MOAT_REQUIRE(record.type == static_cast<uint32_t>(HandleType::kMessagePipe),
               ErrorCode::kMalformed, "pipe_endpoint.type: ", record.type,
               " is not a message pipe (", static_cast<uint32_t>(HandleType::kMessagePipe), ")");
  // Attack: zero or several ports for one endpoint (a dangling or duplicated endpoint).
  MOAT_REQUIRE(record.ports.size() == 1, ErrorCode::kMalformed, "pipe_endpoint.num_ports: ",
               record.ports.size(), " (an endpoint is exactly 1 port)");
  // Attack: descriptors smuggled with an endpoint, which would never be closed.
  MOAT_REQUIRE(record.num_fds == 0, ErrorCode::kMalformed, "pipe_endpoint.num_fds: ",
               record.num_fds, " (an endpoint carries no descriptors)");
  // Attack: a short or padded body (misparse, hidden data).
  MOAT_REQUIRE(record.bytes.size() == kSerializedEndpointSize, ErrorCode::kMalformed,
               "pipe_endpoint.num_bytes: ", record.bytes.size(), " (must be exactly ",
               kSerializedEndpointSize, ")");
  const uint32_t magic = GetU32(record.bytes, 0);
  // Attack: arbitrary bytes of the right length passed off as an endpoint record.
  MOAT_REQUIRE(magic == kSerializedEndpointMagic, ErrorCode::kMalformed,
               "pipe_endpoint.magic: 0x", std::hex, magic, " is not 0x",
               kSerializedEndpointMagic);
  const uint32_t flags = GetU32(record.bytes, 4);
  // Attack: reserved bits that a future version would interpret differently.
  MOAT_REQUIRE(flags == 0, ErrorCode::kMalformed, "pipe_endpoint.flags: 0x", std::hex, flags,
               " has reserved bits set");

  const ports::PortName& name = record.ports[0];
  ports::PortRef port;
  // Attack: a port name that does not exist here (forged or already gone).
  MOAT_REQUIRE(node.GetPort(name, &port).ok(), ErrorCode::kProtocolViolation, "pipe_endpoint.port: ",
               name.ToString(), " does not exist on this node");
  ports::PortStatus status;
  Status st = node.GetStatus(port, &status);
  // GetStatus fails kFailedPrecondition unless the port is in the receiving state.
  // Attack: naming a proxy or closed port instead of a live receiving endpoint.
  MOAT_REQUIRE(st.ok(), ErrorCode::kProtocolViolation,
               "pipe_endpoint.port: ", name.ToString(), " is not a receiving port");
  // Attack: naming a port a local handle already owns, to use one endpoint in two places.
  MOAT_REQUIRE(!is_bound(name), ErrorCode::kProtocolViolation, "pipe_endpoint.port: ",
               name.ToString(), " is already owned by a handle");
  return port;
}

}  // namespace moat::system
