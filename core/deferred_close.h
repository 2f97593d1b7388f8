// moat::CloseDeferred: closes descriptors a peer gave us without ever making
// the calling thread wait for the close (TRP-12).
//
// close() can block for as long as the peer likes: the last close of a TCP
// socket with SO_LINGER {1, N} and unsent data behind a zero window waits N
// seconds; a file on a FUSE mount the peer serves waits for its FLUSH reply;
// NFS flushes dirty pages. A moat thread (IO thread, Receive() caller,
// destructor) must never do that for a peer. Every descriptor that came from
// a peer, or that we sent for someone and may have come from one (fd-ack
// retained descriptors), is therefore closed here: handed to one closer
// thread per process, which first switches SO_LINGER off on sockets (so a
// lingering socket cannot stall the closer either) and then closes.
//
//   std::vector<UniqueFd> left = std::move(frame.fds);
//   CloseDeferred(left);            // returns at once; `left` is empty
//   WaitForDeferredCloses();        // tests: everything handed over is closed
//
// The queue is bounded (limits::MAX_DEFERRED_CLOSES). When it is full the
// closer is stuck in a close that no SO_LINGER reset can shorten (FUSE, NFS)
// and the caller closes inline after the same reset (see the residual risk of
// TRP-12 in docs/threat-model/transport.md).
#ifndef MOAT_CORE_DEFERRED_CLOSE_H_
#define MOAT_CORE_DEFERRED_CLOSE_H_

#include <cstddef>
#include <deque>
#include <utility>
#include <vector>

#include "core/unique_fd.h"

namespace moat {

// How a component that holds peer descriptors drops them. In-process decoders
// used by fuzzers and tools (no threads there) close inline; the transport,
// whose threads serve a live peer, defers.
enum class CloseMode { kInline, kDeferred };

// Takes ownership of `fd` (invalid: no-op) and closes it on the closer thread.
void CloseDeferred(UniqueFd fd);
// Takes every descriptor of `fds` (which is left empty).
void CloseDeferred(std::vector<UniqueFd>& fds);
void CloseDeferred(std::deque<UniqueFd>& fds);

// Closes `fd` inline or deferred, as `mode` says.
inline void Dispose(CloseMode mode, UniqueFd fd);

// Waits until every descriptor handed to CloseDeferred() before this call is
// closed. For tests and orderly shutdown; never call it on a path a peer can
// reach (a hostile close may keep it waiting).
void WaitForDeferredCloses();

// Descriptors handed over and not yet closed (for tests and stats).
size_t DeferredClosesPending();

inline void Dispose(CloseMode mode, UniqueFd fd) {
  if (mode == CloseMode::kDeferred) {
    CloseDeferred(std::move(fd));
  } else {
    fd.reset();
  }
}

}  // namespace moat

#endif  // MOAT_CORE_DEFERRED_CLOSE_H_
