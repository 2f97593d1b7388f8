// Seeds for ports_event_fuzzer (every event type, real SerializeEvent output)
// and ports_node_fuzzer (op scripts).
#include <memory>
#include <string>
#include <vector>

#include "core/ports/event_codec.h"
#include "corpus/seed_registry.h"

namespace moat::ports {
namespace {

// Fixed names so the seeds are reproducible (the generator must be stable).
PortName P(uint64_t n) { return PortName{0x5050000000000000ull | n, n}; }
NodeName N(uint64_t n) { return NodeName{0x4e4e000000000000ull | n, n}; }

PortDescriptor Desc(bool closed) {
  PortDescriptor d;
  d.peer_node = N(1);
  d.peer_port = P(10);
  d.referring_node = N(2);
  d.referring_port = P(11);
  d.next_sequence_num_to_send = 3;
  d.next_sequence_num_to_receive = 2;
  if (closed) {
    d.peer_closed = true;
    d.last_sequence_num_to_receive = 4;
  }
  return d;
}

void Add(corpus::SeedSink& sink, const std::string& name, const Event& e) {
  std::vector<UniqueFd> fds;
  std::vector<uint8_t> bytes = SerializeEvent(e, &fds);
  // ports_event_fuzzer reads its descriptor count from the last byte.
  bytes.push_back(static_cast<uint8_t>(fds.size()));
  sink.Add(name, std::move(bytes));
}

void EventSeeds(corpus::SeedSink& sink) {
  auto m = std::make_unique<UserMessage>();
  m->payload = {'h', 'i'};
  UserMessageEvent plain(P(1), P(2), 1, 1, std::move(m));
  Add(sink, "user_message", plain);
  auto m2 = std::make_unique<UserMessage>();
  m2->payload = {1};
  m2->ports = {P(3), P(4)};
  UserMessageEvent with_ports(P(1), P(2), 2, 2, std::move(m2));
  with_ports.port_descriptors = {Desc(false), Desc(true)};
  Add(sink, "user_message_with_ports", with_ports);
  Add(sink, "port_accepted", PortAcceptedEvent(P(1), P(2)));
  Add(sink, "observe_proxy", ObserveProxyEvent(P(1), P(2), 3, N(1), P(5), N(2), P(6)));
  Add(sink, "observe_proxy_ack", ObserveProxyAckEvent(P(1), P(2), 4, 7));
  Add(sink, "observe_proxy_ack_retry", ObserveProxyAckEvent(P(1), P(2), 4, kInvalidSequenceNum));
  Add(sink, "observe_closure", ObserveClosureEvent(P(1), P(2), 5, 9));
  Add(sink, "merge_port", MergePortEvent(P(1), P(7), Desc(false)));
  Add(sink, "read_ack_request", UserMessageReadAckRequestEvent(P(1), P(2), 6, 4));
  Add(sink, "read_ack", UserMessageReadAckEvent(P(1), P(2), 7, 4));
  Add(sink, "update_previous_peer", UpdatePreviousPeerEvent(P(1), P(2), 8, N(3), P(8)));
  Add(sink, "route_lost", RouteLostEvent(P(1), P(2)));
  Add(sink, "route_lost_far", RouteLostEvent(P(1), P(2), N(3), P(9)));
}
MOAT_REGISTER_SEEDS(ports_event_fuzzer, EventSeeds);

void NodeSeeds(corpus::SeedSink& sink) {
  // Choices are read from the end; payload bytes from the front. These are
  // plain scripts of op choices that exercise send/read/deliver/close.
  std::vector<uint8_t> script;
  for (int i = 0; i < 40; ++i) script.push_back(static_cast<uint8_t>(i * 7 % 9));
  sink.Add("mixed_ops", script);
  std::vector<uint8_t> deliver_heavy(64, 3);
  sink.Add("deliver_heavy", deliver_heavy);
  std::vector<uint8_t> forged;
  std::vector<UniqueFd> fds;
  auto closure = SerializeEvent(ObserveClosureEvent(P(1), P(2), 1, 0), &fds);
  forged.insert(forged.end(), closure.begin(), closure.end());
  forged.push_back(static_cast<uint8_t>(closure.size()));
  forged.push_back(0);
  forged.push_back(6);
  sink.Add("forged_closure", forged);
}
MOAT_REGISTER_SEEDS(ports_node_fuzzer, NodeSeeds);

}  // namespace
}  // namespace moat::ports
