/*
 * moat.h: the C API of moat's system layer, for embedders (R16).
 *
 * One header, C99, stable: every struct passed in or out starts with a
 * `struct_size` field that the caller sets to sizeof(the struct as it knows
 * it), so fields can be added later without breaking old callers. Pass NULL
 * for any options argument to get the defaults. Full reference:
 * docs/c-api.md.
 *
 *   MoatHandle a, b;
 *   MoatCreateMessagePipe(NULL, &a, &b);
 *   MoatWriteMessage(a, "hi", 2, NULL, 0, NULL, 0, NULL);
 *   uint32_t n = 0, nh = 0, nf = 0;
 *   if (MoatReadMessage(b, NULL, NULL, &n, NULL, &nh, NULL, &nf) ==
 *       MOAT_RESULT_RESOURCE_EXHAUSTED) {            // first call: sizes
 *     char* buf = malloc(n);
 *     MoatReadMessage(b, NULL, buf, &n, NULL, &nh, NULL, &nf);
 *   }
 *   MoatClose(a); MoatClose(b);
 *
 * Every function is thread-safe. A failing call leaves a precise reason
 * (which argument or field, which limit) for MoatGetLastErrorMessage() on the
 * calling thread. Misuse that can only be a bug in the caller (a payload over
 * the 64 MiB limit, more than 128 descriptors or 64 handles, an invalid
 * descriptor) aborts the process with a message instead of returning.
 */
#ifndef MOAT_CORE_SYSTEM_MOAT_H_
#define MOAT_CORE_SYSTEM_MOAT_H_

#include <stddef.h>
#include <stdint.h>

/* ---- Version, export and limits (packaging: docs/abi.md) --------------- */

/* The version of this header. libmoat.so.MOAT_VERSION_MAJOR is the SONAME;
 * within one MAJOR, later releases only add (functions, flags, struct fields
 * at the end, see struct_size), so a program built against an older header
 * runs against a newer library. */
#define MOAT_VERSION_MAJOR 0
#define MOAT_VERSION_MINOR 1
#define MOAT_VERSION_PATCH 0
#define MOAT_VERSION ((MOAT_VERSION_MAJOR * 10000) + (MOAT_VERSION_MINOR * 100) + MOAT_VERSION_PATCH)

/* Marks the public API: libmoat is compiled with -fvisibility=hidden and a
 * version script, so only functions declared with MOAT_EXPORT are exported. */
#if defined(__GNUC__) || defined(__clang__)
#define MOAT_EXPORT __attribute__((visibility("default")))
#else
#define MOAT_EXPORT
#endif

/* The limits a caller must respect (equal to limits/limits.h, checked by a
 * static_assert when libmoat is built). Exceeding one in a write is a bug in
 * the caller and aborts (see above). */
#define MOAT_MAX_MESSAGE_PAYLOAD_SIZE ((uint32_t)64 * 1024 * 1024) /* bytes per message */
#define MOAT_MAX_MESSAGE_FD_COUNT ((uint32_t)128)     /* descriptors per message */
#define MOAT_MAX_MESSAGE_HANDLE_COUNT ((uint32_t)64)  /* pipe handles per message */

/* ------------------------------------------------------------------------ */

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Results ----------------------------------------------------------- */

typedef int32_t MoatResult;
#define MOAT_RESULT_OK ((MoatResult)0)
#define MOAT_RESULT_CANCELLED ((MoatResult)1)           /* trap trigger removed/closed */
#define MOAT_RESULT_UNKNOWN ((MoatResult)2)
#define MOAT_RESULT_INVALID_ARGUMENT ((MoatResult)3)    /* bad argument or stale handle */
#define MOAT_RESULT_DEADLINE_EXCEEDED ((MoatResult)4)   /* a peer did not answer in time */
#define MOAT_RESULT_NOT_FOUND ((MoatResult)5)           /* no such trigger; trap has none */
#define MOAT_RESULT_ALREADY_EXISTS ((MoatResult)6)      /* trigger context already in use */
#define MOAT_RESULT_PERMISSION_DENIED ((MoatResult)7)   /* named-socket peer of another user */
#define MOAT_RESULT_RESOURCE_EXHAUSTED ((MoatResult)8)  /* buffer too small; table full */
#define MOAT_RESULT_FAILED_PRECONDITION ((MoatResult)9) /* peer closed; already satisfied */
#define MOAT_RESULT_OUT_OF_RANGE ((MoatResult)11)
#define MOAT_RESULT_UNIMPLEMENTED ((MoatResult)12)      /* unknown option flags */
#define MOAT_RESULT_INTERNAL ((MoatResult)13)
#define MOAT_RESULT_UNAVAILABLE ((MoatResult)14)        /* OS failure */
#define MOAT_RESULT_DATA_LOSS ((MoatResult)15)          /* hostile message rejected */
#define MOAT_RESULT_BUSY ((MoatResult)16)               /* handle in transit */
#define MOAT_RESULT_SHOULD_WAIT ((MoatResult)17)        /* nothing to read yet */

/* "OK", "INVALID_ARGUMENT", ... ; never NULL. */
MOAT_EXPORT const char* MoatResultToString(MoatResult result);

/* The reason for the last failed call on this thread ("" if none). Valid
 * until the next moat call on this thread. */
MOAT_EXPORT const char* MoatGetLastErrorMessage(void);

/* ---- Handles and signals ----------------------------------------------- */

/* 64 bits as Mojo's MojoHandle. The high 32 bits are a random tag of the
 * process's handle table: a value not issued by it is INVALID_ARGUMENT. */
typedef uint64_t MoatHandle;
#define MOAT_HANDLE_INVALID ((MoatHandle)0)

typedef uint32_t MoatHandleSignals;
#define MOAT_HANDLE_SIGNAL_NONE ((MoatHandleSignals)0)
#define MOAT_HANDLE_SIGNAL_READABLE ((MoatHandleSignals)1u << 0)
#define MOAT_HANDLE_SIGNAL_WRITABLE ((MoatHandleSignals)1u << 1)
#define MOAT_HANDLE_SIGNAL_PEER_CLOSED ((MoatHandleSignals)1u << 2)
/* 1u << 3 and 1u << 4 are reserved (Mojo's NEW_DATA_READABLE, PEER_REMOTE). */
#define MOAT_HANDLE_SIGNAL_QUOTA_EXCEEDED ((MoatHandleSignals)1u << 5)

struct MoatHandleSignalsState {
  uint32_t struct_size; /* in: sizeof(struct MoatHandleSignalsState) */
  MoatHandleSignals satisfied_signals;
  MoatHandleSignals satisfiable_signals;
};

/* Options structs: struct_size, then flags (0: no flag is defined yet). */
struct MoatCreateMessagePipeOptions { uint32_t struct_size; uint32_t flags; };
struct MoatWriteMessageOptions { uint32_t struct_size; uint32_t flags; };
struct MoatReadMessageOptions { uint32_t struct_size; uint32_t flags; };
struct MoatFuseMessagePipesOptions { uint32_t struct_size; uint32_t flags; };
struct MoatSetQuotaOptions { uint32_t struct_size; uint32_t flags; };
struct MoatQueryQuotaOptions { uint32_t struct_size; uint32_t flags; };
/* MoatWriteMessageOptions.flags: MOAT_WRITE_MESSAGE_FLAG_NON_BLOCKING (see
 * MoatWriteMessage). */
#define MOAT_WRITE_MESSAGE_FLAG_NON_BLOCKING ((uint32_t)1)
/* MoatCreateTrapOptions.flags: MOAT_CREATE_TRAP_FLAG_POLLABLE (see Traps). */
struct MoatCreateTrapOptions { uint32_t struct_size; uint32_t flags; };
#define MOAT_CREATE_TRAP_FLAG_POLLABLE ((uint32_t)1)
struct MoatAddTriggerOptions { uint32_t struct_size; uint32_t flags; };
struct MoatRemoveTriggerOptions { uint32_t struct_size; uint32_t flags; };
struct MoatArmTrapOptions { uint32_t struct_size; uint32_t flags; };

/* ---- Message pipes ----------------------------------------------------- */

/* Creates a pipe: two entangled endpoints. */
MOAT_EXPORT MoatResult MoatCreateMessagePipe(const struct MoatCreateMessagePipeOptions* options,
                                 MoatHandle* endpoint0, MoatHandle* endpoint1);

/* Writes num_bytes of bytes, attaching num_handles pipe endpoints and
 * num_fds descriptors. Attached handles are invalidated on OK (they travel
 * with the message) and on FAILED_PRECONDITION (peer closed: message and
 * attachments discarded); on other failures they stay valid. The descriptors
 * are consumed by every call, success or failure (closed on failure).
 * INVALID_ARGUMENT: stale handle, a handle attached to its own message;
 * BUSY: pipe or an attached handle is in transit, or a handle is attached
 * twice (its second use finds it in transit, as in Mojo).
 *
 * Waiting. A write never queues without a bound. A pipe whose peer is in
 * another process is not WRITABLE while the peer has not acknowledged
 * reading the last PIPE_UNREAD_BYTES_WINDOW (8 MiB) written to it, while
 * the peer's node has not confirmed a moved endpoint's new route, or while
 * the connection's send queue is above its high-water mark (1 MiB). By
 * default (flags 0) a write then may wait: for the socket to drain, for the
 * confirmation, and for the reader once 64 MiB are unread (half of
 * MAX_PIPE_UNREAD_BYTES; below that a burst is written without waiting for
 * the reader, as in Mojo). A peer process that
 * takes nothing from its socket, or never confirms, for
 * PEER_STALL_TIMEOUT_MS (30 s) is cut off: the write returns and the pipe
 * reports PEER_CLOSED. A write from a trap handler running on a moat
 * thread never waits. With MOAT_WRITE_MESSAGE_FLAG_NON_BLOCKING the write
 * never waits: SHOULD_WAIT if the pipe is not WRITABLE now, and then
 * nothing is consumed (descriptors and handles stay the caller's); wait
 * for WRITABLE (a trap) and retry. A remote reader that holds more than
 * MAX_PIPE_UNREAD_BYTES (128 MiB) unread breaks the pipe (see docs/c-api.md). */
MOAT_EXPORT MoatResult MoatWriteMessage(MoatHandle pipe, const void* bytes, uint32_t num_bytes,
                            const MoatHandle* handles, uint32_t num_handles, const int* fds,
                            uint32_t num_fds, const struct MoatWriteMessageOptions* options);

/* Reads the next message. num_bytes/num_handles/num_fds are in: the buffer
 * capacities (buffers may be NULL when the capacity is 0), out: the sizes of
 * the message. If any capacity is too small: RESOURCE_EXHAUSTED, the sizes are
 * set and the message stays first in line (two-call pattern). Received
 * descriptors are owned by the caller. SHOULD_WAIT: no message yet;
 * FAILED_PRECONDITION: peer closed and nothing left; DATA_LOSS: the message
 * was malformed/hostile, was discarded, and the pipe is disconnected. */
MOAT_EXPORT MoatResult MoatReadMessage(MoatHandle pipe, const struct MoatReadMessageOptions* options,
                           void* bytes, uint32_t* num_bytes, MoatHandle* handles,
                           uint32_t* num_handles, int* fds, uint32_t* num_fds);

/* Bad-message reporting (Mojo's MojoNotifyBadMessage). As MoatReadMessage;
 * on OK, *context is a new handle naming the message's origin, which the
 * caller passes to MoatNotifyBadMessage if its higher-level validation
 * rejects the message, or else closes with MoatClose. */
MOAT_EXPORT MoatResult MoatReadMessageWithContext(MoatHandle pipe, const struct MoatReadMessageOptions* options,
                                      void* bytes, uint32_t* num_bytes, MoatHandle* handles,
                                      uint32_t* num_handles, int* fds, uint32_t* num_fds,
                                      MoatHandle* context);

struct MoatNotifyBadMessageOptions { uint32_t struct_size; uint32_t flags; };

/* Consumes `context`: the message was bad. If it came from another process,
 * that process's node is disconnected, with `reason` in the error reported
 * (every pipe to it sees PEER_CLOSED; on a broker, the other children are
 * told the node is lost). A message written in this process has nobody to
 * cut off (OK). The disconnected node is told why as the connection's last
 * message (a child reads it with MoatGetBrokerLossReason), unless it stopped
 * reading. INVALID_ARGUMENT: not a context handle. */
MOAT_EXPORT MoatResult MoatNotifyBadMessage(MoatHandle context, const char* reason, uint32_t reason_length,
                                const struct MoatNotifyBadMessageOptions* options);

/* Closes a pipe endpoint, a trap or a message context. BUSY while in transit. */
MOAT_EXPORT MoatResult MoatClose(MoatHandle handle);

/* Fuses two endpoints of different pipes: both handles are invalidated and
 * their peers become one pipe. FAILED_PRECONDITION if either was used (read
 * or written) or they are each other's peer; both stay valid then. */
MOAT_EXPORT MoatResult MoatFuseMessagePipes(MoatHandle endpoint0, MoatHandle endpoint1,
                                const struct MoatFuseMessagePipesOptions* options);

MOAT_EXPORT MoatResult MoatQueryHandleSignalsState(MoatHandle handle, struct MoatHandleSignalsState* state);

/* ---- Quotas ------------------------------------------------------------ */

typedef uint32_t MoatQuotaType;
#define MOAT_QUOTA_TYPE_RECEIVE_QUEUE_LENGTH ((MoatQuotaType)0)
#define MOAT_QUOTA_TYPE_RECEIVE_QUEUE_MEMORY_SIZE ((MoatQuotaType)1)
#define MOAT_QUOTA_TYPE_UNREAD_MESSAGE_COUNT ((MoatQuotaType)2)
#define MOAT_QUOTA_LIMIT_NONE ((uint64_t)0xffffffffffffffffull)

/* Sets (or with MOAT_QUOTA_LIMIT_NONE removes) a quota. Exceeding it raises
 * MOAT_HANDLE_SIGNAL_QUOTA_EXCEEDED. INVALID_ARGUMENT: unknown type or limit 0. */
MOAT_EXPORT MoatResult MoatSetQuota(MoatHandle pipe, MoatQuotaType type, uint64_t limit,
                        const struct MoatSetQuotaOptions* options);
MOAT_EXPORT MoatResult MoatQueryQuota(MoatHandle pipe, MoatQuotaType type,
                          const struct MoatQueryQuotaOptions* options, uint64_t* limit,
                          uint64_t* usage);

/* ---- Traps ------------------------------------------------------------- */

typedef uint32_t MoatTriggerCondition;
#define MOAT_TRIGGER_CONDITION_SIGNALS_SATISFIED ((MoatTriggerCondition)0)
#define MOAT_TRIGGER_CONDITION_SIGNALS_UNSATISFIED ((MoatTriggerCondition)1)

struct MoatTrapEvent {
  uint32_t struct_size; /* sizeof(struct MoatTrapEvent) */
  uint32_t flags;       /* 0 */
  uintptr_t trigger_context;
  /* OK: condition met; FAILED_PRECONDITION: the signals can never be
   * satisfied again; CANCELLED: trigger removed, handle or trap closed (the
   * trigger's last event). */
  MoatResult result;
  struct MoatHandleSignalsState signals_state;
};

/* Called with no moat lock held; may call any moat function. Events of one
 * trap are delivered one at a time. CANCELLED is a trigger's last event: once
 * MoatRemoveTrigger/MoatClose returned, no other event of that trigger
 * arrives. Handlers never nest: what a handler causes for another trap is
 * delivered on this thread after it returned. See docs/c-api.md. */
typedef void (*MoatTrapEventHandler)(const struct MoatTrapEvent* event);

MOAT_EXPORT MoatResult MoatCreateTrap(MoatTrapEventHandler handler, const struct MoatCreateTrapOptions* options,
                          MoatHandle* trap);
/* ALREADY_EXISTS: another trigger of this trap has this context. */
MOAT_EXPORT MoatResult MoatAddTrigger(MoatHandle trap, MoatHandle handle, MoatHandleSignals signals,
                          MoatTriggerCondition condition, uintptr_t context,
                          const struct MoatAddTriggerOptions* options);
MOAT_EXPORT MoatResult MoatRemoveTrigger(MoatHandle trap, uintptr_t context,
                             const struct MoatRemoveTriggerOptions* options);

/* ---- Event-loop integration: pollable traps ---------------------------- */
/*
 * A trap created with MOAT_CREATE_TRAP_FLAG_POLLABLE never runs its handler
 * on the thread that caused an event (moat's IO threads, a writer): events
 * wait in the trap's queue, and its descriptor is readable exactly while
 * the queue holds events (level-triggered: poll/epoll/select report it until
 * MoatDispatchTrapEvents delivered them; a stale event dropped at delivery
 * can make it readable once for nothing). The embedder's loop waits on the
 * descriptor and calls MoatDispatchTrapEvents on its own thread, where the
 * handler then runs, with every guarantee of an ordinary trap.
 *
 *   MoatCreateTrapOptions o = {sizeof o, MOAT_CREATE_TRAP_FLAG_POLLABLE};
 *   MoatCreateTrap(on_event, &o, &trap);  MoatGetTrapDescriptor(trap, &fd);
 *   epoll_ctl(ep, EPOLL_CTL_ADD, fd, &(struct epoll_event){EPOLLIN, ...});
 *   ... epoll_wait -> MoatDispatchTrapEvents(trap, NULL, 64, &n);
 */
struct MoatDispatchTrapEventsOptions { uint32_t struct_size; uint32_t flags; };

/* *descriptor: the trap's eventfd, owned by the trap; never read or close
 * it. It is closed by MoatClose(trap): remove it from your loop first. The
 * CANCELLED events still pending then are delivered by MoatClose itself.
 * FAILED_PRECONDITION: the trap is not pollable. */
MOAT_EXPORT MoatResult MoatGetTrapDescriptor(MoatHandle trap, int* descriptor);

/* Delivers up to max_events pending events of a pollable trap on this
 * thread (events its handler causes for this trap count too); *num_dispatched
 * (may be NULL) is how many. OK with 0: nothing pending, or another thread
 * is dispatching this trap (that thread delivers them). The bound keeps a
 * flood on one trap from starving the rest of the loop: what remains keeps
 * the descriptor readable. FAILED_PRECONDITION: not pollable, or called
 * from inside a trap handler (handlers never nest). */
MOAT_EXPORT MoatResult MoatDispatchTrapEvents(MoatHandle trap,
                                              const struct MoatDispatchTrapEventsOptions* options,
                                              uint32_t max_events, uint32_t* num_dispatched);

/* Arms the trap: OK, or FAILED_PRECONDITION if some trigger is already
 * satisfied or unsatisfiable. Then up to *num_blocking_events (in) such
 * events are written to blocking_events (each struct_size must be set), and
 * *num_blocking_events (out) is the number written, starting after the
 * trigger reported last time (so none starves). NOT_FOUND: no triggers. */
MOAT_EXPORT MoatResult MoatArmTrap(MoatHandle trap, const struct MoatArmTrapOptions* options,
                       uint32_t* num_blocking_events, struct MoatTrapEvent* blocking_events);

/* ---- Processes: brokers and invitations (Mojo's invitations) ---------- */
/*
 * Without these calls the C API drives a process-local node: pipes connect
 * threads of this process only (and a fork()ed copy of it is not connected
 * to anything). To reach other processes, one process becomes the broker and
 * invites children; each child accepts its invitation and gets a bootstrap
 * pipe to the broker, over which further pipes and descriptors travel.
 * Pipes between two children work too (events are relayed by the broker).
 *
 *   broker:  MoatStartBroker(NULL);
 *            MoatLaunchChild("/path/child", args, 1, NULL, &pid, &boot);
 *   child:   MoatAcceptInvitation(-1, NULL, &boot);   // socket from the env
 *
 * MoatStartBroker and MoatAcceptInvitation/MoatConnectToNamedBroker make the
 * process a node; each must come before any handle was created (the process
 * has one handle table, and handles made before would belong to another):
 * FAILED_PRECONDITION if handles are open or the process is a node already.
 * The node lives until the process exits. C++ code shares it: Core::
 * ForProcess() is the same handle table. */
struct MoatNodeOptions { uint32_t struct_size; uint32_t flags; };
struct MoatLaunchChildOptions { uint32_t struct_size; uint32_t flags; };
struct MoatInviteChildOptions { uint32_t struct_size; uint32_t flags; };
struct MoatAcceptInvitationOptions { uint32_t struct_size; uint32_t flags; };
struct MoatNamedSocketOptions { uint32_t struct_size; uint32_t flags; };

/* Makes this process the broker. */
MOAT_EXPORT MoatResult MoatStartBroker(const struct MoatNodeOptions* options);

/* Broker: fork+exec `path` with argv = {path, args[0..num_args)}, inheriting
 * only its broker socket (named by the MOAT_NODE_BROKER_FD environment
 * variable). *pid: the child; *bootstrap: the broker's end of its bootstrap
 * pipe. FAILED_PRECONDITION: this process is not the broker. */
MOAT_EXPORT MoatResult MoatLaunchChild(const char* path, const char* const* args, uint32_t num_args,
                           const struct MoatLaunchChildOptions* options, int64_t* pid,
                           MoatHandle* bootstrap);

/* Broker: a new child connection without launching anything. *child_socket
 * (close-on-exec, owned by the caller) goes to the child process by any
 * means (inherit it across exec, SCM_RIGHTS); the child passes it to
 * MoatAcceptInvitation. */
MOAT_EXPORT MoatResult MoatInviteChild(const struct MoatInviteChildOptions* options, int* child_socket,
                           MoatHandle* bootstrap);

/* Child: joins the broker over `socket` (consumed; -1: the descriptor named
 * by MOAT_NODE_BROKER_FD, as MoatLaunchChild sets it), waiting up to 10 s for
 * the broker's greeting. *bootstrap: this end of the bootstrap pipe.
 * NOT_FOUND: socket -1 and no variable; SHOULD_WAIT: no greeting in time. */
MOAT_EXPORT MoatResult MoatAcceptInvitation(int socket, const struct MoatAcceptInvitationOptions* options,
                                MoatHandle* bootstrap);

/* Named sockets (a filesystem path, at most 107 bytes). Broker: listen on
 * `path` (which must not exist); *server_socket is the listening descriptor
 * (owned by the caller; poll it for readability). */
MOAT_EXPORT MoatResult MoatCreateNamedServer(const char* path, const struct MoatNamedSocketOptions* options,
                                 int* server_socket);
/* Broker: accepts one child on a listening socket (blocks unless the socket
 * is non-blocking: then SHOULD_WAIT). PERMISSION_DENIED: the connecting
 * process runs as another user (SO_PEERCRED); it was disconnected. */
MOAT_EXPORT MoatResult MoatAcceptNamedChild(int server_socket, const struct MoatNamedSocketOptions* options,
                                MoatHandle* bootstrap);
/* Child: connects to the broker listening on `path` and joins it, as
 * MoatAcceptInvitation. */
MOAT_EXPORT MoatResult MoatConnectToNamedBroker(const char* path, const struct MoatNamedSocketOptions* options,
                                    MoatHandle* bootstrap);

/* Child: why this node's connection to its broker ended (every pipe to other
 * processes then reports PEER_CLOSED). OK: *reason is the text, valid until
 * the next moat call on this thread; when the broker cut this node off it
 * says so in its own words ("node N cut this node off: bad message: ...",
 * e.g. from the broker's MoatNotifyBadMessage). NOT_FOUND: still connected.
 * FAILED_PRECONDITION: this process is not a child node. */
MOAT_EXPORT MoatResult MoatGetBrokerLossReason(const char** reason);

/* ---- Shared buffers ---------------------------------------------------- */
/*
 * Memory shared between processes, as descriptors (they travel in
 * MoatWriteMessage's fds like any other). A buffer's size is fixed at
 * creation (sealed), so no holder can shrink it under another's mapping.
 * Producer/consumer: create, map writable, duplicate read-only, send the
 * duplicate, keep writing through the mapping; consumers can only map it
 * read-only (nobody can map it writable any more, nor write() it).
 * A received descriptor is checked (MoatGetSharedBufferInfo, MoatMap...):
 * INVALID_ARGUMENT if it is not a memfd sealed against shrinking. */
struct MoatSharedBufferOptions { uint32_t struct_size; uint32_t flags; };
#define MOAT_MAP_SHARED_BUFFER_FLAG_READ_ONLY ((uint32_t)1)
struct MoatMapSharedBufferOptions {
  uint32_t struct_size;
  uint32_t flags; /* MOAT_MAP_SHARED_BUFFER_FLAG_READ_ONLY, or 0: writable */
};
#define MOAT_SHARED_BUFFER_INFO_FLAG_READ_ONLY ((uint32_t)1)
struct MoatSharedBufferInfo {
  uint32_t struct_size; /* in: sizeof(struct MoatSharedBufferInfo) */
  uint32_t flags;       /* out: MOAT_SHARED_BUFFER_INFO_FLAG_READ_ONLY */
  uint64_t size;        /* out */
};

/* *buffer: a new buffer of `size` bytes (zeroed), close-on-exec. */
MOAT_EXPORT MoatResult MoatCreateSharedBuffer(uint64_t size, const struct MoatSharedBufferOptions* options,
                                  int* buffer);
/* Seals `buffer` read-only for every holder (mappings already made keep
 * writing) and returns a new descriptor of it in *read_only. */
MOAT_EXPORT MoatResult MoatDuplicateSharedBufferReadOnly(int buffer,
                                             const struct MoatSharedBufferOptions* options,
                                             int* read_only);
MOAT_EXPORT MoatResult MoatGetSharedBufferInfo(int buffer, struct MoatSharedBufferInfo* info);
/* Maps the whole buffer (NULL options: writable). FAILED_PRECONDITION:
 * writable mapping of a read-only buffer. Unmap with MoatUnmapSharedBuffer. */
MOAT_EXPORT MoatResult MoatMapSharedBuffer(int buffer, const struct MoatMapSharedBufferOptions* options,
                               void** address, uint64_t* size);
MOAT_EXPORT MoatResult MoatUnmapSharedBuffer(void* address, uint64_t size);

#ifdef __cplusplus
}  /* extern "C" */
#endif

#endif /* MOAT_CORE_SYSTEM_MOAT_H_ */
