// pipe_bench_main: only the pipe cases of `moat bench`, for profiling and for
// measuring pipe changes without the transport cases' minutes in between.
// Same code and same raw baseline as `moat bench` (pipe_bench.cc).
//
//   bazel run -c opt //tools/bench:pipe_bench_main -- [reps] [rt_iters] [tput_messages]
//   MOAT_BENCH_ONLY=64B bazel-bin/tools/bench/pipe_bench_main 1 2000 0
#include <signal.h>

#include <cstdio>
#include <cstdlib>

#include "tools/bench/pipe_bench.h"

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  moat::tools::PipeBenchConfig cfg;
  if (argc > 1) cfg.reps = std::atoi(argv[1]);
  if (argc > 2) cfg.rt_iters = std::atoi(argv[2]);
  if (argc > 3) cfg.tput_messages = std::atoi(argv[3]);
  if (cfg.reps < 1 || cfg.rt_iters < 10 || cfg.tput_messages < 1) {
    std::fprintf(stderr, "usage: pipe_bench_main [reps >= 1] [rt_iters >= 10] [tput_messages >= 1]\n");
    return 2;
  }
  std::printf("%-24s %10s %10s %-6s %6s  %s\n", "case", "moat", "raw", "unit", "ratio",
              "target (ratio)");
  for (const auto& r : moat::tools::RunPipeBenchCases(cfg)) {
    std::printf("%-24s %10.2f %10.2f %-6s %6.2f  %s\n", r.name.c_str(), r.moat, r.baseline,
                r.unit, r.ratio, r.target);
  }
  return 0;
}
