// Property: DecodeNodeChannelMessage never crashes on any bytes and any
// descriptor count; whatever it accepts satisfies the envelope rules
// (declared type, valid distinct names, fd_count equal to the descriptors
// that arrived, per-type field rules) and re-encodes to exactly the same
// bytes (one encoding per message: no "don't care" bits a peer could use to
// smuggle state); whatever it rejects is rejected with a field path or a
// rule naming what broke.
//
// An accepted event envelope without descriptors also has its body decoded
// as a ports event (ports::DeserializeEvent, as NodeController does): never a
// crash. (Event round trips are ports_event_fuzzer's property.)
//
// The first choice (taken from the END of the input, see moat::fuzz::Input)
// is the number of descriptors that "arrived" with the message.
#include <cstring>

#include "core/ports/event_codec.h"
#include "core/node/node_channel.h"
#include "fuzz/fuzz_harness.h"

MOAT_FUZZ_COVERS("node_channel_message")

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moat::fuzz::Input in(data, size);
  const size_t num_fds = in.Integral<uint8_t>();
  std::vector<uint8_t> bytes = in.RemainingBytes();
  auto m = moat::node::DecodeNodeChannelMessage(bytes, num_fds);
  if (!m.ok()) {
    MOAT_FUZZ_CHECK(!m.error().reason().empty(), "a rejection must say why");
    return 0;
  }
  MOAT_FUZZ_CHECK(m->header.fd_count == num_fds, "accepted an fd_count mismatch");
  MOAT_FUZZ_CHECK(m->header.sender.is_valid() && m->header.target.is_valid(),
                  "accepted an invalid name");
  MOAT_FUZZ_CHECK(m->header.sender != m->header.target, "accepted sender == target");
  MOAT_FUZZ_CHECK(m->body.data() >= bytes.data() &&
                      m->body.data() + m->body.size() == bytes.data() + bytes.size(),
                  "body is not the tail of the payload");
  std::vector<uint8_t> again = moat::node::EncodeNodeChannelMessage(m->header, m->body);
  MOAT_FUZZ_CHECK(again == bytes, "accepted message does not re-encode identically");
  if (m->header.type == moat::node::NodeChannelMessageType::kEvent && num_fds == 0) {
    std::vector<moat::UniqueFd> fds;
    auto event = moat::ports::DeserializeEvent(m->body, fds);
    MOAT_FUZZ_CHECK(event.ok() || !event.error().reason().empty(),
                    "an event rejection must say why");
  }
  return 0;
}
