// Property: the fd-ack state machine under fuzzer-chosen send/ack sequences,
// including hostile acknowledgements (more than outstanding, u32 extremes)
// and overflowing received counts: it never crashes, reports violations as
// errors (never pops an empty queue), keeps retained == sent - acked, keeps
// retained within the window, and leaks no descriptor.
//
// Input layout (all choices, from the end): window byte, then per step an op
// byte and its arguments.

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <limits>
#include <vector>

#include "core/testing/fd_count.h"
#include "fuzz/fuzz_harness.h"
#include "transport/fd_ack.h"

MOAT_FUZZ_COVERS("fd_ack")

namespace {

int DevNull() {
  static const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  DevNull();
  // Per input: the engine itself may hold descriptors open at other times.
  const size_t baseline = moat::testing::OpenFdCount();
  moat::fuzz::Input in(data, size);
  const uint32_t window = in.InRange<uint32_t>(1, 64);
  {
    moat::transport::FdAckState acks(window);
    uint64_t sent = 0, acked = 0, pending = 0;
    for (int steps = 0; !in.empty() && steps < 4096; ++steps) {
      const uint8_t op = in.Integral<uint8_t>();
      switch (op % 5) {
        case 0: {  // send k descriptors if the window allows
          const uint32_t k = in.InRange<uint32_t>(0, 8);
          const bool can = acks.CanSend(k);
          MOAT_FUZZ_CHECK(can == (acks.retained() + k <= window), "CanSend disagrees with window");
          if (!can) break;
          std::vector<moat::UniqueFd> fds;
          for (uint32_t i = 0; i < k; ++i) fds.emplace_back(::fcntl(DevNull(), F_DUPFD_CLOEXEC, 0));
          acks.OnSent(std::move(fds));
          sent += k;
          break;
        }
        case 1:    // hostile ack: any u32
        case 4: {  // plausible ack: near the outstanding count
          const uint32_t n = (op % 5 == 1)
                                 ? in.Integral<uint32_t>()
                                 : in.InRange<uint32_t>(0, static_cast<uint32_t>(acks.retained() + 1));
          const size_t before = acks.retained();
          moat::Status s = acks.OnAckReceived(n);
          MOAT_FUZZ_CHECK(s.ok() == (n <= before), "ack accepted iff within outstanding");
          if (s.ok()) {
            acked += n;
          } else {
            MOAT_FUZZ_CHECK(s.error().code() == moat::ErrorCode::kProtocolViolation,
                            "bogus ack must be a protocol violation");
            MOAT_FUZZ_CHECK(acks.retained() == before, "a rejected ack released descriptors");
          }
          break;
        }
        case 2: {  // descriptors received from the peer
          const uint32_t n = (op & 0x80) ? in.Integral<uint32_t>() : in.InRange<uint32_t>(0, 128);
          moat::Status s = acks.OnFdsReceived(n);
          const bool fits = pending + n <= std::numeric_limits<uint32_t>::max();
          MOAT_FUZZ_CHECK(s.ok() == fits, "received count accepted iff it fits u32");
          if (fits) pending += n;
          break;
        }
        case 3:
          MOAT_FUZZ_CHECK(acks.TakePendingAcks() == pending, "pending acks mismatch");
          pending = 0;
          break;
      }
      MOAT_FUZZ_CHECK(acks.retained() == sent - acked, "retained != sent - acked");
      MOAT_FUZZ_CHECK(acks.retained() <= window, "retained beyond the window");
      MOAT_FUZZ_CHECK(acks.pending_acks() == pending, "pending acks drifted");
    }
  }
  MOAT_FUZZ_CHECK(moat::testing::OpenFdCount() == baseline, "descriptor leak");
  return 0;
}
