// Property: DecodeSystemMessage and DeserializeEndpoint never crash, never
// read outside the message, and accept only what R10 allows: the decoded
// table accounts for every port exactly once and stays inside the payload and
// the real descriptor count; an accepted endpoint is exactly one port, zero
// descriptors and an 8-byte body, and its port is a live receiving port of
// the node that no handle owns. In the second mode the same bytes arrive
// through a real pipe and Core::ReadMessage: a hostile message is rejected
// with an error and leaves no handle, port or descriptor behind.
//
// Input: choices from the end (mode, port count, each port's kind, fd count),
// the message payload from the front.
#include <fcntl.h>
#include <unistd.h>

#include <memory>
#include <set>
#include <vector>

#include "core/ports/node.h"
#include "core/system/core.h"
#include "core/system/endpoint_serialization.h"
#include "fuzz/fuzz_harness.h"

namespace {

using moat::ports::PortName;
using moat::ports::PortRef;
using moat::system::Core;

class NullDelegate : public moat::ports::NodeDelegate {
 public:
  void ForwardEvent(const moat::ports::NodeName&, std::unique_ptr<moat::ports::Event>) override {}
  void PortStatusChanged(const PortRef&) override {}
};

enum PortKind : uint8_t { kFresh = 0, kMissing, kClosed, kBound, kDuplicate, kKindCount };

void DecodeMode(moat::fuzz::Input& in, size_t num_ports, size_t num_fds,
                const std::vector<uint8_t>& kinds) {
  static NullDelegate delegate;
  static moat::ports::Node* const node =
      new moat::ports::Node(moat::ports::NodeName::Random(), &delegate);
  const size_t ports_before = node->port_count();

  std::vector<PortRef> to_close;
  std::vector<PortName> names;
  std::set<PortName> bound;
  std::set<PortName> fresh;
  for (size_t i = 0; i < num_ports; ++i) {
    PortRef a, b;
    switch (kinds[i]) {
      case kMissing:
        names.push_back(PortName::Random());
        break;
      case kDuplicate:
        if (!names.empty()) {
          names.push_back(names.back());
          break;
        }
        [[fallthrough]];
      default:
        MOAT_FUZZ_CHECK(node->CreatePortPair(&a, &b).ok(), "CreatePortPair");
        to_close.push_back(b);
        names.push_back(a.name());
        if (kinds[i] == kClosed) {
          (void)node->ClosePort(a);
        } else {
          to_close.push_back(a);
          // kFresh, or kDuplicate with nothing to duplicate: a live unowned port.
          if (kinds[i] == kBound) {
            bound.insert(a.name());
          } else {
            fresh.insert(a.name());
          }
        }
    }
  }
  std::vector<uint8_t> payload = in.RemainingBytes();
  auto parsed = moat::system::DecodeSystemMessage(payload, names, num_fds);
  if (parsed.ok()) {
    size_t ports_seen = 0;
    size_t fds_seen = 0;
    for (const auto& h : parsed->handles) {
      MOAT_FUZZ_CHECK(h.bytes.data() >= payload.data() &&
                          h.bytes.data() + h.bytes.size() <= payload.data() + payload.size(),
                      "handle body outside the payload");
      ports_seen += h.ports.size();
      fds_seen += h.num_fds;
      auto port = moat::system::DeserializeEndpoint(
          h, *node, [&](const PortName& n) { return bound.count(n) != 0; });
      if (port.ok()) {
        MOAT_FUZZ_CHECK(h.ports.size() == 1 && h.num_fds == 0 &&
                            h.bytes.size() == moat::system::kSerializedEndpointSize,
                        "accepted an endpoint that is not 1 port, 0 fds, 8 bytes");
        MOAT_FUZZ_CHECK(fresh.count(port->name()) == 1,
                        "accepted a port that is missing, closed or owned");
      } else {
        MOAT_FUZZ_CHECK(!port.error().reason().empty(), "rejection without a reason");
      }
    }
    MOAT_FUZZ_CHECK(ports_seen == names.size(), "table does not account for every port");
    MOAT_FUZZ_CHECK(fds_seen == parsed->first_user_fd && fds_seen <= num_fds,
                    "descriptor accounting");
    std::set<PortName> distinct(names.begin(), names.end());
    MOAT_FUZZ_CHECK(distinct.size() == names.size(), "accepted a port named twice");
  } else {
    MOAT_FUZZ_CHECK(!parsed.error().reason().empty(), "rejection without a reason");
  }
  for (auto& p : to_close) (void)node->ClosePort(p);
  MOAT_FUZZ_CHECK(node->port_count() == ports_before, "ports leaked");
}

// The bytes as a message on a real pipe, read through Core.
void PipeMode(moat::fuzz::Input& in, size_t num_ports, size_t num_fds) {
  static Core* const core = new Core();
  auto pipe = core->CreateMessagePipe();
  MOAT_FUZZ_CHECK(pipe.ok(), "CreateMessagePipe");
  auto [a, b] = *pipe;
  const size_t handles_before = core->handle_count();
  // Attach real ports (fresh pipes) so ports accepts the send.
  std::vector<PortRef> spare;
  std::vector<PortName> names;
  for (size_t i = 0; i < num_ports; ++i) {
    PortRef x, y;
    MOAT_FUZZ_CHECK(core->node().CreatePortPair(&x, &y).ok(), "CreatePortPair");
    names.push_back(x.name());
    spare.push_back(y);
  }
  auto message = std::make_unique<moat::ports::UserMessage>();
  message->payload = in.RemainingBytes();
  message->ports = names;
  for (size_t i = 0; i < num_fds; ++i) {
    message->fds.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  }
  auto sender = core->GetEndpoint(a);
  MOAT_FUZZ_CHECK(sender.ok(), "GetEndpoint");
  if (core->node().SendUserMessage((*sender)->port(), std::move(message)).ok()) {
    auto r = core->ReadMessage(b, nullptr, nullptr);
    if (r.ok()) {
      for (auto h : r->handles) MOAT_FUZZ_CHECK(core->Close(h).ok(), "close received handle");
    } else {
      MOAT_FUZZ_CHECK(!r.error().reason().empty(), "rejection without a reason");
    }
  }
  MOAT_FUZZ_CHECK(core->handle_count() == handles_before, "handles leaked");
  MOAT_FUZZ_CHECK(core->Close(a).ok() && core->Close(b).ok(), "close pipe");
  for (auto& p : spare) (void)core->node().ClosePort(p);
}

}  // namespace

MOAT_FUZZ_COVERS("system_message", "pipe_endpoint")
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moat::fuzz::Input in(data, size);
  const uint8_t mode = in.Integral<uint8_t>();
  const size_t num_ports = in.InRange<uint8_t>(0, 4);
  std::vector<uint8_t> kinds;
  for (size_t i = 0; i < num_ports; ++i) kinds.push_back(in.InRange<uint8_t>(0, kKindCount - 1));
  const size_t num_fds = in.InRange<uint8_t>(0, 3);
  if (mode & 1) {
    PipeMode(in, num_ports, num_fds);
  } else {
    DecodeMode(in, num_ports, num_fds, kinds);
  }
  return 0;
}
