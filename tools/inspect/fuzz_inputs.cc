// `moat inspect --as KIND` for the input of every fuzz target (KIND is the
// target's name without "_fuzzer"; `moat fuzz` prints that command for each
// crash it finds). Each inspector reads the input exactly as its target does
// (moat::fuzz::Input: selectors from the end, payload from the front) and
// prints what the target would do with it: the decoded fields or the
// decoder's exact error, or for script-driven targets the selectors and the
// steps. //tools/inspect:inspectors_test checks every target has one.
//
// Keep each in step with its fuzz/<target>.cc when the target's input layout
// changes.
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/codec/codec.h"
#include "core/codec/testing/test_schema.h"
#include "core/frame.h"
#include "core/node/node_channel.h"
#include "core/ports/event_codec.h"
#include "core/stream_reassembler.h"
#include "fuzz/fuzz_harness.h"
#include "tools/inspect/inspector.h"
#include "transport/fd_ack.h"

namespace moat::tools {
namespace {

using Bytes = std::span<const uint8_t>;

std::string Hex(Bytes bytes, size_t max = 32) {
  std::string out;
  char buf[4];
  for (size_t i = 0; i < bytes.size() && i < max; ++i) {
    std::snprintf(buf, sizeof(buf), "%02x", bytes[i]);
    if (i) out += ' ';
    out += buf;
  }
  if (bytes.size() > max) out += " ...";
  return out;
}

std::vector<UniqueFd> DevNulls(size_t n) {
  std::vector<UniqueFd> fds;
  for (size_t i = 0; i < n; ++i) fds.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  return fds;
}

const char* NodeChannelTypeName(node::NodeChannelMessageType t) {
  switch (t) {
    case node::NodeChannelMessageType::kHello: return "HELLO";
    case node::NodeChannelMessageType::kHelloReply: return "HELLO_REPLY";
    case node::NodeChannelMessageType::kEvent: return "EVENT";
    case node::NodeChannelMessageType::kNodeLost: return "NODE_LOST";
    case node::NodeChannelMessageType::kDisconnect: return "DISCONNECT";
  }
  return "?";
}

// The event a payload decodes to, or the decoder's error.
Status PrintEvent(Bytes bytes, size_t fd_count, FieldPrinter& out) {
  std::vector<UniqueFd> fds = DevNulls(fd_count);
  MOAT_ASSIGN_OR_RETURN(std::unique_ptr<ports::Event> event, ports::DeserializeEvent(bytes, fds));
  out.Field("event", std::string(ports::EventTypeName(event->type())));
  out.Field("event_bytes", bytes.size());
  return OkStatus();
}

}  // namespace

// fuzz/node_channel_fuzzer.cc: last byte the descriptor count, the rest one
// node-channel envelope.
Status Inspect_node_channel(Bytes data, FieldPrinter& out) {
  fuzz::Input in(data.data(), data.size());
  const size_t num_fds = in.Integral<uint8_t>();
  std::vector<uint8_t> bytes = in.RemainingBytes();
  out.Field("num_fds", num_fds);
  out.Field("envelope_bytes", bytes.size());
  MOAT_ASSIGN_OR_RETURN(node::NodeChannelMessage m,
                        node::DecodeNodeChannelMessage(bytes, num_fds));
  out.Field("type", NodeChannelTypeName(m.header.type));
  out.Field("sender", m.header.sender.ToString());
  out.Field("target", m.header.target.ToString());
  out.Field("subject", m.header.subject_port().ToString());
  out.Field("fd_count", m.header.fd_count);
  out.Field("body", Hex(m.body));
  if (m.header.type == node::NodeChannelMessageType::kEvent && num_fds == 0) {
    FieldPrinter nested = out.Nested();
    return PrintEvent(m.body, 0, nested);
  }
  if (m.header.type == node::NodeChannelMessageType::kDisconnect) {
    out.Field("reason", std::string(m.body.begin(), m.body.end()));  // validated UTF-8
  }
  return OkStatus();
}
MOAT_INSPECTOR(node_channel,
               "node_channel_fuzzer input: a node-channel envelope (+ fd count byte)",
               Inspect_node_channel);

// fuzz/ports_event_fuzzer.cc: last byte the descriptor count (0..3), the rest
// one serialized ports event.
Status Inspect_ports_event(Bytes data, FieldPrinter& out) {
  fuzz::Input in(data.data(), data.size());
  const int fd_count = in.InRange<uint8_t>(0, 3);
  std::vector<uint8_t> bytes = in.RemainingBytes();
  out.Field("fd_count", fd_count);
  out.Field("payload", Hex(bytes));
  return PrintEvent(bytes, static_cast<size_t>(fd_count), out);
}
MOAT_INSPECTOR(ports_event,
               "ports_event_fuzzer input: a serialized ports event (+ fd count byte)",
               Inspect_ports_event);

namespace {

template <typename T>
Status DecodeAs(const char* type, Bytes payload, size_t fd_count, size_t handle_count,
                FieldPrinter& out) {
  out.Field("decode_as", type);
  std::vector<UniqueFd> fds = DevNulls(fd_count);
  std::vector<uint64_t> handles;
  for (size_t i = 0; i < handle_count; ++i) handles.push_back(1000 + i);
  MOAT_ASSIGN_OR_RETURN(T value, DecodeMessage<T>(payload, fds, handles));
  (void)value;
  out.Field("result", "decoded (the target then checks it re-encodes byte-identically)");
  return OkStatus();
}

}  // namespace

// fuzz/codec_decode_fuzzer.cc: selector, fd count, handle count (from the
// end), the rest one codec message of the test schema type the selector picks.
Status Inspect_codec_decode(Bytes data, FieldPrinter& out) {
  using namespace codec_testing;  // NOLINT
  fuzz::Input in(data.data(), data.size());
  const uint8_t selector = in.Integral<uint8_t>();
  const size_t fd_count = in.Integral<uint8_t>() % 4;
  const size_t handle_count = in.Integral<uint8_t>() % 4;
  const Bytes payload = in.BytesView(in.remaining());
  out.Field("fd_count", fd_count);
  out.Field("handle_count", handle_count);
  out.Field("payload", Hex(payload));
  switch (selector % 6) {
    case 0: return DecodeAs<Carrier>("Carrier", payload, fd_count, handle_count, out);
    case 1: return DecodeAs<Rich>("Rich", payload, fd_count, handle_count, out);
    case 2: return DecodeAs<Envelope>("Envelope", payload, fd_count, handle_count, out);
    case 3: return DecodeAs<Node>("Node", payload, fd_count, handle_count, out);
    case 4:
      return DecodeAs<std::map<std::string, std::vector<Choice>>>(
          "map<string, vector<Choice>>", payload, fd_count, handle_count, out);
    default:
      return DecodeAs<std::vector<std::optional<Choice>>>(
          "vector<optional<Choice>>", payload, fd_count, handle_count, out);
  }
}
MOAT_INSPECTOR(codec_decode,
               "codec_decode_fuzzer input: a codec message of a test-schema type",
               Inspect_codec_decode);

namespace {

// fuzz/stream_reassembler_fuzzer.cc's ChooseLimits.
limits::ConnectionLimits ReassemblerLimits(uint8_t selector) {
  using limits::ConnectionLimits;
  if (selector == 0) return ConnectionLimits::Defaults();
  return ConnectionLimits::Defaults().Tightened({
      .max_message_payload_size = 64u << (selector & 7),
      .max_message_fd_count = static_cast<uint32_t>((selector >> 3) & 7),
      .max_unprocessed_bytes = 256u << ((selector >> 3) & 7),
      .max_unprocessed_fds = static_cast<uint32_t>(((selector >> 6) & 3) * 4),
  });
}

}  // namespace

// fuzz/stream_reassembler_fuzzer.cc: a limits selector, then chunks (two
// bytes from the end: length and descriptor count; the chunk's bytes from the
// front) fed to one StreamReassembler.
Status Inspect_stream_reassembler(Bytes data, FieldPrinter& out) {
  fuzz::Input in(data.data(), data.size());
  const limits::ConnectionLimits limits = ReassemblerLimits(in.Integral<uint8_t>());
  out.Field("max_payload", limits.max_message_payload_size);
  out.Field("max_fds", limits.max_message_fd_count);
  out.Field("max_unprocessed", limits.max_unprocessed_bytes);
  out.Field("max_unproc_fds", limits.max_unprocessed_fds);
  StreamReassembler reassembler(limits);
  for (size_t chunk = 0; !in.empty(); ++chunk) {
    const uint8_t a = in.Integral<uint8_t>();
    const uint8_t b = in.Integral<uint8_t>();
    const size_t length = static_cast<size_t>(a) | (static_cast<size_t>(b >> 4) << 8);
    const Bytes bytes = in.BytesView(length);
    out.Line("chunk " + std::to_string(chunk) + ": " + std::to_string(bytes.size()) +
             " bytes, " + std::to_string(b & 7) + " fds");
    MOAT_TRY(reassembler.Append(bytes, DevNulls(b & 7)));
    while (true) {
      MOAT_ASSIGN_OR_RETURN(std::optional<ReceivedFrame> frame, reassembler.Next());
      if (!frame.has_value()) break;
      out.Nested().Line("frame: payload " + std::to_string(frame->payload.size()) +
                        " bytes, " + std::to_string(frame->fds.size()) + " fds, ack " +
                        std::to_string(frame->header.ack_count));
    }
  }
  return reassembler.Finish();
}
MOAT_INSPECTOR(stream_reassembler,
               "stream_reassembler_fuzzer input: limits + chunks of a frame stream",
               Inspect_stream_reassembler);

// fuzz/fd_ack_state_fuzzer.cc: a window, then operations on one FdAckState,
// replayed here with each step and its outcome.
Status Inspect_fd_ack_state(Bytes data, FieldPrinter& out) {
  fuzz::Input in(data.data(), data.size());
  const uint32_t window = in.InRange<uint32_t>(1, 64);
  out.Field("window", window);
  transport::FdAckState acks(window);
  for (int step = 0; !in.empty() && step < 4096; ++step) {
    const uint8_t op = in.Integral<uint8_t>();
    std::string line = "step " + std::to_string(step) + ": ";
    switch (op % 5) {
      case 0: {
        const uint32_t k = in.InRange<uint32_t>(0, 8);
        line += "send " + std::to_string(k) + " fds";
        if (acks.CanSend(k)) {
          acks.OnSent(DevNulls(k));
        } else {
          line += " (window full: skipped)";
        }
        break;
      }
      case 1:
      case 4: {
        const uint32_t n = (op % 5 == 1) ? in.Integral<uint32_t>()
                                         : in.InRange<uint32_t>(
                                               0, static_cast<uint32_t>(acks.retained() + 1));
        line += "ack " + std::to_string(n);
        Status s = acks.OnAckReceived(n);
        if (!s.ok()) line += " -> rejected: " + s.error().ToString();
        break;
      }
      case 2: {
        const uint32_t n = (op & 0x80) ? in.Integral<uint32_t>() : in.InRange<uint32_t>(0, 128);
        line += "received " + std::to_string(n) + " fds";
        Status s = acks.OnFdsReceived(n);
        if (!s.ok()) line += " -> rejected: " + s.error().ToString();
        break;
      }
      case 3:
        line += "take pending acks: " + std::to_string(acks.TakePendingAcks());
        break;
    }
    out.Line(line + "   [retained " + std::to_string(acks.retained()) + "]");
  }
  return OkStatus();
}
MOAT_INSPECTOR(fd_ack_state,
               "fd_ack_state_fuzzer input: a window and FdAckState operations",
               Inspect_fd_ack_state);

namespace {

// The round-trip targets (fuzz/internal/codec_value_builder.h RunRoundTrip):
// a value kind and a cut point from the end; the rest are the builder's
// choices for the value.
Status PrintRoundTrip(Bytes data, const std::vector<const char*>& kinds, FieldPrinter& out) {
  fuzz::Input in(data.data(), data.size());
  const uint8_t kind = in.Integral<uint8_t>() % static_cast<uint8_t>(kinds.size());
  const uint16_t cut = in.Integral<uint16_t>();
  out.Field("kind", kinds[kind]);
  out.Field("cut", cut);
  out.Field("builder_bytes", in.remaining());
  out.Line("(the value is built from these choices and round-tripped;");
  out.Line(" replay the target to see a failure)");
  return OkStatus();
}

}  // namespace

Status Inspect_codec_scalar_roundtrip(Bytes data, FieldPrinter& out) {
  return PrintRoundTrip(data,
                        {"u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64", "bool",
                         "double", "Color", "Wide", "string", "bytes"},
                        out);
}
MOAT_INSPECTOR(codec_scalar_roundtrip,
               "codec_scalar_roundtrip_fuzzer input: kind, cut, value choices",
               Inspect_codec_scalar_roundtrip);
Status Inspect_codec_container_roundtrip(Bytes data, FieldPrinter& out) {
  return PrintRoundTrip(data,
                        {"Numbers", "Items", "Attributes", "Envelopes", "MaybeItem",
                         "MaybeMaybe", "Choice", "Choices", "Item", "Envelope"},
                        out);
}
MOAT_INSPECTOR(codec_container_roundtrip,
               "codec_container_roundtrip_fuzzer input: kind, cut, value choices",
               Inspect_codec_container_roundtrip);
Status Inspect_codec_struct_roundtrip(Bytes data, FieldPrinter& out) {
  return PrintRoundTrip(data, {"Node (depth 4 tree)", "Subset", "Rich"}, out);
}
MOAT_INSPECTOR(codec_struct_roundtrip,
               "codec_struct_roundtrip_fuzzer input: kind, cut, value choices",
               Inspect_codec_struct_roundtrip);

// fuzz/ports_node_fuzzer.cc: a script of up to 64 steps (one choice byte
// each from the end, then the step's own choices) over three nodes.
Status Inspect_ports_node(Bytes data, FieldPrinter& out) {
  static const char* const kSteps[9] = {
      "send", "read", "close", "deliver", "deliver", "merge", "forged event from node 2",
      "maybe lose a node", "set ack interval"};
  fuzz::Input in(data.data(), data.size());
  out.Field("script_bytes", data.size());
  // The first step's choice is the last byte; later steps' choices
  // depend on the state, so only the first is certain.
  if (!in.empty()) out.Field("first_step", kSteps[in.Integral<uint8_t>() % 9]);
  out.Field("tail", Hex(data.subspan(data.size() > 32 ? data.size() - 32 : 0)));
  out.Line("(steps after the first depend on the run; replay the target to see them)");
  return OkStatus();
}
MOAT_INSPECTOR(ports_node,
               "ports_node_fuzzer input: a script of ports operations over three nodes",
               Inspect_ports_node);

// fuzz/system_endpoint_fuzzer.cc: mode, port kinds and descriptor count from
// the end, then the serialized endpoint (decode mode) or pipe script.
Status Inspect_system_endpoint(Bytes data, FieldPrinter& out) {
  static const char* const kKinds[5] = {"fresh", "missing", "closed", "bound", "duplicate"};
  fuzz::Input in(data.data(), data.size());
  const uint8_t mode = in.Integral<uint8_t>();
  const size_t num_ports = in.InRange<uint8_t>(0, 4);
  std::string kinds;
  for (size_t i = 0; i < num_ports; ++i) {
    kinds += std::string(i ? ", " : "") + kKinds[in.InRange<uint8_t>(0, 4)];
  }
  const size_t num_fds = in.InRange<uint8_t>(0, 3);
  out.Field("mode", (mode & 1) ? "pipe (endpoints sent over a pipe)" : "decode");
  out.Field("num_ports", num_ports);
  out.Field("port_kinds", kinds.empty() ? "(none)" : kinds);
  out.Field("num_fds", num_fds);
  out.Field("rest", Hex(data.first(in.remaining())));
  return OkStatus();
}
MOAT_INSPECTOR(system_endpoint,
               "system_endpoint_fuzzer input: mode, port kinds, fd count, payload",
               Inspect_system_endpoint);

// fuzz/shared_memory_region_fuzzer.cc: the candidate descriptor and the size
// the sender declares for it, from the end.
Status Inspect_shared_memory_region(Bytes data, FieldPrinter& out) {
  static const char* const kKinds[4] = {"memfd (sealable)", "memfd (no sealing)", "pipe",
                                        "/dev/null"};
  fuzz::Input in(data.data(), data.size());
  const uint8_t kind = in.InRange<uint8_t>(0, 3);
  uint64_t real_size = in.InRange<uint32_t>(0, 1 << 16);
  const uint8_t seal_bits = in.Integral<uint8_t>();
  if (kind >= 2) real_size = 0;
  std::string seals;
  if (kind == 0) {
    if (seal_bits & 1) seals += "SHRINK ";
    if (seal_bits & 2) seals += "GROW ";
    if (seal_bits & 4) seals += "WRITE ";
    if (seal_bits & 8) seals += "SEAL ";
  }
  uint64_t declared = real_size;
  switch (in.InRange<uint8_t>(0, 3)) {
    case 0: break;
    case 1: declared += in.InRange<uint64_t>(1, 1 << 20); break;
    case 2: declared -= std::min<uint64_t>(declared, in.InRange<uint64_t>(1, 1 << 20)); break;
    default: declared = in.Integral<uint64_t>(); break;
  }
  out.Field("descriptor", kKinds[kind]);
  out.Field("real_size", real_size);
  out.Field("seals", seals.empty() ? "(none)" : seals);
  out.Field("declared_size", declared);
  out.Field("send_fd", in.InRange<uint8_t>(0, 7) != 0 ? "yes" : "no");
  return OkStatus();
}
MOAT_INSPECTOR(shared_memory_region,
               "shared_memory_region_fuzzer input: a candidate descriptor and a declared size",
               Inspect_shared_memory_region);

// fuzz/ports_adversary_fuzzer.cc: up to 48 steps over honest nodes 0, 1
// and an attacker node 2 (core/ports/testing/adversary.h: OpKind), each a
// kind byte then its choices, from the end. Later steps' choices depend on
// the kinds (a forgery takes 15 more), so only the first step is certain.
Status Inspect_ports_adversary(Bytes data, FieldPrinter& out) {
  static const char* const kKinds[14] = {
      "create pipe", "send", "read", "close", "give to attacker", "pass through attacker",
      "attacker returns an end", "attacker pipe", "attacker uses its end", "deliver", "pump",
      "set ack interval", "forge an event", "lose the attacker"};
  fuzz::Input in(data.data(), data.size());
  out.Field("script_bytes", data.size());
  if (!in.empty()) out.Field("first_step", kKinds[in.Integral<uint8_t>() % 14]);
  out.Field("tail", Hex(data.subspan(data.size() > 32 ? data.size() - 32 : 0)));
  out.Line("(steps after the first depend on the run; replay the target to see them)");
  return OkStatus();
}
MOAT_INSPECTOR(ports_adversary,
               "ports_adversary_fuzzer input: a script of honest, attacker and forged ports steps",
               Inspect_ports_adversary);

// fuzz/ring_reader_fuzzer.cc: up to 256 ops (op choice from the end, bulk
// bytes from the front) of a writer, a reader and a scribbling peer on one
// ring. Later ops consume arguments, so only the first op is certain.
Status Inspect_ring_reader(Bytes data, FieldPrinter& out) {
  static const char* const kOps[9] = {"write", "read", "scribble head", "scribble tail",
                                      "scribble byte", "arm length hook", "scribble length",
                                      "ring image", "adopt memfd"};
  fuzz::Input in(data.data(), data.size());
  out.Field("script_bytes", data.size());
  if (!in.empty()) out.Field("first_op", kOps[in.InRange<uint8_t>(0, 8)]);
  out.Field("tail", Hex(data.subspan(data.size() > 32 ? data.size() - 32 : 0)));
  out.Line("(ops after the first depend on their arguments; replay the target to see them)");
  return OkStatus();
}
MOAT_INSPECTOR(ring_reader,
               "ring_reader_fuzzer input: ops of a ring writer, reader and scribbling peer",
               Inspect_ring_reader);

}  // namespace moat::tools
