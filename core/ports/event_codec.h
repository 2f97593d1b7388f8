// Serialization of ports events for cross-node transport (R24), byte layout
// in docs/wire-format-ports.md.
//
// The embedder's NodeDelegate::ForwardEvent serializes; the receiving side
// deserializes and calls Node::AcceptEvent. Deserialization is strict: an
// unknown type, a short or long buffer, an unconsumed or missing descriptor,
// too many ports or descriptors, a bool other than 0/1, sequencing fields
// that contradict the event type, or a port descriptor in a state no real
// port can have are all rejected with an Error naming the field.
//
//   std::vector<UniqueFd> fds;
//   std::vector<uint8_t> bytes = SerializeEvent(std::move(event), &fds);
//   ...
//   MOAT_ASSIGN_OR_RETURN(auto event, DeserializeEvent(bytes, fds));
//   MOAT_TRY(node.AcceptEvent(from, std::move(event)));
#ifndef MOAT_CORE_PORTS_EVENT_CODEC_H_
#define MOAT_CORE_PORTS_EVENT_CODEC_H_

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/decoder_registry.h"
#include "core/error.h"
#include "core/ports/event.h"
#include "core/unique_fd.h"

namespace moat::ports {

// Serializes `event`, moving a UserMessage's descriptors into *fds_out.
std::vector<uint8_t> SerializeEvent(std::unique_ptr<Event> event, std::vector<UniqueFd>* fds_out);

// As above, but the result starts with `prefix_size` zero bytes for the
// caller to fill (an envelope header): the event, payload included, is
// encoded once, straight into the buffer that goes on the wire.
std::vector<uint8_t> SerializeEventAfterPrefix(std::unique_ptr<Event> event, size_t prefix_size,
                                               std::vector<UniqueFd>* fds_out);

// As SerializeEvent but leaves `event` intact: descriptors are duplicated (dup()).
std::vector<uint8_t> SerializeEvent(const Event& event, std::vector<UniqueFd>* fds_out);

// Parses one event. Descriptors are moved out of `fds` into the event as
// their slots are read; every one must be used exactly once.
MOAT_DECODER(ports_event)
Result<std::unique_ptr<Event>> DeserializeEvent(std::span<const uint8_t> bytes,
                                                std::span<UniqueFd> fds);

// The same for `bytes` inside `owner`, a buffer the caller gives up: a user
// message's payload is not copied, the message takes `owner` (its payload is
// then owner[headroom..]: UserMessage::headroom). Same checks, same errors;
// on failure, and for other events, `owner` is left as it was.
Result<std::unique_ptr<Event>> DeserializeEventAdopting(std::vector<uint8_t>& owner,
                                                        std::span<const uint8_t> bytes,
                                                        std::span<UniqueFd> fds);

}  // namespace moat::ports

#endif  // MOAT_CORE_PORTS_EVENT_CODEC_H_
