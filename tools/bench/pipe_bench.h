// The pipe-level cases of `moat bench` (tools/bench/pipe_bench.cc): message
// pipes between two processes' nodes against a raw socketpair, same run.
//
//   for (const PipeBenchRow& r : RunPipeBenchCases({.reps = 7})) ...
#ifndef MOAT_TOOLS_BENCH_PIPE_BENCH_H_
#define MOAT_TOOLS_BENCH_PIPE_BENCH_H_

#include <string>
#include <vector>

#include "tools/bench/raw_io.h"

namespace moat::tools {

struct PipeBenchConfig {
  int reps = 7;
  int rt_iters = 20000;
  int tput_messages = 4000;
  bool progress = true;  // a line per case on stderr
};

// One case, in the transport cases' schema: medians; ratio = moat/raw for
// times (us), raw/moat for throughput (MiB/s): lower is better in both.
struct PipeBenchRow {
  std::string name;
  double moat = 0, baseline = 0, ratio = 0;
  const char* unit = "";
  const char* target = "";
};

std::vector<PipeBenchRow> RunPipeBenchCases(const PipeBenchConfig& config);

// One side of one run of a pipe case (moat's side; the raw side is
// raw::EchoChild / raw::TimeExchange), for `moat bench`'s runner, which
// forks and pins the processes. The parent returns us per round trip or MiB/s.
[[noreturn]] void PipeMoatChild(int socket, const raw::Exchange& exchange);
double PipeMoatParent(int socket, const raw::Exchange& exchange);

}  // namespace moat::tools

#endif  // MOAT_TOOLS_BENCH_PIPE_BENCH_H_
