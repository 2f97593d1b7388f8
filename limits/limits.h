// moat/limits: every numeric limit of moat, in one place.
//
// Both sides use these: the encoder treats exceeding a limit as a programmer
// error (MOAT_ASSERT: we never send what a peer must reject), the decoder as
// hostile input (MOAT_REQUIRE: reject and disconnect). Keeping one header
// means the two sides cannot drift apart.
//
//   if (payload.size() > limits::MAX_MESSAGE_PAYLOAD_SIZE) ...
//   ConnectionLimits tight = ConnectionLimits::Defaults().Tightened(
//       {.max_message_payload_size = 1 << 20});
//
// Per-connection overrides (ConnectionLimits) may only tighten: a value larger
// than the global default is clamped to the default, so no configuration can
// open a hole the threat model assumes closed.
#ifndef MOAT_LIMITS_LIMITS_H_
#define MOAT_LIMITS_LIMITS_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace moat::limits {

inline constexpr size_t KiB = 1024;
inline constexpr size_t MiB = 1024 * KiB;

// Payload bytes in one frame.
// Attack: a peer declares a 4 GiB frame so we allocate (or wait) for it.
inline constexpr uint32_t MAX_MESSAGE_PAYLOAD_SIZE = 64 * MiB;

// Descriptors attached to one message.
// Attack: descriptor-table exhaustion (EMFILE) in the receiver with one message.
inline constexpr uint32_t MAX_MESSAGE_FD_COUNT = 128;

// Length of any decoded container (string, bytes, vector, map) in bytes or
// elements, checked in one decode_size() before anything is allocated.
// Attack: a 20-byte message claiming a 4 GiB vector (OOM, or a huge reserve).
// Shared-memory regions are exempt: the sender already allocated them (R6).
inline constexpr uint32_t MAX_DECODED_SIZE = 64 * MiB;

// Heap memory one decoded message may own: container buffers, map nodes,
// string and byte buffers, counted per element with the in-memory size
// (Decoder::ChargeMemory; the Encoder asserts the same count on the sender).
// Attack: elements tiny on the wire but large in memory (a 4-byte empty
// string is a 32-byte std::string) decode a 64 MiB payload into 512 MiB.
// Twice the payload limit: an honest message of short strings still fits.
inline constexpr uint32_t MAX_DECODED_MEMORY = 128 * MiB;

// Bytes received but not yet turned into delivered messages.
// Attack: a peer writes faster than we process and we buffer without bound.
inline constexpr size_t MAX_UNPROCESSED_BYTES = 128 * MiB;

// Descriptors received but not yet delivered with their message.
// Attack: a peer floods descriptors ahead of (or without) the frames that
// claim them, exhausting our descriptor table.
inline constexpr uint32_t MAX_UNPROCESSED_FDS = 512;

// The Linux kernel rejects more than SCM_MAX_FD (253) descriptors in one
// sendmsg() with EINVAL; the sender splits larger batches (R2).
inline constexpr uint32_t SCM_MAX_FD = 253;

// Nesting depth of decoded values (vector<vector<...>>, variants of structs).
// Attack: deeply nested input to exhaust the decoder's stack.
inline constexpr uint32_t MAX_DECODE_DEPTH = 64;

// Message-pipe handles attached to one message.
// Attack: one message creating thousands of ports in the receiving node.
inline constexpr uint32_t MAX_MESSAGE_HANDLE_COUNT = 64;

// User messages one port holds ahead of the next in-order one (ports).
// Attack: a hostile node sends sequence numbers 2..N but never 1, so the port
// buffers out-of-order messages without bound.
inline constexpr uint64_t MAX_PORT_OUT_OF_ORDER_MESSAGES = 1024;

// Bytes of user messages one port holds ahead of the next in-order one.
// Attack: as above, with few but huge messages (the count alone allows
// MAX_PORT_OUT_OF_ORDER_MESSAGES x MAX_MESSAGE_PAYLOAD_SIZE).
inline constexpr size_t MAX_PORT_OUT_OF_ORDER_BYTES = 128u << 20;
static_assert(MAX_PORT_OUT_OF_ORDER_BYTES >= 2 * size_t{MAX_MESSAGE_PAYLOAD_SIZE},
              "a couple of the largest legal messages must fit ahead of a gap");

// Ring events one port buffers while waiting for its previous hop's next one.
// Attack: a hostile node floods events claiming future control sequence
// numbers or a hop that is not (yet) the port's previous hop.
inline constexpr uint32_t MAX_PORT_BUFFERED_EVENTS = 256;

// This node's own ring events that one port buffers (not from its previous
// hop, or ahead of a gap) and that come from ports another node's
// descriptors created here (Event::origin), per such node: control events by
// count, user messages by count and bytes (PRT-16). This node's other events
// stay uncapped: a preempted local sender legitimately holds back everything
// other local threads send meanwhile.
// Attack: a hostile node sends message after message whose descriptors name a
// port P of this node as the new port's peer (or makes such a port answer
// forged requests towards P); each new port's events to P wait, unprocessable,
// for a switch only the attacker could send, and pile up at P (300 forged
// messages buffered 299 closures at P).
inline constexpr uint32_t MAX_PORT_BUFFERED_LOCAL_CONTROL_EVENTS = 256;
// The embedder may write into a port it just received before its peer, on
// this node, has switched to it (one round trip to the sender): generous.
inline constexpr uint32_t MAX_PORT_BUFFERED_LOCAL_MESSAGES = 4096;
inline constexpr size_t MAX_PORT_BUFFERED_LOCAL_BYTES = 128u << 20;
static_assert(MAX_PORT_BUFFERED_LOCAL_BYTES >= 2 * size_t{MAX_MESSAGE_PAYLOAD_SIZE},
              "a couple of the largest legal messages must fit");

// Ring events an honest port sends on a new link to another node before the
// receiving port confirms that the link is its previous hop (PRT-11); the
// rest wait on the sender. Not a defence against a peer: it keeps this node
// within the peer's MAX_PORT_BUFFERED_EVENTS while a proxy is bypassed, with
// room for a few links of one pipe being established at once.
inline constexpr uint32_t MAX_UNCONFIRMED_LINK_EVENTS = 32;
static_assert(4 * MAX_UNCONFIRMED_LINK_EVENTS <= MAX_PORT_BUFFERED_EVENTS,
              "an honest sender must stay well inside the receiver's buffer cap");

// Ports one node may create here from its descriptors whose peer is a port P
// on a third node, per (that node, P), until P confirms them (PRT-13). Each
// sends P up to MAX_UNCONFIRMED_LINK_EVENTS events that P buffers until its
// previous hop switches to the new port; an honest sender hands over one end
// of P's pipe at a time (two while a bounce crosses).
// Attack: a hostile node sends this node message after message whose
// descriptors name P as the new port's peer. This node creates and closes
// the ports, each closure waits at P (never processable), P's buffer
// overflows and P's node blames this node, the honest relayer. With this cap
// the descriptor beyond it is refused and its sender (the originator) blamed.
inline constexpr size_t MAX_VOUCHED_UNCONFIRMED_LINKS = 2;
static_assert(2 * MAX_VOUCHED_UNCONFIRMED_LINKS * MAX_UNCONFIRMED_LINK_EVENTS <
                  MAX_PORT_BUFFERED_EVENTS,
              "what a hostile node can make an honest one send to P must stay a minority of "
              "P's buffer, so that P's overflow blames the hostile node (Node::AcceptEventFrom)");

// Links a port remembers after moving away from them unconfirmed (PRT-11),
// so that a late confirmation is recognised rather than taken as forged.
// Attack: a hostile previous hop re-pointing a port again and again (one
// ObserveProxy each) to grow that list without bound.
inline constexpr size_t MAX_PORT_RETIRED_LINKS = 16;

// Lost nodes one ports::Node remembers, to drop their late events and to
// refuse re-pointing a port at them (PRT-14).
// Attack: a hostile node naming made-up nodes that each get "lost", growing
// that memory without bound.
inline constexpr size_t MAX_REMEMBERED_LOST_NODES = 4096;

// Proxies a ports::Node remembers after removing them (their peer's node and
// previous hop), so that losing that node right after still tells the
// previous hop that the proxy's last events may be lost (PRT-23).
// Attack: bouncing a port to make proxy after proxy, growing that memory; the
// oldest is forgotten (its last events are by then long delivered).
inline constexpr size_t MAX_REMEMBERED_REMOVED_PROXIES = 1024;

// Ports one ports::Node holds.
// Attack: a hostile node sends message after message carrying
// MAX_MESSAGE_HANDLE_COUNT ports each to exhaust our memory with ports.
inline constexpr size_t MAX_PORTS_PER_NODE = 1 << 20;
// Ports one ports::Node holds that were made from one other node's
// descriptors (a child's broker excepted: it relays everyone's).
// Attack (PRT-8): one hostile node filling MAX_PORTS_PER_NODE with ports it
// sends, so that no other peer (and not our embedder) can create one; eight
// such nodes are needed now.
inline constexpr size_t MAX_PORTS_PER_PEER_NODE = MAX_PORTS_PER_NODE / 8;

// Receiving ports (pipe ends) an ObserveProxy event may pass through looking
// for the proxy's predecessor. Proxies it passes are not counted: an honest
// ring may hold any number of them (an end bounced faster than its bypass
// events are delivered, issue 12 item 2), while an honest ObserveProxy passes
// each end of its pipe at most once (an end that moves meanwhile is behind
// it), so it never gets near the limit.
// Attack: a forged ObserveProxy naming no real proxy circulates around a
// pipe's ring forever, spinning both nodes; it passes both ends on every
// round, so it dies within MAX_OBSERVE_PROXY_HOPS / 2 rounds.
inline constexpr uint32_t MAX_OBSERVE_PROXY_HOPS = 64;

// Shared-memory ring (transport/ring): the data area of one ring is a power
// of two in [RING_MIN_CAPACITY, RING_MAX_CAPACITY] bytes.
// Attack: a ring sized by the peer to exhaust our address space.
inline constexpr size_t RING_MIN_CAPACITY = 4 * KiB;
inline constexpr size_t RING_MAX_CAPACITY = 64 * MiB;
// Wakes without progress one blocking ring call tolerates (a legitimate peer
// causes at most one stale doorbell per sleep).
// Attack: a peer rings our doorbell in a loop to keep our reader spinning.
inline constexpr uint32_t RING_MAX_SPURIOUS_WAKES = 64;
// Doorbell datagrams drained per wake (the rest wake us again, and count).
inline constexpr uint32_t RING_MAX_DOORBELL_DRAIN = 64;

// How long an orderly NodeController shutdown waits for its node to hand
// over what is still in flight (moving ports, queued sends) before it drops
// its connections anyway (crbug.com/1005510: a message written just before
// exit must arrive).
// Attack: a peer that never answers (never confirms a moved port, never
// reads its socket) would otherwise keep this process from ever exiting.
inline constexpr uint32_t NODE_SHUTDOWN_FLUSH_TIMEOUT_MS = 5000;

// ---- Writes that never block by surprise (issue 15 item 3) ----

// Unsent bytes one transport queues before a thread that may wait (a writer
// outside any IO thread) waits for the socket to drain. IO threads and the
// broker's relay never wait: they keep the hard cap MAX_UNPROCESSED_BYTES
// (NOD-6). Small, so a slow peer costs this process ~1 MiB per connection,
// not 128 MiB, and a queue that fits in cache drains fast.
inline constexpr size_t SEND_HIGH_WATER_BYTES = 1 * MiB;
static_assert(SEND_HIGH_WATER_BYTES < MAX_UNPROCESSED_BYTES);

// How long a writer waits for a peer that takes nothing from its socket
// (not one byte drained) before the connection is failed, and how long a
// writer waits for a peer port to confirm a new link (PRT-11) before the
// peer's node is cut off. A peer process that is stopped, hung or hostile
// must not hold a writer forever; an honest one drains or confirms within
// a scheduling hiccup. NodeControllerOptions may shorten (tests) or lengthen
// them.
inline constexpr uint32_t PEER_STALL_TIMEOUT_MS = 30'000;

// A pipe end's unread-bytes window: once the messages it wrote that its peer
// has not acknowledged reading (read acks, requested every half window) add
// up to this many bytes, the end stops being WRITABLE and a non-blocking
// write gets SHOULD_WAIT. A blocking write goes on (a burst written before
// it is read must keep working) until half of MAX_PIPE_UNREAD_BYTES, where
// it waits for the reader. Only while the peer is on another node: a local
// reader may be the writer's own thread.
inline constexpr size_t PIPE_UNREAD_BYTES_WINDOW = 8 * MiB;

// Unread bytes one receiving port holds from a writer on another node. An
// honest writer stops at the window above (plus the one message that crossed
// it, plus writes from threads that may not wait, such as trap handlers on an
// IO thread); a writer past this ignores read acks. The pipe is then broken:
// what was queued can still be read, then PEER_CLOSED; nobody is blamed (an
// honest relay forwards whatever the writer sends).
// Attack: a peer writing into a pipe whose reader is slow or stopped until
// this process runs out of memory (1.5 GB measured before this limit).
inline constexpr size_t MAX_PIPE_UNREAD_BYTES = 128 * MiB;
static_assert(MAX_PIPE_UNREAD_BYTES >= PIPE_UNREAD_BYTES_WINDOW + 16 * MiB +
                                           size_t{MAX_MESSAGE_PAYLOAD_SIZE},
              "an honest writer's window, a largest message and non-waiting writes must fit");

// Bytes of the reason a node gives the peer it cuts off (node channel
// kDisconnect: "why you were disconnected", issue 15 item 2). Longer reasons
// are cut on a character boundary by the sender.
// Attack: a peer's parting message as a memory or log flood.
inline constexpr uint32_t MAX_DISCONNECT_REASON_SIZE = 1024;

// Bytes a shared IO loop (transport/io_loop.h) reads from one transport's
// socket in one turn before it serves the next ready transport; the rest is
// read on a later turn (level-triggered epoll keeps it ready). One full
// receive (the transport's 256 KiB read chunk): bulk transfers pay one
// extra wake per 256 KiB, not per message; at most ~11,000 minimal (24-byte)
// frames are delivered per turn. A private IO thread reads up to 16 chunks.
// Attack: one peer flooding its socket keeps the loop reading it and starves
// every other connection served by the same thread (transport.md TRP-16).
inline constexpr size_t IO_LOOP_READ_BUDGET_BYTES = 256 * KiB;

// Shared IO loops of a NodeController: all its transports are spread over
// this many threads (round-robin) instead of one thread per connection.
inline constexpr size_t NODE_IO_LOOPS = 2;

// ---- Transport hostile-peer limits (issue 13; transport.md TRP-12) ----

// Descriptors handed to the closer thread (core/deferred_close.h) and not yet
// closed. Peer descriptors are never closed on a moat thread: close() can
// block as long as the peer likes (SO_LINGER, FUSE, NFS).
// Attack: a descriptor whose close() the peer makes block forever (on a
// filesystem it serves) stalls the closer while the peer sends more; past
// this bound they are closed inline (lingering disarmed) instead of held.
inline constexpr size_t MAX_DEFERRED_CLOSES = 4096;

// Size of one shared-memory region accepted from a peer (R6 exempts regions
// from MAX_DECODED_SIZE, not from every bound; codec.md COD-8).
// Attack: a sparse memfd of 1 TiB costs its sender nothing (ftruncate), but
// every page a consumer touches is allocated then, and charged to us.
inline constexpr uint64_t MAX_SHARED_MEMORY_REGION_SIZE = 1024 * MiB;

// ---- end of transport hostile-peer limits ----

static_assert(MAX_MESSAGE_FD_COUNT <= MAX_UNPROCESSED_FDS,
              "a single legal message must fit in the unprocessed-fd budget");
static_assert(MAX_MESSAGE_PAYLOAD_SIZE <= MAX_UNPROCESSED_BYTES,
              "a single legal message must fit in the unprocessed-byte budget");
static_assert(MAX_DECODED_SIZE <= MAX_DECODED_MEMORY,
              "a container of the largest legal length must fit the memory budget");
static_assert(MAX_DECODED_SIZE <= MAX_MESSAGE_PAYLOAD_SIZE,
              "a container can never be larger than the payload carrying it");

// Limits in force on one connection. Obtain with Defaults() and narrow with
// Tightened(); there is no way to loosen past the global constants above.
struct ConnectionLimits {
  uint32_t max_message_payload_size = MAX_MESSAGE_PAYLOAD_SIZE;
  uint32_t max_message_fd_count = MAX_MESSAGE_FD_COUNT;
  uint32_t max_decoded_size = MAX_DECODED_SIZE;
  uint32_t max_decoded_memory = MAX_DECODED_MEMORY;
  size_t max_unprocessed_bytes = MAX_UNPROCESSED_BYTES;
  uint32_t max_unprocessed_fds = MAX_UNPROCESSED_FDS;

  static constexpr ConnectionLimits Defaults() { return ConnectionLimits{}; }

  // Returns a copy where each field is min(this, requested): requests to
  // loosen are ignored. Zero is a valid (very tight) request.
  constexpr ConnectionLimits Tightened(const ConnectionLimits& requested) const {
    ConnectionLimits out;
    out.max_message_payload_size =
        std::min(max_message_payload_size, requested.max_message_payload_size);
    out.max_message_fd_count = std::min(max_message_fd_count, requested.max_message_fd_count);
    out.max_decoded_size = std::min(max_decoded_size, requested.max_decoded_size);
    out.max_decoded_memory = std::min(max_decoded_memory, requested.max_decoded_memory);
    out.max_unprocessed_bytes = std::min(max_unprocessed_bytes, requested.max_unprocessed_bytes);
    out.max_unprocessed_fds = std::min(max_unprocessed_fds, requested.max_unprocessed_fds);
    return out;
  }
};

}  // namespace moat::limits

#endif  // MOAT_LIMITS_LIMITS_H_
