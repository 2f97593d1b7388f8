// transport/ring alone, cross-process: the ring_* rows of `moat bench`.
//
// Shape: the parent creates two rings (to the child, to the parent) and two
// doorbell socketpairs, forks; the child adopts the memfds it inherited
// through RingMemory::Adopt (so the seal and size checks are on the path a
// real peer would take) and echoes (round trips) or drains and acknowledges
// (throughput). Each side copies every record out of the ring into its own
// buffer, as a receiver that decodes must.
#include "tools/bench/ring_bench.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "limits/limits.h"
#include "transport/ring/ring.h"

namespace moat::tools {
namespace {

using transport::ring::RingMemory;
using transport::ring::RingReader;
using transport::ring::RingWriter;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kCapacity = 1 * limits::MiB;

[[noreturn]] void Die(const char* what, const Status& s) {
  std::fprintf(stderr, "moat bench (ring): %s: %s\n", what,
               s.ok() ? "" : s.error().ToString().c_str());
  std::_Exit(1);
}

RingMemory AdoptOrDie(int fd) {
  auto m = RingMemory::Adopt(UniqueFd(::dup(fd)), kCapacity);
  if (!m.ok()) Die("adopt", m.error());
  return std::move(*m);
}

}  // namespace

RingSetup MakeRingSetup(int spin) {
  RingSetup s;
  s.spin = spin;
  auto a = RingMemory::Create(kCapacity);
  auto b = RingMemory::Create(kCapacity);
  if (!a.ok()) Die("create", a.error());
  if (!b.ok()) Die("create", b.error());
  // The bench keeps the memfds open (dup) so the child can adopt them; the
  // mappings made here are dropped: each side maps through Adopt.
  s.to_child_memfd = ::dup(a->fd());
  s.to_parent_memfd = ::dup(b->fd());
  UniqueFd p1, c1, p2, c2;
  if (Status st = transport::ring::MakeDoorbellPair(&p1, &c1); !st.ok()) Die("doorbell", st);
  if (Status st = transport::ring::MakeDoorbellPair(&p2, &c2); !st.ok()) Die("doorbell", st);
  s.to_child_bell_parent = p1.release();
  s.to_child_bell_child = c1.release();
  s.to_parent_bell_parent = p2.release();
  s.to_parent_bell_child = c2.release();
  return s;
}

[[noreturn]] void RingEchoChild(const RingSetup& s, const raw::Exchange& c) {
  ::close(s.to_child_bell_parent);
  ::close(s.to_parent_bell_parent);
  RingReader in(AdoptOrDie(s.to_child_memfd), UniqueFd(s.to_child_bell_child));
  RingWriter out(AdoptOrDie(s.to_parent_memfd), UniqueFd(s.to_parent_bell_child));
  ::close(s.to_child_memfd);
  ::close(s.to_parent_memfd);
  std::vector<uint8_t> buf;
  if (c.kind == raw::Kind::kThroughput) {
    for (int i = 0; i < c.tput_messages; ++i) {
      if (Status st = in.Read(&buf, s.spin); !st.ok()) Die("child read", st);
    }
    const uint8_t done = 1;
    if (Status st = out.Write({&done, 1}, s.spin); !st.ok()) Die("child ack", st);
    (void)in.Read(&buf);  // until the parent hangs up
    std::_Exit(0);
  }
  while (in.Read(&buf, s.spin).ok()) {
    if (!out.Write(buf, s.spin).ok()) break;
  }
  std::_Exit(0);
}

double RingTimeExchange(const RingSetup& s, const raw::Exchange& c) {
  ::close(s.to_child_bell_child);
  ::close(s.to_parent_bell_child);
  RingWriter out(AdoptOrDie(s.to_child_memfd), UniqueFd(s.to_child_bell_parent));
  RingReader in(AdoptOrDie(s.to_parent_memfd), UniqueFd(s.to_parent_bell_parent));
  ::close(s.to_child_memfd);
  ::close(s.to_parent_memfd);
  std::vector<uint8_t> msg(c.size, 0x42);
  std::vector<uint8_t> buf;
  if (c.kind == raw::Kind::kThroughput) {
    const auto start = Clock::now();
    for (int i = 0; i < c.tput_messages; ++i) {
      if (Status st = out.Write(msg, s.spin); !st.ok()) Die("write", st);
    }
    if (Status st = in.Read(&buf, s.spin); !st.ok()) Die("ack", st);
    const double secs = std::chrono::duration<double>(Clock::now() - start).count();
    return static_cast<double>(c.size) * c.tput_messages / secs / limits::MiB;
  }
  auto one = [&] {
    if (Status st = out.Write(msg, s.spin); !st.ok()) Die("write", st);
    if (Status st = in.Read(&buf, s.spin); !st.ok()) Die("read", st);
  };
  for (int i = 0; i < c.rt_iters / 10; ++i) one();
  const auto start = Clock::now();
  for (int i = 0; i < c.rt_iters; ++i) one();
  const double us = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
  return us / c.rt_iters;
}

}  // namespace moat::tools
