// Seeds for node_channel_fuzzer: real envelopes of every type. The fuzzer
// takes its descriptor-count choice from the END of the input
// (moat::fuzz::Input), so each seed is an envelope followed by that byte.
#include "core/node/node_channel.h"
#include "corpus/seed_registry.h"

namespace moat::node {
namespace {

std::vector<uint8_t> WithFdCount(std::vector<uint8_t> wire, uint8_t fds) {
  wire.push_back(fds);
  return wire;
}

NodeChannelHeader Header(NodeChannelMessageType type, uint32_t fds = 0) {
  NodeChannelHeader h;
  h.type = type;
  h.sender = ports::NodeName{0x1111111111111111, 0x2222222222222222};
  h.target = ports::NodeName{0x3333333333333333, 0x4444444444444444};
  h.fd_count = fds;
  return h;
}

MOAT_REGISTER_SEEDS(node_channel_fuzzer, [](corpus::SeedSink& sink) {
  NodeChannelHeader hello = Header(NodeChannelMessageType::kHello);
  hello.subject_hi = 0x5555555555555555;
  hello.subject_lo = 0x6666666666666666;
  sink.Add("hello", WithFdCount(EncodeNodeChannelMessage(hello), 0));

  NodeChannelHeader reply = Header(NodeChannelMessageType::kHelloReply);
  std::swap(reply.sender, reply.target);
  sink.Add("hello_reply", WithFdCount(EncodeNodeChannelMessage(reply), 0));

  NodeChannelHeader lost = Header(NodeChannelMessageType::kNodeLost);
  lost.subject_hi = 0x7777777777777777;
  lost.subject_lo = 0x8888888888888888;
  sink.Add("node_lost", WithFdCount(EncodeNodeChannelMessage(lost), 0));

  const std::vector<uint8_t> body(64, 0xab);
  sink.Add("event_64_bytes",
           WithFdCount(EncodeNodeChannelMessage(Header(NodeChannelMessageType::kEvent), body), 0));
  sink.Add("event_with_2_fds", WithFdCount(EncodeNodeChannelMessage(
                                               Header(NodeChannelMessageType::kEvent, 2), body),
                                           2));
});

}  // namespace
}  // namespace moat::node
