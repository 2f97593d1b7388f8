#include "tools/fuzz/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace moat::tools::fuzz {
namespace {

volatile std::sig_atomic_t g_interrupted = 0;

void OnInterrupt(int) { g_interrupted = 1; }

double NowSeconds() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

}  // namespace

Child Spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return {};
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return {};
  }
  if (pid == 0) {
    setpgid(0, 0);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, STDIN_FILENO);
    for (const std::string& e : env) putenv(const_cast<char*>(e.c_str()));
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    std::fprintf(stderr, "moat fuzz: cannot run %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  // Also set the group from the parent so Terminate works even if the child
  // has not been scheduled yet.
  setpgid(pid, pid);
  close(fds[1]);
  return Child{pid, fds[0]};
}

void Terminate(const Child& child, int grace_ms) {
  if (child.pid <= 0) return;
  kill(-child.pid, SIGTERM);
  for (int waited = 0; waited < grace_ms; waited += 50) {
    // WNOWAIT: leave the zombie for Reap, we only want to know it is gone.
    siginfo_t info{};
    if (waitid(P_PID, child.pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == child.pid) {
      kill(-child.pid, SIGKILL);  // stragglers the fuzzer forked
      return;
    }
    usleep(50 * 1000);
  }
  kill(-child.pid, SIGKILL);
}

int Reap(Child& child) {
  if (child.out_fd >= 0) close(child.out_fd);
  child.out_fd = -1;
  int status = 0;
  while (waitpid(child.pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

bool RunResult::ok() const { return !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0; }
bool RunResult::crashed() const {
  return !timed_out && !interrupted && (WIFSIGNALED(status) || WEXITSTATUS(status) != 0);
}

RunResult RunToEnd(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                   int timeout_seconds) {
  RunResult result;
  Child child = Spawn(argv, env);
  if (child.pid < 0) {
    result.status = 127 << 8;
    return result;
  }
  const double deadline = NowSeconds() + timeout_seconds;
  char buf[4096];
  while (true) {
    if (InterruptRequested() || (timeout_seconds > 0 && NowSeconds() > deadline)) {
      (InterruptRequested() ? result.interrupted : result.timed_out) = true;
      Terminate(child);
      break;
    }
    pollfd p{child.out_fd, POLLIN, 0};
    int n = poll(&p, 1, 200);
    if (n <= 0) continue;
    ssize_t got = read(child.out_fd, buf, sizeof(buf));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    result.output.append(buf, static_cast<size_t>(got));
  }
  result.status = Reap(child);
  return result;
}

void InstallInterruptHandler() {
  struct sigaction sa {};
  sa.sa_handler = OnInterrupt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool InterruptRequested() { return g_interrupted != 0; }

std::string ShellQuote(const std::vector<std::string>& argv) {
  std::string out;
  for (const std::string& a : argv) {
    if (!out.empty()) out += ' ';
    bool plain = !a.empty() && a.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                  "0123456789_-./=:@%+,") == std::string::npos;
    if (plain) {
      out += a;
    } else {
      out += '\'';
      for (char c : a) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
      out += '\'';
    }
  }
  return out;
}

}  // namespace moat::tools::fuzz
