#include "core/node/launch.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <utility>

#include "core/check.h"

extern char** environ;

namespace moat::node {
namespace {

// The steps of the child between fork() and execve(); the one that failed is
// reported to the parent with its errno.
enum Step : int32_t { kMoveFd = 1, kMapFd, kCloseFds, kSignals, kHook, kExec };

const char* StepName(int32_t step) {
  switch (step) {
    case kMoveFd: return "moving a mapped descriptor (fcntl F_DUPFD_CLOEXEC)";
    case kMapFd: return "mapping a descriptor (dup2)";
    case kCloseFds: return "closing inherited descriptors";
    case kSignals: return "resetting signals";
    case kHook: return "pre-exec hook";
    case kExec: return "execve";
    default: return "unknown step";
  }
}

struct ChildFailure {
  int32_t step;
  int32_t err;
};

// --- Async-signal-safe helpers, used in the child between fork and exec. ---

[[noreturn]] void ChildFail(int report_fd, int32_t step, int err) {
  const ChildFailure f{step, err};
  const char* p = reinterpret_cast<const char*>(&f);
  size_t left = sizeof(f);
  while (left > 0) {
    const ssize_t n = ::write(report_fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    p += n;
    left -= static_cast<size_t>(n);
  }
  ::_exit(127);
}

// Closes every descriptor in [lo, hi] through /proc/self/fd (close_range is
// missing before Linux 5.9, or refused by a seccomp filter). False if /proc is
// not there.
bool CloseRangeViaProc(unsigned lo, unsigned hi) {
  const int dir = static_cast<int>(
      ::syscall(SYS_openat, AT_FDCWD, "/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir < 0) return false;
  alignas(8) char buf[4096];
  for (;;) {
    const long n = ::syscall(SYS_getdents64, dir, buf, sizeof(buf));
    if (n <= 0) break;
    for (long off = 0; off < n;) {
      // struct linux_dirent64: ino (8), off (8), reclen (2), type (1), name.
      unsigned short reclen;
      std::memcpy(&reclen, buf + off + 16, sizeof(reclen));
      const char* name = buf + off + 19;
      off += reclen;
      unsigned fd = 0;
      bool digits = *name != '\0';
      for (const char* c = name; *c != '\0'; ++c) {
        if (*c < '0' || *c > '9' || fd > (UINT_MAX - 9) / 10) {
          digits = false;
          break;
        }
        fd = fd * 10 + static_cast<unsigned>(*c - '0');
      }
      // Closing entries already read does not disturb the directory offset
      // (/proc/self/fd is ordered by descriptor number).
      if (digits && fd >= lo && fd <= hi && static_cast<int>(fd) != dir) {
        ::close(static_cast<int>(fd));
      }
    }
  }
  ::close(dir);
  return true;
}

// Closes [lo, hi]. `max_fd` is the descriptor limit read before fork(), for
// the last-resort loop.
bool CloseRange(unsigned lo, unsigned hi, unsigned max_fd) {
  if (lo > hi) return true;
#ifdef SYS_close_range
  if (::syscall(SYS_close_range, lo, hi, 0) == 0) return true;
#endif
  if (CloseRangeViaProc(lo, hi)) return true;
  for (unsigned fd = lo; fd <= hi && fd < max_fd; ++fd) ::close(static_cast<int>(fd));
  return true;
}

// Closes every descriptor >= 3 except keep[0..n) (sorted in place).
void CloseAllExcept(int* keep, size_t n, unsigned max_fd) {
  for (size_t i = 1; i < n; ++i) {  // insertion sort: no allocation
    for (size_t j = i; j > 0 && keep[j - 1] > keep[j]; --j) std::swap(keep[j - 1], keep[j]);
  }
  unsigned lo = 3;
  for (size_t i = 0; i < n; ++i) {
    const unsigned k = static_cast<unsigned>(keep[i]);
    if (k < lo) continue;
    CloseRange(lo, k - 1, max_fd);
    lo = k + 1;
  }
  CloseRange(lo, ~0u, max_fd);
}

std::string_view EnvName(const std::string& entry) {
  return std::string_view(entry).substr(0, entry.find('='));
}

}  // namespace

Result<pid_t> LaunchProcess(const std::string& path, const std::vector<std::string>& args,
                            const LaunchOptions& options) {
  MOAT_ASSERT(!path.empty(), "LaunchProcess with an empty path");
  int max_child_fd = 2;
  for (size_t i = 0; i < options.fds.size(); ++i) {
    const LaunchOptions::FdMapping& m = options.fds[i];
    MOAT_ASSERT(m.parent >= 0 && m.child >= 0, "LaunchProcess: negative descriptor in mapping ", i);
    for (size_t j = 0; j < i; ++j) {
      MOAT_ASSERT(options.fds[j].child != m.child, "LaunchProcess: child descriptor ", m.child,
                  " mapped twice");
    }
    max_child_fd = std::max(max_child_fd, m.child);
  }

  // Everything the child needs is built before fork(): between fork and exec
  // only async-signal-safe calls are allowed (this process has threads).
  std::string exec_path = path;
  if (path[0] != '/') {
    char cwd[PATH_MAX];
    if (::getcwd(cwd, sizeof(cwd)) == nullptr) return IoError("getcwd", errno);
    exec_path = std::string(cwd) + "/" + path;
  }
  std::vector<std::string> argv_storage;
  argv_storage.push_back(path);
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<std::string> env_storage;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string entry(*e);
    bool replaced = false;
    for (const std::string& extra : options.env) replaced |= EnvName(extra) == EnvName(entry);
    if (!replaced) env_storage.push_back(entry);
  }
  env_storage.insert(env_storage.end(), options.env.begin(), options.env.end());
  std::vector<char*> argv, envp;
  for (std::string& s : argv_storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  for (std::string& s : env_storage) envp.push_back(s.data());
  envp.push_back(nullptr);
  // Scratch space for the child: the moved copies, and the numbers to keep.
  std::vector<int> moved(options.fds.size(), -1);
  std::vector<int> keep(options.fds.size() + 1, -1);
  struct rlimit rl {};
  const bool limited = ::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
                       rl.rlim_cur < (1u << 20);
  const unsigned max_fd = limited ? static_cast<unsigned>(rl.rlim_cur) : (1u << 20);

  // The child reports a failure before execve through this pipe; a
  // successful execve closes it (close-on-exec), so the parent reads EOF.
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) return IoError("pipe2", errno);
  UniqueFd report_read(report[0]);
  UniqueFd report_write(report[1]);

  const pid_t pid = ::fork();
  if (pid < 0) return IoError("fork", errno);
  if (pid == 0) {
    // Every signal blocked until execve: a handler of the parent must not
    // run in this half-made child.
    sigset_t all;
    ::sigfillset(&all);
    ::sigprocmask(SIG_SETMASK, &all, nullptr);
    // First move the report pipe and every mapped descriptor above all
    // target numbers, so that no dup2 below overwrites one still to be
    // mapped (and so that dup2 never sees parent == child, which would leave
    // close-on-exec set).
    const int report_fd = ::fcntl(report_write.get(), F_DUPFD_CLOEXEC, max_child_fd + 1);
    if (report_fd < 0) ChildFail(report_write.get(), kMoveFd, errno);
    for (size_t i = 0; i < options.fds.size(); ++i) {
      moved[i] = ::fcntl(options.fds[i].parent, F_DUPFD_CLOEXEC, max_child_fd + 1);
      if (moved[i] < 0) ChildFail(report_fd, kMoveFd, errno);
    }
    for (size_t i = 0; i < options.fds.size(); ++i) {
      // dup2 clears close-on-exec on the new descriptor.
      if (::dup2(moved[i], options.fds[i].child) < 0) ChildFail(report_fd, kMapFd, errno);
      keep[i] = options.fds[i].child;
    }
    keep[options.fds.size()] = report_fd;
    // Everything else goes, close-on-exec or not (the moved copies too).
    CloseAllExcept(keep.data(), keep.size(), max_fd);
    // Ignored signals stay ignored across execve: give the child defaults.
    for (int sig = 1; sig < NSIG; ++sig) {
      if (sig == SIGKILL || sig == SIGSTOP) continue;
      struct sigaction old {};
      if (::sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) {
        struct sigaction def {};
        def.sa_handler = SIG_DFL;
        ::sigaction(sig, &def, nullptr);
      }
    }
    if (options.pre_exec) {
      const int err = options.pre_exec();
      if (err != 0) ChildFail(report_fd, kHook, err);
    }
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(exec_path.c_str(), argv.data(), envp.data());
    ChildFail(report_fd, kExec, errno);
  }

  report_write.reset();
  ChildFailure failure{};
  size_t got = 0;
  while (got < sizeof(failure)) {
    const ssize_t n = ::read(report_read.get(), reinterpret_cast<char*>(&failure) + got,
                             sizeof(failure) - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  if (got == 0) return pid;  // execve succeeded
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (got < sizeof(failure)) {
    return Error(ErrorCode::kIo,
                 moat::internal::Concat("launch ", path, ": the child died before execve"));
  }
  const bool missing = failure.step == kExec && failure.err == ENOENT;
  return Error(missing ? ErrorCode::kNotFound : ErrorCode::kIo,
               moat::internal::Concat("launch ", path, ": ", StepName(failure.step), ": ",
                                      std::strerror(failure.err)));
}

Result<pid_t> LaunchChildProcess(const std::string& path, const std::vector<std::string>& args,
                                 UniqueFd socket, const LaunchOptions& options) {
  MOAT_ASSERT(socket.valid(), "LaunchChildProcess without a socket");
  LaunchOptions with_socket = options;
  for (const LaunchOptions::FdMapping& m : options.fds) {
    MOAT_ASSERT(m.child != kBrokerSocketChildFd, "LaunchChildProcess: descriptor ",
                kBrokerSocketChildFd, " is the broker socket's");
  }
  with_socket.fds.push_back({socket.get(), kBrokerSocketChildFd});
  with_socket.env.push_back(
      moat::internal::Concat(kBrokerSocketEnvVar, "=", kBrokerSocketChildFd));
  return LaunchProcess(path, args, with_socket);  // our copy of the socket closes here
}

Result<UniqueFd> TakeBrokerSocketFromEnvironment() {
  const char* value = std::getenv(kBrokerSocketEnvVar);
  MOAT_REQUIRE(value != nullptr, ErrorCode::kNotFound, kBrokerSocketEnvVar, " is not set");
  char* end = nullptr;
  errno = 0;
  const long n = std::strtol(value, &end, 10);
  // Attack (local misuse): a malformed variable naming some other descriptor.
  MOAT_REQUIRE(errno == 0 && end != value && *end == '\0' && n >= 0 && n <= INT32_MAX,
               ErrorCode::kInvalidArgument, kBrokerSocketEnvVar, "=", value,
               " is not a descriptor number");
  const int fd = static_cast<int>(n);
  struct stat st {};
  // Attack (local misuse): the number names a file, not the broker socket.
  MOAT_REQUIRE(::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode), ErrorCode::kInvalidArgument,
               kBrokerSocketEnvVar, "=", fd, " is not an open socket");
  int type = 0;
  socklen_t len = sizeof(type);
  // Attack (local misuse): a datagram socket would break the stream framing.
  MOAT_REQUIRE(::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM,
               ErrorCode::kInvalidArgument, kBrokerSocketEnvVar, "=", fd,
               " is not a stream socket");
  UniqueFd socket(fd);
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  ::unsetenv(kBrokerSocketEnvVar);
  return socket;
}

}  // namespace moat::node
