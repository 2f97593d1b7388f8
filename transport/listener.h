// moat::transport::Listener: a named Unix listening socket for processes that
// were not spawned with a socketpair (R23).
//
// The socket file is created owner-only (0600: fchmod before bind, so there is
// no window with wider permissions) inside a directory that must be a real
// directory owned by us and not writable by group or others (so nobody can
// swap the path). Optionally only one uid may connect: SO_PEERCRED of every
// accepted connection is checked and other uids are closed at once.
//
//   auto listener = Listener::Create("/run/user/1000/moat/broker.sock",
//                                    {.allowed_uid = ::getuid()});
//   Result<TransportHandle> peer = (*listener)->Accept();
//   if (peer.ok()) transport = std::move(*peer).CreateTransport(options);
//
//   Result<TransportHandle> h = ConnectToListener("/run/user/1000/moat/broker.sock");
#ifndef MOAT_TRANSPORT_LISTENER_H_
#define MOAT_TRANSPORT_LISTENER_H_

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "core/error.h"
#include "core/unique_fd.h"
#include "transport/transport.h"

namespace moat::transport {

struct ListenerOptions {
  // If set, connections from any other uid are rejected and closed.
  std::optional<uid_t> allowed_uid;
};

class Listener {
 public:
  static Result<std::unique_ptr<Listener>> Create(const std::string& path,
                                                  ListenerOptions options = {});
  // Closes the socket and removes the path.
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Waits for one connection (nullopt: forever). kShouldWait on timeout;
  // kFailedPrecondition for a connection from a uid that is not allowed (it
  // has been closed; call Accept again).
  Result<TransportHandle> Accept(std::optional<std::chrono::milliseconds> timeout = std::nullopt);

  const std::string& path() const { return path_; }
  // For an embedder's event loop: readable when a connection is pending.
  int fd() const { return socket_.get(); }

 private:
  Listener(std::string path, UniqueFd socket, ListenerOptions options)
      : path_(std::move(path)), socket_(std::move(socket)), options_(options) {}

  std::string path_;
  UniqueFd socket_;
  ListenerOptions options_;
};

// Connects to a Listener's path.
Result<TransportHandle> ConnectToListener(const std::string& path);

}  // namespace moat::transport

#endif  // MOAT_TRANSPORT_LISTENER_H_
