// Child processes for `moat fuzz`: fuzzers, builds and crash replays. Each
// child runs in its own process group with stdout and stderr joined into one
// pipe, so the parent can parse its output and can stop it together with
// anything it forked (afl-fuzz, libFuzzer's -minimize_crash re-executions).
//
//   Child c = Spawn({"bazel-bin/fuzz/x", "-max_total_time=10", "dir"}, {});
//   ... poll(c.out_fd) and read ...; int status = Reap(c);
//
//   RunResult r = RunToEnd({"bazel", "build", "//fuzz:x"}, {}, /*timeout_seconds=*/0);
//
// SIGINT/SIGTERM sent to `moat fuzz` set a flag (InterruptRequested) instead
// of killing it, so it can stop every child before it exits.
#ifndef MOAT_TOOLS_FUZZ_SUBPROCESS_H_
#define MOAT_TOOLS_FUZZ_SUBPROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

namespace moat::tools::fuzz {

struct Child {
  pid_t pid = -1;
  int out_fd = -1;  // read end of the child's stdout+stderr; -1 once closed
};

// Starts argv[0] (searched in PATH) with `env` ("NAME=value") added to this
// process's environment. Exits the child with 127 if exec fails.
Child Spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env);

// Sends SIGTERM to the child's process group, then SIGKILL if it is still
// alive after `grace_ms`. Does not reap.
void Terminate(const Child& child, int grace_ms = 2000);

// Closes the pipe and waits for the child. Returns the raw wait status.
int Reap(Child& child);

struct RunResult {
  int status = 0;        // raw wait status
  bool timed_out = false;
  bool interrupted = false;
  std::string output;    // stdout and stderr, interleaved
  bool ok() const;       // exited with 0
  bool crashed() const;  // exited non-zero or died from a signal
};

// Runs argv to completion, collecting its output. A timeout of 0 means none.
// Stops the child if the timeout passes or an interrupt is requested.
RunResult RunToEnd(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                   int timeout_seconds);

void InstallInterruptHandler();
bool InterruptRequested();

// "a b 'c d'": argv quoted for a shell, for printing commands a person can paste.
std::string ShellQuote(const std::vector<std::string>& argv);

}  // namespace moat::tools::fuzz

#endif  // MOAT_TOOLS_FUZZ_SUBPROCESS_H_
