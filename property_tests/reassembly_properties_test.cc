// R29/R4: the stream reassembler (core/stream_reassembler.h) is independent of
// how the stream is chunked.
//
// The model is the list of frames that was sent. A random frame list
// (MESSAGE frames with payloads and real descriptors, standalone FD_ACK
// frames) is serialized into one byte stream, cut at random boundaries, and
// fed chunk by chunk; each frame's descriptors ride with the chunk holding the
// frame's first byte (what the kernel does with a sendmsg that starts with the
// frame header). Draining happens after a random subset of chunks. Whatever
// the cuts:
//   * exactly the sent frames come out, in order, with the same headers,
//     payloads and the very same descriptors (by number);
//   * Finish() is OK at the end and no descriptor leaks.
// And the hostile twin: moving one frame's descriptors to an earlier chunk
// that ends before the frame starts (under-declared by an earlier sender)
// always yields kProtocolViolation, never a crash, never a leak.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/frame.h"
#include "core/stream_reassembler.h"
#include "core/testing/fd_count.h"
#include "core/unique_fd.h"

namespace moat {
namespace {

struct FrameSpec {
  FrameType type = FrameType::kMessage;
  std::vector<uint8_t> payload;
  uint32_t fd_count = 0;
  uint32_t ack_count = 0;
};

std::ostream& operator<<(std::ostream& os, const FrameSpec& f) {
  return os << (f.type == FrameType::kMessage ? "MSG" : "ACK") << "{payload=" << f.payload.size()
            << "B fds=" << f.fd_count << " ack=" << f.ack_count << "}";
}

rc::Gen<FrameSpec> GenFrame() {
  return rc::gen::weightedOneOf<FrameSpec>({
      {5, rc::gen::build<FrameSpec>(
              rc::gen::set(&FrameSpec::type, rc::gen::just(FrameType::kMessage)),
              rc::gen::set(&FrameSpec::payload,
                           rc::gen::weightedOneOf<std::vector<uint8_t>>(
                               {{4, rc::gen::arbitrary<std::vector<uint8_t>>()},
                                {1, rc::gen::resize(3000, rc::gen::arbitrary<std::vector<uint8_t>>())}})),
              rc::gen::set(&FrameSpec::fd_count,
                           rc::gen::weightedOneOf<uint32_t>({{3, rc::gen::just<uint32_t>(0)},
                                                             {2, rc::gen::inRange<uint32_t>(1, 4)}})),
              rc::gen::set(&FrameSpec::ack_count, rc::gen::inRange<uint32_t>(0, 5)))},
      {1, rc::gen::build<FrameSpec>(
              rc::gen::set(&FrameSpec::type, rc::gen::just(FrameType::kFdAck)),
              rc::gen::set(&FrameSpec::ack_count, rc::gen::inRange<uint32_t>(1, 1000)))},
  });
}

UniqueFd OpenDevNull() {
  UniqueFd fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  RC_ASSERT(fd.valid());
  return fd;
}

struct Stream {
  std::vector<uint8_t> bytes;
  std::vector<uint64_t> frame_start;  // stream offset of each frame
  std::vector<std::vector<UniqueFd>> fds;  // per frame
  std::vector<std::vector<int>> fd_numbers;
};

Stream Serialize(const std::vector<FrameSpec>& frames) {
  Stream s;
  for (const FrameSpec& f : frames) {
    s.frame_start.push_back(s.bytes.size());
    const auto header = EncodeFrameHeader({.type = f.type,
                                           .payload_size = static_cast<uint32_t>(f.payload.size()),
                                           .fd_count = f.fd_count,
                                           .ack_count = f.ack_count});
    s.bytes.insert(s.bytes.end(), header.begin(), header.end());
    s.bytes.insert(s.bytes.end(), f.payload.begin(), f.payload.end());
    std::vector<UniqueFd> fds;
    std::vector<int> numbers;
    for (uint32_t i = 0; i < f.fd_count; ++i) {
      fds.push_back(OpenDevNull());
      numbers.push_back(fds.back().get());
    }
    s.fds.push_back(std::move(fds));
    s.fd_numbers.push_back(std::move(numbers));
  }
  return s;
}

// Random cut points: sorted, unique, strictly inside (0, size).
std::vector<size_t> GenCuts(size_t size) {
  if (size < 2) return {};
  const int mode = *rc::gen::inRange(0, 3);
  std::set<size_t> cuts;
  if (mode == 0) {
    // Byte by byte around a random window, big chunks elsewhere.
    const size_t from = *rc::gen::inRange<size_t>(1, size);
    const size_t to = std::min(size, from + *rc::gen::inRange<size_t>(1, 64));
    for (size_t c = from; c < to; ++c) cuts.insert(c);
  } else {
    const auto picks = *rc::gen::container<std::vector<size_t>>(rc::gen::inRange<size_t>(1, size));
    cuts.insert(picks.begin(), picks.end());
  }
  return {cuts.begin(), cuts.end()};
}

std::string Describe(const std::vector<FrameSpec>& frames, const std::vector<size_t>& cuts) {
  std::string out = "frames:";
  for (const FrameSpec& f : frames) {
    std::ostringstream os;
    os << " " << f;
    out += os.str();
  }
  out += " cuts:";
  for (size_t c : cuts) out += " " + std::to_string(c);
  return out;
}

struct Got {
  FrameHeader header;
  std::vector<uint8_t> payload;
  std::vector<int> fds;
};

// Drains every whole frame; false if Next() failed (error stored).
bool Drain(StreamReassembler& r, std::vector<Got>& out, std::optional<Error>& error) {
  while (true) {
    Result<std::optional<ReceivedFrame>> next = r.Next();
    if (!next.ok()) {
      error = std::move(next).error();
      return false;
    }
    if (!next->has_value()) return true;
    ReceivedFrame& f = **next;
    Got g{f.header, {f.payload.begin(), f.payload.end()}, {}};
    for (const UniqueFd& fd : f.fds) g.fds.push_back(fd.get());
    out.push_back(std::move(g));  // the descriptors close here, as a consumer's would
  }
}

RC_GTEST_PROP(ReassemblyProperties, OutputIsIndependentOfChunking, ()) {
  const size_t fds_before = moat::testing::OpenFdCount();
  {
    const auto frames = *rc::gen::resize(40, rc::gen::container<std::vector<FrameSpec>>(GenFrame()));
    Stream s = Serialize(frames);
    const std::vector<size_t> cuts = GenCuts(s.bytes.size());
    RC_LOG() << Describe(frames, cuts) << "\n";
    std::vector<size_t> bounds = {0};
    bounds.insert(bounds.end(), cuts.begin(), cuts.end());
    bounds.push_back(s.bytes.size());

    StreamReassembler r;
    std::vector<Got> got;
    std::optional<Error> error;
    size_t next_frame = 0;
    for (size_t c = 0; c + 1 < bounds.size(); ++c) {
      const size_t begin = bounds[c], end = bounds[c + 1];
      std::vector<UniqueFd> fds;
      while (next_frame < frames.size() && s.frame_start[next_frame] < end) {
        for (UniqueFd& fd : s.fds[next_frame]) fds.push_back(std::move(fd));
        ++next_frame;
      }
      Status st = r.Append(std::span<const uint8_t>(s.bytes).subspan(begin, end - begin),
                           std::move(fds));
      if (!st.ok()) RC_FAIL("Append failed: " + st.error().ToString());
      if (*rc::gen::arbitrary<bool>() && !Drain(r, got, error)) {
        RC_FAIL("Next failed mid-stream: " + error->ToString());
      }
    }
    if (!Drain(r, got, error)) RC_FAIL("Next failed at the end: " + error->ToString());
    Status fin = r.Finish();
    if (!fin.ok()) RC_FAIL("Finish: " + fin.error().ToString());

    RC_ASSERT(got.size() == frames.size());
    for (size_t i = 0; i < frames.size(); ++i) {
      RC_ASSERT(got[i].header.type == frames[i].type);
      RC_ASSERT(got[i].header.payload_size == frames[i].payload.size());
      RC_ASSERT(got[i].header.fd_count == frames[i].fd_count);
      RC_ASSERT(got[i].header.ack_count == frames[i].ack_count);
      RC_ASSERT(got[i].payload == frames[i].payload);
      if (got[i].fds != s.fd_numbers[i]) RC_FAIL("frame " + std::to_string(i) + " got the wrong descriptors");
    }
    RC_ASSERT(r.unprocessed_bytes() == 0u);
    RC_ASSERT(r.unprocessed_fds() == 0u);
    RC_ASSERT(r.stream_offset() == s.bytes.size());
  }
  RC_ASSERT(moat::testing::OpenFdCount() == fds_before);
}

RC_GTEST_PROP(ReassemblyProperties, DescriptorsSentBeforeTheirFrameAreAViolation, ()) {
  const size_t fds_before = moat::testing::OpenFdCount();
  {
    auto frames = *rc::gen::resize(20, rc::gen::container<std::vector<FrameSpec>>(GenFrame()));
    // A victim frame with descriptors, not the first, so something precedes it.
    FrameSpec victim;
    victim.payload = *rc::gen::arbitrary<std::vector<uint8_t>>();
    victim.fd_count = *rc::gen::inRange<uint32_t>(1, 4);
    FrameSpec lead;
    lead.payload = *rc::gen::arbitrary<std::vector<uint8_t>>();
    frames.insert(frames.begin(), lead);
    const size_t victim_index = *rc::gen::inRange<size_t>(1, frames.size() + 1);
    frames.insert(frames.begin() + static_cast<ptrdiff_t>(victim_index), victim);
    Stream s = Serialize(frames);
    // Cut right at the victim's start (so some chunk ends before it) plus random cuts.
    std::vector<size_t> cuts = GenCuts(s.bytes.size());
    cuts.push_back(s.frame_start[victim_index]);
    std::sort(cuts.begin(), cuts.end());
    cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
    std::vector<size_t> bounds = {0};
    bounds.insert(bounds.end(), cuts.begin(), cuts.end());
    bounds.push_back(s.bytes.size());
    // The chunk the victim's descriptors are moved to: any chunk ending at or
    // before the victim's start.
    size_t early_chunks = 0;
    while (bounds[early_chunks + 1] <= s.frame_start[victim_index]) ++early_chunks;
    RC_ASSERT(early_chunks >= 1u);
    const size_t early = *rc::gen::inRange<size_t>(0, early_chunks);
    RC_LOG() << Describe(frames, cuts) << " victim=" << victim_index << " fds moved to chunk "
             << early << "\n";

    StreamReassembler r;
    std::vector<Got> got;
    std::optional<Error> error;
    size_t next_frame = 0;
    bool failed = false;
    for (size_t c = 0; c + 1 < bounds.size() && !failed; ++c) {
      const size_t begin = bounds[c], end = bounds[c + 1];
      std::vector<UniqueFd> fds;
      while (next_frame < frames.size() && s.frame_start[next_frame] < end) {
        if (next_frame != victim_index) {
          for (UniqueFd& fd : s.fds[next_frame]) fds.push_back(std::move(fd));
        }
        ++next_frame;
      }
      if (c == early) {
        for (UniqueFd& fd : s.fds[victim_index]) fds.push_back(std::move(fd));
      }
      Status st = r.Append(std::span<const uint8_t>(s.bytes).subspan(begin, end - begin),
                           std::move(fds));
      if (!st.ok()) RC_FAIL("Append failed: " + st.error().ToString());
      if (*rc::gen::arbitrary<bool>() && !Drain(r, got, error)) failed = true;
    }
    if (!failed && !Drain(r, got, error)) failed = true;
    if (!failed) {
      Status fin = r.Finish();
      RC_ASSERT(!fin.ok());  // at the very least, unclaimed descriptors remain
      error = fin.error();
    }
    RC_ASSERT(error.has_value());
    if (error->code() != ErrorCode::kProtocolViolation) {
      RC_FAIL("expected PROTOCOL_VIOLATION, got " + error->ToString());
    }
    // Every frame before the victim that owns no misplaced descriptor came out intact.
    RC_ASSERT(got.size() <= victim_index);
  }
  RC_ASSERT(moat::testing::OpenFdCount() == fds_before);
}

}  // namespace
}  // namespace moat
