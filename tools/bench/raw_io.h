// Blocking socket helpers shared by the raw-socketpair baselines of
// `moat bench` (transport cases in bench.cc, pipe cases in pipe_bench.cc):
// the baseline is plain read/write/sendmsg, so both sets of cases measure
// moat against exactly the same reference.
//
//   if (!raw::WriteAll(fd, buf, n)) Die("write");
//   int received = raw::RecvFd(sock, buf, n);   // -1 on failure
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

}  // namespace moat::tools::raw

#endif  // MOAT_TOOLS_BENCH_RAW_IO_H_
