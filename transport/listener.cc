#include "transport/listener.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/check.h"
#include "transport/peer_credentials.h"

namespace moat::transport {
namespace {

Result<sockaddr_un> Address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return Error(ErrorCode::kInvalidArgument,
                 internal::Concat("socket path length ", path.size(), " must be 1..",
                                  sizeof(addr.sun_path) - 1));
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

std::string Octal(mode_t mode) { return internal::Concat("0", std::oct, mode & 07777); }

}  // namespace

Result<std::unique_ptr<Listener>> Listener::Create(const std::string& path,
                                                   ListenerOptions options) {
  MOAT_ASSIGN_OR_RETURN(sockaddr_un addr, Address(path));
  const std::string dir = path.find('/') == std::string::npos
                              ? std::string(".")
                              : (path.rfind('/') == 0 ? std::string("/")
                                                      : path.substr(0, path.rfind('/')));
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) return IoError("lstat(socket directory)", errno);
  if (!S_ISDIR(st.st_mode)) {
    return Error(ErrorCode::kFailedPrecondition,
                 internal::Concat("socket directory ", dir, " is not a directory (or is a symlink)"));
  }
  if (st.st_uid != ::geteuid()) {
    return Error(ErrorCode::kFailedPrecondition,
                 internal::Concat("socket directory ", dir, " is owned by uid ", st.st_uid,
                                  ", not by us (uid ", ::geteuid(), ")"));
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return Error(ErrorCode::kFailedPrecondition,
                 internal::Concat("socket directory ", dir, " is writable by group or others (mode ",
                                  Octal(st.st_mode), ")"));
  }

  UniqueFd socket(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!socket.valid()) return IoError("socket", errno);
  // Linux creates the socket file with the socket inode's mode (minus umask):
  // owner-only from the first instant, without touching the process umask.
  if (::fchmod(socket.get(), S_IRUSR | S_IWUSR) != 0) return IoError("fchmod", errno);
  if (::bind(socket.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    return IoError("bind", errno);
  }
  auto listener = std::unique_ptr<Listener>(new Listener(path, std::move(socket), options));
  // From here the destructor removes the path on every error.
  if (::lstat(path.c_str(), &st) != 0) return IoError("lstat(socket)", errno);
  if ((st.st_mode & 077) != 0 || st.st_uid != ::geteuid()) {
    return Error(ErrorCode::kFailedPrecondition,
                 internal::Concat("socket ", path, " has mode ", Octal(st.st_mode), " uid ",
                                  st.st_uid, "; expected owner-only"));
  }
  if (::listen(listener->socket_.get(), SOMAXCONN) != 0) return IoError("listen", errno);
  return listener;
}

Listener::~Listener() { ::unlink(path_.c_str()); }

Result<TransportHandle> Listener::Accept(std::optional<std::chrono::milliseconds> timeout) {
  pollfd pfd{socket_.get(), POLLIN, 0};
  const int ms = timeout ? static_cast<int>(timeout->count()) : -1;
  int ready;
  do {
    ready = ::poll(&pfd, 1, ms);
  } while (ready < 0 && errno == EINTR);
  if (ready < 0) return IoError("poll", errno);
  if (ready == 0) return Error(ErrorCode::kShouldWait, "no connection before the timeout");
  UniqueFd conn(::accept4(socket_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
  if (!conn.valid()) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED) {
      return Error(ErrorCode::kShouldWait, "the pending connection went away");
    }
    return IoError("accept4", errno);
  }
  MOAT_ASSIGN_OR_RETURN(PeerCredentials creds, GetPeerCredentials(conn.get()));
  if (options_.allowed_uid && creds.uid != *options_.allowed_uid) {
    // `conn` closes here: the rejected peer sees EOF.
    return Error(ErrorCode::kFailedPrecondition,
                 internal::Concat("connection from uid ", creds.uid, " (pid ", creds.pid,
                                  ") rejected: only uid ", *options_.allowed_uid, " may connect"));
  }
  return TransportHandle(std::move(conn));
}

Result<TransportHandle> ConnectToListener(const std::string& path) {
  MOAT_ASSIGN_OR_RETURN(sockaddr_un addr, Address(path));
  UniqueFd socket(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!socket.valid()) return IoError("socket", errno);
  int rc;
  do {
    rc = ::connect(socket.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) return IoError("connect", errno);
  return TransportHandle(std::move(socket));
}

}  // namespace moat::transport
