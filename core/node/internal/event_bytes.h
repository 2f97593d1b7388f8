// The one place core/node turns ports events into bytes and back.
//
// Stopgap: core/ports/event_codec.h (the ports engineer's SerializeEvent /
// DeserializeEvent, documented in docs/wire-format-ports.md) had not landed
// when the node channel was built, so this file carries a private, equally
// strict codec. Once event_codec lands, these three functions become thin
// calls into it and this layout goes away.
//
// Layout (little-endian): u32 type, port_name(16), from_port(16), u64
// control_sequence_num, then per type:
//   UserMessage:  u64 sequence_num, u32 payload_size, payload, u32 fd_count,
//                 u32 port_count, port names (16 each), descriptors (97 each:
//                 4 names, 3 u64, bool peer_closed)
//   ObserveProxy: 4 names (proxy node/port, target node/port), u32 hops
//   ObserveProxyAck, ObserveClosure, ReadAckRequest, ReadAck: one u64
//   MergePort:    new_port_name(16), descriptor(97)
//   UpdatePreviousPeer: node(16), port(16)
//   PortAccepted: nothing
//
//   std::vector<UniqueFd> fds;
//   std::vector<uint8_t> out;
//   AppendEventBytes(*event, &out, &fds);                     // fds moved out
//   MOAT_ASSIGN_OR_RETURN(auto event, DecodeEventBytes(body, fds));
#ifndef MOAT_CORE_NODE_INTERNAL_EVENT_BYTES_H_
#define MOAT_CORE_NODE_INTERNAL_EVENT_BYTES_H_

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/decoder_registry.h"
#include "core/error.h"
#include "core/ports/event.h"
#include "core/unique_fd.h"

namespace moat::node {

// Bytes AppendEventBytes will write for `event`.
size_t EventBytesSize(const ports::Event& event);

// Appends `event` to *out; the descriptors of its user message (if any) move
// to *fds, in order.
void AppendEventBytes(ports::Event& event, std::vector<uint8_t>* out, std::vector<UniqueFd>* fds);

// Deserializes one event from peer bytes; takes the descriptors it claims out
// of `fds` (all of them must be claimed). Strict: declared type, exact size,
// counts within limits, booleans 0/1.
MOAT_DECODER(node_event)
Result<std::unique_ptr<ports::Event>> DecodeEventBytes(std::span<const uint8_t> bytes,
                                                       std::vector<UniqueFd>& fds);

}  // namespace moat::node

#endif  // MOAT_CORE_NODE_INTERNAL_EVENT_BYTES_H_
