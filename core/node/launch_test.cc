// LaunchProcess / LaunchChildProcess: what the child inherits, how failures
// before execve are reported, the pre-exec hook. The child is
// launch_test_child, which prints what it sees on its stdout (our pipe).
#include "core/node/launch.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>

#include <cerrno>
#include <string>

namespace moat::node {
namespace {

// Relative to the test's working directory (the runfiles tree).
constexpr char kChild[] = "core/node/launch_test_child";

struct Run {
  int exit_code = -1;
  std::string out;
};

// Launches with the child's stdout on a pipe, waits for it, returns what it
// printed.
Result<Run> LaunchAndCollect(const std::vector<std::string>& args, LaunchOptions options = {},
                             UniqueFd* broker_socket = nullptr) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return IoError("pipe2", errno);
  UniqueFd read_end(p[0]), write_end(p[1]);
  options.fds.push_back({write_end.get(), 1});
  Result<pid_t> pid = broker_socket != nullptr
                          ? LaunchChildProcess(kChild, args, std::move(*broker_socket), options)
                          : LaunchProcess(kChild, args, options);
  if (!pid.ok()) return std::move(pid).error();
  write_end.reset();
  Run run;
  char buf[256];
  for (ssize_t n; (n = ::read(read_end.get(), buf, sizeof(buf))) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError("read", errno);
    run.out.append(buf, static_cast<size_t>(n));
  }
  int status = 0;
  if (::waitpid(*pid, &status, 0) != *pid) return IoError("waitpid", errno);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return run;
}

UniqueFd OpenDevNull(int flags) { return UniqueFd(::open("/dev/null", O_RDONLY | flags)); }

TEST(LaunchTest, ChildSeesOnlyStdioAndTheMappedDescriptors) {
  // A descriptor someone forgot to make close-on-exec, and a careful one.
  UniqueFd stray = OpenDevNull(0);
  UniqueFd careful = OpenDevNull(O_CLOEXEC);
  UniqueFd mapped = OpenDevNull(O_CLOEXEC);
  ASSERT_TRUE(stray.valid() && careful.valid() && mapped.valid());
  LaunchOptions options;
  options.fds.push_back({mapped.get(), 7});
  auto run = LaunchAndCollect({"fds"}, options);
  ASSERT_TRUE(run.ok()) << run.error().ToString();
  EXPECT_EQ(run->exit_code, 0);
  EXPECT_EQ(run->out, "0,1,2,7") << "stray descriptor was " << stray.get();
}

// Where close_range is missing (Linux < 5.9) or refused (container seccomp
// profiles answer EPERM or ENOSYS), the child closes through /proc/self/fd.
// A forked helper process refuses close_range to itself with a seccomp
// filter (inherited by the child it launches) and reports by exit status.
TEST(LaunchTest, ChildClosesStrayDescriptorsWithoutCloseRange) {
  const pid_t helper = ::fork();
  ASSERT_GE(helper, 0);
  if (helper == 0) {
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_close_range, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {static_cast<unsigned short>(sizeof(filter) / sizeof(filter[0])), filter};
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
      ::_exit(10);
    }
    if (::syscall(SYS_close_range, 1000u, 1000u, 0) == 0 || errno != ENOSYS) ::_exit(11);
    UniqueFd low = OpenDevNull(0);
    const int high = ::dup2(low.get(), 200);  // far above the rest
    if (!low.valid() || high != 200) ::_exit(12);
    auto run = LaunchAndCollect({"fds"});
    if (!run.ok()) ::_exit(13);
    ::_exit(run->out == "0,1,2" ? 0 : 14);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(helper, &status, 0), helper);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0)
      << "10: no seccomp; 11: close_range not refused; 12: setup; 13: launch failed; "
         "14: a stray descriptor reached the child";
}

TEST(LaunchTest, DescriptorMappedOntoItsOwnNumberIsInherited) {
  // parent == child: a plain dup2 would be a no-op that leaves close-on-exec set.
  UniqueFd fd = OpenDevNull(O_CLOEXEC);
  ASSERT_TRUE(fd.valid());
  LaunchOptions options;
  options.fds.push_back({fd.get(), fd.get()});
  auto run = LaunchAndCollect({"fds"}, options);
  ASSERT_TRUE(run.ok()) << run.error().ToString();
  EXPECT_EQ(run->out, "0,1,2," + std::to_string(fd.get()));
}

TEST(LaunchTest, BrokerChildGetsOnlyItsSocketAtFd3) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd ours(sv[0]), theirs(sv[1]);
  UniqueFd stray = OpenDevNull(0);  // numbered after the socket
  auto run = LaunchAndCollect({"fds"}, {}, &theirs);
  ASSERT_TRUE(run.ok()) << run.error().ToString();
  EXPECT_EQ(run->out, "0,1,2,3");

  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd ours2(sv[0]), theirs2(sv[1]);
  run = LaunchAndCollect({"env", kBrokerSocketEnvVar}, {}, &theirs2);
  ASSERT_TRUE(run.ok()) << run.error().ToString();
  EXPECT_EQ(run->out, "3");
}

TEST(LaunchTest, EnvironmentEntriesAreAddedAndReplaceOurs) {
  ASSERT_EQ(::setenv("MOAT_LAUNCH_TEST_VAR", "parent", 1), 0);
  LaunchOptions options;
  options.env.push_back("MOAT_LAUNCH_TEST_VAR=child");
  auto run = LaunchAndCollect({"env", "MOAT_LAUNCH_TEST_VAR"}, options);
  ASSERT_TRUE(run.ok()) << run.error().ToString();
  EXPECT_EQ(run->out, "child");
  ::unsetenv("MOAT_LAUNCH_TEST_VAR");
}

TEST(LaunchTest, MissingProgramIsReportedAtLaunch) {
  auto pid = LaunchProcess("/nonexistent/moat-launch-test", {});
  ASSERT_FALSE(pid.ok());
  EXPECT_EQ(pid.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(pid.error().reason().find("execve: No such file or directory"), std::string::npos)
      << pid.error().ToString();
  // The failed child was reaped: no zombie left behind.
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
}

TEST(LaunchTest, NonExecutableIsReportedAtLaunch) {
  auto pid = LaunchProcess("/dev/null", {});
  ASSERT_FALSE(pid.ok());
  EXPECT_EQ(pid.error().code(), ErrorCode::kIo);
  EXPECT_NE(pid.error().reason().find("execve: Permission denied"), std::string::npos)
      << pid.error().ToString();
}

TEST(LaunchTest, HookRunsInTheChildAndRelativePathIsResolvedBeforeIt) {
  // kChild is relative to our working directory; the hook moves the child
  // elsewhere first, which must not change which program runs.
  LaunchOptions options;
  options.pre_exec = [] { return ::chdir("/") == 0 ? 0 : errno; };
  auto run = LaunchAndCollect({"cwd"}, options);
  ASSERT_TRUE(run.ok()) << run.error().ToString();
  EXPECT_EQ(run->exit_code, 0);
  EXPECT_EQ(run->out, "/");
}

TEST(LaunchTest, FailingHookAbortsTheLaunch) {
  LaunchOptions options;
  options.pre_exec = [] { return EPERM; };
  auto run = LaunchAndCollect({"fds"}, options);
  ASSERT_FALSE(run.ok());
  EXPECT_NE(run.error().reason().find("pre-exec hook: Operation not permitted"), std::string::npos)
      << run.error().ToString();
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
}

TEST(LaunchTest, BadMappedDescriptorIsReportedAtLaunch) {
  LaunchOptions options;
  options.fds.push_back({1000000, 4});
  auto run = LaunchAndCollect({"fds"}, options);
  ASSERT_FALSE(run.ok());
  EXPECT_NE(run.error().reason().find("Bad file descriptor"), std::string::npos)
      << run.error().ToString();
}

}  // namespace
}  // namespace moat::node
