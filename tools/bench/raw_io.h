// Blocking socket helpers shared by the raw-socketpair baselines of
// `moat bench` (transport cases in bench.cc, pipe cases in pipe_bench.cc):
// the baseline is plain read/write/sendmsg, so both sets of cases measure
// moat against exactly the same reference.
//
//   if (!raw::WriteAll(fd, buf, n)) Die("write");
//   int received = raw::RecvFd(sock, buf, n);   // -1 on failure
//   double us = raw::TimeExchange(sock, {raw::Kind::kRoundTrip, 64, 20000, 0});
#ifndef MOAT_TOOLS_BENCH_RAW_IO_H_
#define MOAT_TOOLS_BENCH_RAW_IO_H_

#include <cstddef>
#include <cstdint>

namespace moat::tools::raw {

// Writes/reads exactly n bytes, retrying on EINTR and short transfers.
bool WriteAll(int fd, const uint8_t* p, size_t n);
bool ReadAll(int fd, uint8_t* p, size_t n);

// Sends n bytes with one descriptor attached (SCM_RIGHTS) in one sendmsg().
bool SendFd(int socket, const uint8_t* p, size_t n, int fd);

// Receives exactly n bytes, the first receive carrying one descriptor;
// returns that descriptor (close-on-exec), or -1 (nothing left open).
int RecvFd(int socket, uint8_t* p, size_t n);

// The raw-socketpair baseline itself, shared by every bench case so moat is
// always compared with the same reference.
enum class Kind { kRoundTrip, kRoundTripFd, kThroughput };

struct Exchange {
  Kind kind;
  size_t size;        // bytes per message
  int rt_iters;       // round trips timed (after rt_iters / 10 of warm-up)
  int tput_messages;  // messages sent one way for kThroughput
};

// The forked child's side: echoes (round trips) or drains and acknowledges
// (throughput) until the parent closes, then exits the process.
[[noreturn]] void EchoChild(int socket, const Exchange& exchange);

// The parent's side: microseconds per round trip, or MiB/s for kThroughput.
double TimeExchange(int socket, const Exchange& exchange);

}  // namespace moat::tools::raw

#endif  // MOAT_TOOLS_BENCH_RAW_IO_H_
