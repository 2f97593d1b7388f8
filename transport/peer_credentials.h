// moat::transport::PeerCredentials: who is on the other end of a Unix socket
// (R23), as the kernel recorded it at connect()/socketpair() time
// (SO_PEERCRED). The peer cannot forge these: they are the credentials of the
// process that created its end, not anything it sent.
//
//   Result<PeerCredentials> creds = transport->peer_credentials();
//   if (creds.ok() && creds->uid != expected_uid) ...
#ifndef MOAT_TRANSPORT_PEER_CREDENTIALS_H_
#define MOAT_TRANSPORT_PEER_CREDENTIALS_H_

#include <sys/types.h>

#include "core/error.h"

namespace moat::transport {

struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

// SO_PEERCRED of a connected Unix socket.
Result<PeerCredentials> GetPeerCredentials(int socket_fd);

}  // namespace moat::transport

#endif  // MOAT_TRANSPORT_PEER_CREDENTIALS_H_
