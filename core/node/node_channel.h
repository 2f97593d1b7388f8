// The node channel: the envelope of every message two nodes (processes)
// exchange over a moat Transport (R24).
//
// One transport message = one envelope. Its layout (little-endian, no
// padding; this comment is the reference):
//
//   u8  type         NodeChannelMessageType (only declared values)
//   u64 sender.hi, sender.lo      node that produced the message
//   u64 target.hi, target.lo      node it is for
//   u64 subject.hi, subject.lo    hello: the broker's bootstrap port;
//                                 node_lost: the lost node; else all zero
//   u32 fd_count     descriptors riding with the transport message
//   u32 body_size    bytes that follow (events and disconnects; else 0)
//   body             event: a serialized ports event (core/ports/event_codec.h)
//                    disconnect: the reason, UTF-8 text
//
// Decoding is strict: exactly one encoding per message (so the fuzzer can
// require a byte-identical re-encoding), no trailing bytes, fd_count equal
// to the descriptors that really arrived, and per-type rules on which fields
// may be set. Who may send what (a child may only speak as itself, only the
// broker introduces names and reports lost nodes) is checked by
// NodeController, which knows the connection's authenticated name.
//
//   std::vector<uint8_t> wire = EncodeNodeChannelMessage(header, event_bytes);
//   ...
//   MOAT_ASSIGN_OR_RETURN(NodeChannelMessage m,
//                         DecodeNodeChannelMessage(payload, fds.size()));
//   // m.body is a view into payload.
#ifndef MOAT_CORE_NODE_NODE_CHANNEL_H_
#define MOAT_CORE_NODE_NODE_CHANNEL_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "core/decoder_registry.h"
#include "core/error.h"
#include "core/ports/name.h"

namespace moat::node {

// Wire values are fixed; never renumber.
enum class NodeChannelMessageType : uint8_t {
  // broker -> child, first message: "I am `sender`, you are `target`; merge
  // your bootstrap port with my port `subject`".
  kHello = 1,
  // child -> broker, reply to kHello: "I accept the name `sender`".
  kHelloReply = 2,
  // Either way: a ports event from node `sender` for node `target`. A child
  // sends every event to the broker, which relays events for other children.
  kEvent = 3,
  // broker -> child: "node `subject` is gone" (LostConnectionToNode there).
  kNodeLost = 4,
  // Either way, on a direct connection only, the sender's last message
  // before it closes the connection: "I am cutting you off because `body`"
  // (1..MAX_DISCONNECT_REASON_SIZE bytes of UTF-8). Never relayed. Advice
  // for the receiver's embedder (a bad-message report, a protocol violation
  // we saw); it grants nothing, and a hostile peer may say anything in it.
  kDisconnect = 5,
};
inline constexpr uint8_t kMaxNodeChannelMessageType = 5;
std::string_view NodeChannelMessageTypeName(NodeChannelMessageType type);

// Bytes before the body.
inline constexpr size_t kNodeChannelHeaderSize = 1 + 6 * 8 + 4 + 4;

struct NodeChannelHeader {
  NodeChannelMessageType type = NodeChannelMessageType::kEvent;
  ports::NodeName sender;
  ports::NodeName target;
  // kHello: a PortName (same 128-bit shape); kNodeLost: a NodeName.
  uint64_t subject_hi = 0, subject_lo = 0;
  uint32_t fd_count = 0;

  ports::PortName subject_port() const { return {subject_hi, subject_lo}; }
  ports::NodeName subject_node() const { return {subject_hi, subject_lo}; }
};

// A decoded envelope; `body` points into the decoded payload.
struct NodeChannelMessage {
  NodeChannelHeader header;
  std::span<const uint8_t> body;
};

// Encodes an envelope. Sending-side misuse (rules DecodeNodeChannelMessage
// enforces, or a body over the payload limit) is a programmer error.
std::vector<uint8_t> EncodeNodeChannelMessage(const NodeChannelHeader& header,
                                              std::span<const uint8_t> body = {});

// The same, for a body the caller appends itself (exactly `body_size` bytes)
// to the returned buffer, whose capacity already fits it: large event bodies
// are then written once, in place.
std::vector<uint8_t> BeginNodeChannelMessage(const NodeChannelHeader& header, size_t body_size);

// Writes the envelope header for a `body_size`-byte body into `out` (e.g.
// the prefix left by ports::SerializeEventAfterPrefix). Same checks.
void WriteNodeChannelHeader(const NodeChannelHeader& header, size_t body_size,
                            std::span<uint8_t, kNodeChannelHeaderSize> out);

// A kDisconnect envelope from `sender` to `target` carrying `reason`, made
// fit: bytes that are not UTF-8 become '?', and a reason over
// MAX_DISCONNECT_REASON_SIZE is cut on a character boundary (an empty one
// becomes "no reason given"). Any text can be passed, e.g. an embedder's.
std::vector<uint8_t> EncodeDisconnectMessage(const ports::NodeName& sender,
                                             const ports::NodeName& target,
                                             std::string_view reason);

// Decodes one envelope from a transport message carrying `num_fds`
// descriptors. Rules: declared type; sender and target valid and distinct;
// fd_count == num_fds; kEvent: non-empty body, zero subject; kDisconnect:
// zero subject, no descriptors, a body of 1..MAX_DISCONNECT_REASON_SIZE
// bytes of valid UTF-8; the other types: valid subject, empty body, no
// descriptors; body_size exactly the bytes that remain.
MOAT_DECODER(node_channel_message)
Result<NodeChannelMessage> DecodeNodeChannelMessage(std::span<const uint8_t> payload,
                                                    size_t num_fds);

}  // namespace moat::node

#endif  // MOAT_CORE_NODE_NODE_CHANNEL_H_
