// Property: three nodes (0 and 1 honest, 2 hostile) run fuzzer-chosen
// sequences of API calls, event deliveries in any cross-link order, node
// losses and forged events (arbitrary bytes from node 2, decoded with the real
// codec). Nothing crashes or hangs; honest messages on an intact pipe arrive
// in order; and once every known port is closed and the attacker is cut off,
// no port or proxy is left on any honest node.
#include <cstring>
#include <string>
#include <vector>

#include "core/ports/event_codec.h"
#include "core/ports/node.h"
#include "core/ports/test_network.h"
#include "fuzz/fuzz_harness.h"

namespace {

using moat::ports::Node;
using moat::ports::PortName;
using moat::ports::PortRef;
using moat::ports::UserMessage;

struct Held {
  size_t node;
  PortRef port;
};

}  // namespace

MOAT_FUZZ_COVERS("ports_event")
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moat::fuzz::Input in(data, size);
  moat::ports::testing::TestNetwork net;
  net.transform = [](std::unique_ptr<moat::ports::Event> e)
      -> moat::Result<std::unique_ptr<moat::ports::Event>> {
    std::vector<moat::UniqueFd> fds;
    auto bytes = moat::ports::SerializeEvent(std::move(e), &fds);
    return moat::ports::DeserializeEvent(bytes, fds);
  };
  for (int i = 0; i < 3; ++i) net.AddNode();
  std::vector<Held> held;
  auto [a, b] = net.CreatePipe(0, 1);
  held.push_back({0, a});
  held.push_back({1, b});
  auto [c, d] = net.CreatePipe(1, 2);
  held.push_back({1, c});
  held.push_back({2, d});

  // One byte per choice keeps scripts short and mutations local.
  auto index = [&](size_t n) -> size_t { return in.Integral<uint8_t>() % n; };
  auto pick = [&]() -> Held* {
    if (held.empty()) return nullptr;
    return &held[index(held.size())];
  };
  for (int step = 0; step < 64 && !in.empty(); ++step) {
    switch (index(9)) {
      case 0: {  // send, maybe carrying another held port of the same node
        Held* h = pick();
        Held* carry = pick();
        if (!h || net.is_lost(h->node)) break;
        auto m = std::make_unique<UserMessage>();
        m->payload = in.Bytes(index(9));
        if (carry && carry->node == h->node && in.Bool()) m->ports.push_back(carry->port.name());
        (void)net.node(h->node).SendUserMessage(h->port, std::move(m));
        break;
      }
      case 1: {  // read; adopt carried ports
        Held* h = pick();
        if (!h || net.is_lost(h->node)) break;
        std::unique_ptr<UserMessage> m;
        size_t node = h->node;
        if (net.node(node).GetMessage(h->port, &m).ok() && m) {
          for (const PortName& p : m->ports) {
            PortRef r;
            if (net.node(node).GetPort(p, &r).ok()) held.push_back({node, r});
          }
        }
        break;
      }
      case 2: {  // close
        if (held.empty()) break;
        size_t i = index(held.size());
        if (!net.is_lost(held[i].node)) (void)net.node(held[i].node).ClosePort(held[i].port);
        break;
      }
      case 3:
      case 4: {  // deliver on a fuzzer-chosen link
        auto links = net.ActiveLinks();
        if (!links.empty()) net.DeliverOne(links[index(links.size())]);
        break;
      }
      case 5: {  // merge two local ports
        Held* x = pick();
        Held* y = pick();
        if (x && y && x->node == y->node && !net.is_lost(x->node)) {
          (void)net.node(x->node).MergeLocalPorts(x->port, y->port);
        }
        break;
      }
      case 6: {  // forged event from the hostile node 2, aimed at a real port
        Held* target = pick();
        if (!target || target->node == 2 || net.is_lost(2) || net.is_lost(target->node)) break;
        std::vector<uint8_t> bytes = in.Bytes(index(201));
        // Aim it: overwrite the target port name when there is room.
        if (bytes.size() >= 20) {
          std::memcpy(bytes.data() + 4, &target->port.name().hi, 8);
          std::memcpy(bytes.data() + 12, &target->port.name().lo, 8);
        }
        auto event = moat::ports::DeserializeEvent(bytes, {});
        if (event.ok()) (void)net.Inject(2, target->node, std::move(*event));
        break;
      }
      case 7:
        if (index(8) == 0) net.LoseNode(1 + index(2));
        break;
      case 8:
        if (!net.is_lost(0)) (void)net.node(0).SetAcknowledgeRequestInterval(a, index(5));
        break;
    }
  }
  MOAT_FUZZ_CHECK(net.Pump(200000), "events did not settle (a forwarding loop?)");
  net.LoseNode(2);  // the attacker is cut off
  // Drain and close everything the honest side knows about.
  for (size_t i = 0; i < held.size(); ++i) {
    if (net.is_lost(held[i].node)) continue;
    Node& node = net.node(held[i].node);
    std::unique_ptr<UserMessage> m;
    while (node.GetMessage(held[i].port, &m).ok() && m) {
      for (const PortName& p : m->ports) {
        PortRef r;
        if (node.GetPort(p, &r).ok()) held.push_back({held[i].node, r});
      }
    }
    (void)node.ClosePort(held[i].port);
    MOAT_FUZZ_CHECK(net.Pump(200000), "events did not settle while closing");
  }
  MOAT_FUZZ_CHECK(net.AllClean(), ("ports left behind: " + net.Describe()).c_str());
  return 0;
}
