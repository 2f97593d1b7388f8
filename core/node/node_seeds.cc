// Seeds for node_channel_fuzzer: real envelopes of every type. The fuzzer
// takes its descriptor-count choice from the END of the input
// (moat::fuzz::Input), so each seed is an envelope followed by that byte.
#include "core/ports/event_codec.h"
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

void NodeChannelSeeds(corpus::SeedSink& sink) {
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

  sink.Add("disconnect",
           WithFdCount(EncodeDisconnectMessage(Header(NodeChannelMessageType::kDisconnect).sender,
                                               Header(NodeChannelMessageType::kDisconnect).target,
                                               "bad message: field 'size' out of range"),
                       0));

  // Real ports events as bodies.
  auto add_event = [&](const std::string& name, ports::Event& event) {
    std::vector<UniqueFd> fds;
    const std::vector<uint8_t> body = ports::SerializeEvent(event, &fds);
    sink.Add("event_" + name,
             WithFdCount(EncodeNodeChannelMessage(Header(NodeChannelMessageType::kEvent), body), 0));
  };
  const ports::PortName p1{1, 2}, p2{3, 4};
  const ports::NodeName n1{5, 6}, n2{7, 8};
  {
    auto msg = std::make_unique<ports::UserMessage>();
    msg->payload = {'h', 'e', 'l', 'l', 'o'};
    msg->ports.push_back(ports::PortName{9, 10});
    ports::UserMessageEvent e(p1, p2, 1, 1, std::move(msg));
    ports::PortDescriptor d;
    d.peer_node = n1;
    d.peer_port = p2;
    d.referring_node = n2;
    d.referring_port = p1;
    e.port_descriptors.push_back(d);
    add_event("user_message_with_port", e);
  }
  {
    auto msg = std::make_unique<ports::UserMessage>();
    msg->payload = {1, 2, 3};
    ports::UserMessageEvent e(p1, p2, 3, 2, std::move(msg));
    add_event("user_message", e);
  }
  ports::PortAcceptedEvent accepted(p1, p2);
  add_event("port_accepted", accepted);
  ports::ObserveProxyEvent proxy(p1, p2, 2, n1, p1, n2, p2);
  add_event("observe_proxy", proxy);
  ports::ObserveProxyAckEvent proxy_ack(p1, p2, 2, 7);
  add_event("observe_proxy_ack", proxy_ack);
  ports::ObserveClosureEvent closure(p1, p2, 4, 9);
  add_event("observe_closure", closure);
  ports::MergePortEvent merge(p1, p2, ports::PortDescriptor{});
  add_event("merge_port", merge);
  ports::UserMessageReadAckRequestEvent ack_request(p1, p2, 5, 3);
  add_event("read_ack_request", ack_request);
  ports::UserMessageReadAckEvent ack(p1, p2, 6, 3);
  add_event("read_ack", ack);
  ports::UpdatePreviousPeerEvent update(p1, p2, 7, n1, p1);
  add_event("update_previous_peer", update);

  const std::vector<uint8_t> body(64, 0xab);
  sink.Add("event_64_bytes",
           WithFdCount(EncodeNodeChannelMessage(Header(NodeChannelMessageType::kEvent), body), 0));
  sink.Add("event_with_2_fds", WithFdCount(EncodeNodeChannelMessage(
                                               Header(NodeChannelMessageType::kEvent, 2), body),
                                           2));
}

MOAT_REGISTER_SEEDS(node_channel_fuzzer, NodeChannelSeeds);

}  // namespace
}  // namespace moat::node
