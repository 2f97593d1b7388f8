#include "transport/listener.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <thread>

#include "core/deferred_close.h"
#include "core/testing/fd_count.h"
#include "transport/testing/event_recorder.h"

namespace moat::transport {
namespace {

constexpr auto kGuard = std::chrono::seconds(60);

// A fresh 0700 directory under /tmp (TEST_TMPDIR paths can exceed sun_path).
class ListenerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/moat-listener-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/broker.sock";
  }
  void TearDown() override {
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  std::string dir_, path_;
};

TEST_F(ListenerTest, SocketIsOwnerOnlyAndRemovedOnDestruction) {
  {
    auto listener = Listener::Create(path_);
    ASSERT_TRUE(listener.ok()) << listener.error().ToString();
    struct stat st {};
    ASSERT_EQ(::lstat(path_.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_EQ(st.st_uid, ::geteuid());
  }
  struct stat st {};
  EXPECT_NE(::lstat(path_.c_str(), &st), 0);
}

TEST_F(ListenerTest, RejectsDirectoryWritableByOthers) {
  ASSERT_EQ(::chmod(dir_.c_str(), 0777), 0);
  auto listener = Listener::Create(path_);
  ASSERT_FALSE(listener.ok());
  EXPECT_EQ(listener.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(listener.error().reason(),
            "socket directory " + dir_ + " is writable by group or others (mode 0777)");
}

TEST_F(ListenerTest, RejectsSymlinkedDirectory) {
  const std::string link = dir_ + "-link";
  ASSERT_EQ(::symlink(dir_.c_str(), link.c_str()), 0);
  auto listener = Listener::Create(link + "/x.sock");
  ::unlink(link.c_str());
  ASSERT_FALSE(listener.ok());
  EXPECT_EQ(listener.error().code(), ErrorCode::kFailedPrecondition);
}

TEST_F(ListenerTest, RejectsOverlongPath) {
  auto listener = Listener::Create("/tmp/" + std::string(200, 'p'));
  ASSERT_FALSE(listener.ok());
  EXPECT_EQ(listener.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(ListenerTest, ConnectAcceptExchangeAndCredentials) {
  auto listener = Listener::Create(path_, {.allowed_uid = ::getuid()});
  ASSERT_TRUE(listener.ok()) << listener.error().ToString();
  auto client_handle = ConnectToListener(path_);
  ASSERT_TRUE(client_handle.ok()) << client_handle.error().ToString();
  auto server_handle = (*listener)->Accept(kGuard);
  ASSERT_TRUE(server_handle.ok()) << server_handle.error().ToString();
  auto client = std::move(*client_handle).CreateTransport();
  auto server = std::move(*server_handle).CreateTransport();
  ASSERT_TRUE(client.ok() && server.ok());
  const std::string hi = "hello broker";
  ASSERT_TRUE((*client)->Send(std::vector<uint8_t>(hi.begin(), hi.end())).ok());
  auto got = (*server)->Receive(kGuard);
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(std::string(got->payload.begin(), got->payload.end()), hi);
  auto creds = (*server)->peer_credentials();
  ASSERT_TRUE(creds.ok());
  EXPECT_EQ(creds->uid, ::getuid());
  EXPECT_EQ(creds->pid, ::getpid());
}

TEST_F(ListenerTest, ConnectionFromOtherUidIsRejectedAndClosed) {
  const size_t before = moat::testing::OpenFdCount();
  {
    const uid_t other = ::getuid() + 12345;
    auto listener = Listener::Create(path_, {.allowed_uid = other});
    ASSERT_TRUE(listener.ok()) << listener.error().ToString();
    testing::DisconnectRecorder rec;
    auto client_handle = ConnectToListener(path_);
    ASSERT_TRUE(client_handle.ok());
    auto client = std::move(*client_handle).CreateTransport(rec.Options());
    ASSERT_TRUE(client.ok());
    auto rejected = (*listener)->Accept(kGuard);
    ASSERT_FALSE(rejected.ok());
    EXPECT_EQ(rejected.error().code(), ErrorCode::kFailedPrecondition);
    EXPECT_EQ(rejected.error().reason(),
              "connection from uid " + std::to_string(::getuid()) + " (pid " +
                  std::to_string(::getpid()) + ") rejected: only uid " + std::to_string(other) +
                  " may connect");
    EXPECT_EQ(rec.WaitForFirst().code(), ErrorCode::kPeerClosed);
  }
  WaitForDeferredCloses();
  EXPECT_EQ(moat::testing::OpenFdCount(), before);
}

TEST_F(ListenerTest, OtherUsersCannotConnectToTheSocketFile) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to impersonate another user";
  auto listener = Listener::Create(path_);
  ASSERT_TRUE(listener.ok());
  ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);  // let the other user reach the socket file
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(2);
    auto h = ConnectToListener(path_);
    ::_exit(!h.ok() && h.error().reason().find("Permission denied") != std::string::npos ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
}

TEST_F(ListenerTest, AcceptTimesOut) {
  auto listener = Listener::Create(path_);
  ASSERT_TRUE(listener.ok());
  auto none = (*listener)->Accept(std::chrono::milliseconds(1));
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code(), ErrorCode::kShouldWait);
}

}  // namespace
}  // namespace moat::transport
