// Launching a child process that a sandbox can trust (R24, issue 15 item 6).
//
// The child inherits exactly stdin, stdout, stderr and the descriptors the
// caller maps; every other descriptor of the parent is closed in the child,
// close-on-exec or not (close_range, with a /proc/self/fd fallback), so a
// library or thread that forgot O_CLOEXEC cannot leak a file into a sandboxed
// child. Failures up to and including execve() are reported by the launch
// call itself (not as a mysterious exit status later): the child writes the
// failing step and errno into a close-on-exec pipe the parent reads.
//
//   LaunchOptions options;
//   options.fds.push_back({log_fd, 3});          // the child's fd 3
//   options.pre_exec = [] { return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ? errno : 0; };
//   MOAT_ASSIGN_OR_RETURN(pid_t pid, LaunchProcess("bin/renderer", {"--x"}, options));
//
// Paths. `path` is used as given, never searched in PATH (a sandbox launcher
// should not run whatever an environment variable finds first): an absolute
// path, or a path relative to the caller's working directory at the time of
// the call ("child" means ./child, as for execve). A relative path is made
// absolute before fork(), so a pre_exec hook that changes directory (chdir
// "/" before a chroot, say) does not change which program runs. argv[0] is
// `path` as given.
//
// Between fork() and execve() the child only makes async-signal-safe calls
// (this process has threads); everything is allocated before fork().
#ifndef MOAT_CORE_NODE_LAUNCH_H_
#define MOAT_CORE_NODE_LAUNCH_H_

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/unique_fd.h"

namespace moat::node {

struct LaunchOptions {
  // A descriptor of ours (`parent`, borrowed: still ours after the call)
  // that the child gets as descriptor number `child`. Mapping onto 0, 1 or 2
  // replaces that stdio descriptor. Each `child` number at most once.
  struct FdMapping {
    int parent = -1;
    int child = -1;
  };
  std::vector<FdMapping> fds;

  // Extra NAME=value entries for the child's environment (after ours; an
  // entry replaces ours of the same NAME).
  std::vector<std::string> env;

  // Runs in the child after the descriptors are in place (only 0, 1, 2 and
  // the mapped ones are open) and the signal mask is cleared, just before
  // execve(): the place to drop privileges, set rlimits, enter namespaces or
  // install a seccomp filter. It must only make async-signal-safe calls (no
  // malloc, no locks: the parent's other threads are gone mid-operation).
  // Returns 0, or an errno value to abort the launch (reported by the
  // launch call as "pre-exec hook: <strerror>"). The launch call blocks until
  // the hook has returned and execve() ran.
  std::function<int()> pre_exec;
};

// fork + execve of `path` with argv = {path, args...} and our environment
// plus options.env. Returns the child's pid once execve() succeeded; on any
// failure in the child (mapping a descriptor, the hook, execve) the child
// has been reaped and an Error names the step and errno.
Result<pid_t> LaunchProcess(const std::string& path, const std::vector<std::string>& args,
                            const LaunchOptions& options = {});

// The environment variable through which LaunchChildProcess tells a child
// which inherited descriptor is its broker socket.
inline constexpr char kBrokerSocketEnvVar[] = "MOAT_NODE_BROKER_FD";

// The descriptor number the broker socket has in a child started by
// LaunchChildProcess (the first after stdio).
inline constexpr int kBrokerSocketChildFd = 3;

// LaunchProcess with `socket` mapped to kBrokerSocketChildFd and
// kBrokerSocketEnvVar naming it. `options.fds` may add descriptors at other
// numbers (not kBrokerSocketChildFd). Our copy of the socket is closed.
Result<pid_t> LaunchChildProcess(const std::string& path, const std::vector<std::string>& args,
                                 UniqueFd socket, const LaunchOptions& options = {});

// In a child: the inherited broker socket named by kBrokerSocketEnvVar
// (checked to be a Unix stream socket, made close-on-exec; the variable is
// removed so grandchildren do not inherit it).
Result<UniqueFd> TakeBrokerSocketFromEnvironment();

}  // namespace moat::node

#endif  // MOAT_CORE_NODE_LAUNCH_H_
