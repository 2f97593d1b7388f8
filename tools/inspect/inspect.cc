// `moat inspect FILE [--as KIND]`: decodes a captured frame stream (default)
// or a single payload of a registered kind, printing every field with its
// byte offset, or the exact error and where it happened. This is what an
// auditor or a person triaging a fuzzer crash reaches for.
//
//   moat inspect samples/hello.moat
//   moat inspect crash-1234 --as frame_header
//   moat inspect --list
//
// A relative FILE is relative to where the command was run: under `bazel
// run` that is BUILD_WORKING_DIRECTORY, not the runfiles tree.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "core/frame.h"
#include "core/stream_reassembler.h"
#include "tools/inspect/inspector.h"
#include "tools/cli/command.h"

namespace moat::tools {

std::map<std::string, Inspector>& Inspectors() {
  static auto* inspectors = new std::map<std::string, Inspector>();
  return *inspectors;
}

namespace {

std::string Hex(std::span<const uint8_t> bytes, size_t max) {
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

const char* FrameTypeName(FrameType t) {
  switch (t) {
    case FrameType::kMessage: return "MESSAGE";
    case FrameType::kFdAck: return "FD_ACK";
  }
  return "?";
}

void PrintError(const char* what, const Error& e) {
  std::printf("error: %s: [%s] %s\n", what, std::string(ErrorCodeName(e.code())).c_str(),
              e.ToString().c_str());
}

// Inspects `bytes` as the frame stream a peer sent: every frame's header
// fields, its payload (through --payload KIND when given), then stream end.
int InspectStream(std::span<const uint8_t> bytes, const std::string& payload_kind) {
  StreamReassembler reassembler;
  if (Status s = reassembler.Append(bytes); !s.ok()) {
    PrintError("stream", s.error());
    return 1;
  }
  FieldPrinter out(stdout);
  size_t index = 0;
  while (true) {
    const uint64_t offset = reassembler.stream_offset();
    auto next = reassembler.Next();
    if (!next.ok()) {
      Error e = std::move(next).error();
      std::printf("frame %zu at byte %llu:\n", index, static_cast<unsigned long long>(offset));
      PrintError("frame header", e);
      return 1;
    }
    if (!next->has_value()) break;
    const ReceivedFrame& frame = **next;
    std::printf("frame %zu at byte %llu:\n", index, static_cast<unsigned long long>(offset));
    out.Field("type", FrameTypeName(frame.header.type));
    out.Field("payload_size", frame.header.payload_size);
    out.Field("fd_count", frame.header.fd_count);
    out.Field("ack_count", frame.header.ack_count);
    if (!frame.payload.empty()) out.Field("payload", Hex(frame.payload, 32));
    if (!payload_kind.empty() && frame.header.type == FrameType::kMessage) {
      auto it = Inspectors().find(payload_kind);
      FieldPrinter nested = out.Nested();
      if (Status s = it->second.inspect(frame.payload, nested); !s.ok()) {
        PrintError(payload_kind.c_str(), s.error());
        return 1;
      }
    }
    ++index;
  }
  if (Status s = reassembler.Finish(); !s.ok()) {
    std::printf("end of stream after %zu frames:\n", index);
    PrintError("stream end", s.error());
    return 1;
  }
  std::printf("%zu frames, %zu bytes, stream ends cleanly\n", index, bytes.size());
  return 0;
}

constexpr char kUsage[] =
    "usage: moat inspect FILE [--as KIND] [--payload KIND]\n"
    "       moat inspect --list      the KINDs: one per fuzz target's input, and more\n"
    "  FILE            a captured frame stream (default), or a payload of --as KIND\n"
    "  --as KIND       decode FILE as one KIND instead of a frame stream\n"
    "  --payload KIND  decode every MESSAGE frame's payload of the stream as KIND\n";

int Run(int argc, char** argv) {
  std::string path, as = "stream", payload_kind;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--list") {
      std::printf("stream        a captured moat frame stream (default)\n");
      for (const auto& [name, inspector] : Inspectors()) {
        std::printf("%-13s %s\n", name.c_str(), inspector.summary.c_str());
      }
      return 0;
    } else if (arg == "--as" && i + 1 < argc) {
      as = argv[++i];
    } else if (arg == "--payload" && i + 1 < argc) {
      payload_kind = argv[++i];
    } else if (path.empty() && arg[0] != '-') {
      path = arg;
    } else {
      path.clear();
      break;
    }
  }
  if (path.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const char* cwd = std::getenv("BUILD_WORKING_DIRECTORY");
  const std::string open_path = (cwd != nullptr && path[0] != '/') ? std::string(cwd) + "/" + path : path;
  std::ifstream file(open_path, std::ios::binary);
  if (!file) {
    std::fprintf(stderr, "moat inspect: cannot open %s\n", path.c_str());
    return 2;
  }
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  std::printf("%s: %zu bytes\n", path.c_str(), bytes.size());
  if (!payload_kind.empty() && !Inspectors().count(payload_kind)) {
    std::fprintf(stderr, "moat inspect: unknown kind '%s' (see --list)\n", payload_kind.c_str());
    return 2;
  }
  if (as == "stream") return InspectStream(bytes, payload_kind);
  auto it = Inspectors().find(as);
  if (it == Inspectors().end()) {
    std::fprintf(stderr, "moat inspect: unknown kind '%s' (see --list)\n", as.c_str());
    return 2;
  }
  FieldPrinter out(stdout);
  if (Status s = it->second.inspect(bytes, out); !s.ok()) {
    PrintError(as.c_str(), s.error());
    return 1;
  }
  return 0;
}

}  // namespace

MOAT_COMMAND(inspect, "decode a captured frame stream or fuzzer input; print every field or the exact error", Run);

// A bare frame header (e.g. a frame_header_fuzzer input).
MOAT_INSPECTOR(frame_header, "one 24-byte frame header (frame_header_fuzzer inputs)",
               [](std::span<const uint8_t> bytes, FieldPrinter& out) -> Status {
                 auto h = DecodeFrameHeader(bytes, limits::ConnectionLimits::Defaults());
                 if (!h.ok()) return std::move(h).error();
                 out.Field("type", FrameTypeName(h->type));
                 out.Field("payload_size", h->payload_size);
                 out.Field("fd_count", h->fd_count);
                 out.Field("ack_count", h->ack_count);
                 return OkStatus();
               });

}  // namespace moat::tools
