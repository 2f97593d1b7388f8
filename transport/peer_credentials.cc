#include "transport/peer_credentials.h"

#include <sys/socket.h>

#include <cerrno>

#include "core/unique_fd.h"

namespace moat::transport {

Result<PeerCredentials> GetPeerCredentials(int socket_fd) {
  struct ucred cred {};
  socklen_t len = sizeof(cred);
  if (::getsockopt(socket_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return IoError("getsockopt(SO_PEERCRED)", errno);
  }
  return PeerCredentials{.pid = cred.pid, .uid = cred.uid, .gid = cred.gid};
}

}  // namespace moat::transport
