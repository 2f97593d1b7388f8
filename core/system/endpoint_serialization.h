// How handles travel inside a ports::UserMessage, and the strict decoding of
// a transferred message-pipe endpoint (R10).
//
// A message written through the system layer is one UserMessage. Without
// attached handles (no ports) its payload is exactly the embedder's bytes:
// no table, so the receiver hands the payload buffer itself to the reader
// instead of copying the bytes out from behind a header. With handles (the
// message carries ports) the payload starts with a handle table, followed by
// the embedder's bytes:
//
//   SystemHeader   (8 bytes)   u32 magic 0x4d534f4d ("MOSM"), u32 num_handles
//   HandleHeader   (16 bytes each, num_handles of them)
//                              u32 type, u32 num_bytes, u32 num_ports, u32 num_fds
//   handle bytes   (num_bytes of each handle, concatenated in table order)
//   user payload   (the rest)
//
// The table is present exactly when the message carries ports: every handle
// type (today only the message pipe) owns at least one port, so a message
// without ports has nothing a table could describe, and one with ports must
// account for each of them in its table.
//
// All integers are little-endian. UserMessage::ports holds the handles' ports
// in table order (every port belongs to exactly one handle) and
// UserMessage::fds holds the handles' descriptors in table order followed by
// the embedder's descriptors. A message-pipe endpoint is type 1 with exactly
// one port, zero descriptors and an 8-byte body: u32 magic 0x50495045
// ("EPIP"), u32 flags (0; reserved).
//
// Everything here is decoded from peer-controlled data. DecodeSystemMessage
// checks the table against limits and the real port/fd counts before it
// slices anything; DeserializeEndpoint then checks one endpoint record and
// resolves its port on this node. Any failure rejects the whole message with
// an Error naming the field and the rule.
//
//   std::vector<uint8_t> payload = EncodeSystemMessage(user_bytes, attached_count);
//   ...
//   MOAT_ASSIGN_OR_RETURN(ParsedSystemMessage m,
//                         DecodeSystemMessage(msg.payload, msg.ports, msg.fds.size()));
//   for (const HandleRecord& h : m.handles)
//     MOAT_ASSIGN_OR_RETURN(PortRef p, DeserializeEndpoint(h, node, is_bound));
#ifndef MOAT_CORE_SYSTEM_ENDPOINT_SERIALIZATION_H_
#define MOAT_CORE_SYSTEM_ENDPOINT_SERIALIZATION_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "core/decoder_registry.h"
#include "core/error.h"
#include "core/ports/name.h"
#include "core/ports/node.h"
#include "core/ports/port_ref.h"

namespace moat::system {

inline constexpr uint32_t kSystemMessageMagic = 0x4d534f4d;  // "MOSM" as LE bytes
inline constexpr uint32_t kSerializedEndpointMagic = 0x50495045;  // "EPIP" as LE bytes
inline constexpr size_t kSystemHeaderSize = 8;
inline constexpr size_t kHandleHeaderSize = 16;
inline constexpr size_t kSerializedEndpointSize = 8;

enum class HandleType : uint32_t {
  kMessagePipe = 1,
};

// One entry of a decoded handle table, pointing into the message.
struct HandleRecord {
  uint32_t type = 0;  // raw: DeserializeEndpoint checks it
  std::span<const uint8_t> bytes;
  std::span<const ports::PortName> ports;
  size_t num_fds = 0;
};

struct ParsedSystemMessage {
  std::vector<HandleRecord> handles;
  std::span<const uint8_t> user_payload;
  // UserMessage::fds[first_user_fd..] are the embedder's descriptors.
  size_t first_user_fd = 0;
};

// The payload of a message carrying `user_payload` and `num_endpoints`
// message-pipe endpoints (whose ports go, in order, into UserMessage::ports):
// just the user bytes when num_endpoints is 0. Over-limit input is a
// programmer error on the sending side (MOAT_ASSERT).
std::vector<uint8_t> EncodeSystemMessage(std::span<const uint8_t> user_payload,
                                         size_t num_endpoints);
// The same after `headroom` zero bytes (UserMessage::headroom), with capacity
// for `tailroom` more bytes after it: the event that carries the message to
// another node is then serialized around it in place.
std::vector<uint8_t> EncodeSystemMessage(std::span<const uint8_t> user_payload,
                                         size_t num_endpoints, size_t headroom, size_t tailroom);

// Decodes and validates the handle table of a received message (none when
// `ports` is empty: the whole payload is the user's): magic,
// handle count <= MAX_MESSAGE_HANDLE_COUNT, every per-handle count, the sums
// of bytes/ports/fds against what the message really carries (ports must be
// accounted for exactly), and no port named twice. Spans point into
// `payload` and `ports`.
MOAT_DECODER(system_message)
Result<ParsedSystemMessage> DecodeSystemMessage(std::span<const uint8_t> payload,
                                                std::span<const ports::PortName> ports,
                                                size_t num_fds);

// True if a port is already owned by a handle of this process.
using PortBoundCheck = std::function<bool(const ports::PortName&)>;

// R10: a transferred endpoint must be exactly one port, zero descriptors and
// a body of exactly kSerializedEndpointSize bytes with the right magic and
// zero flags, and its port must exist on `node`, be receiving, and not be
// owned by any handle yet (`is_bound`). Returns the port.
MOAT_DECODER(pipe_endpoint)
Result<ports::PortRef> DeserializeEndpoint(const HandleRecord& record, ports::Node& node,
                                           const PortBoundCheck& is_bound);

}  // namespace moat::system

#endif  // MOAT_CORE_SYSTEM_ENDPOINT_SERIALIZATION_H_
