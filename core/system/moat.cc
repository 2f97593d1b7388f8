// The C API (moat.h) over the process-wide Core.
#include "core/system/moat.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/check.h"
#include "core/node/node_controller.h"
#include "core/system/core.h"
#include "core/system/shared_buffer.h"
#include "limits/limits.h"

namespace moat::system {
namespace {

static_assert(MOAT_HANDLE_SIGNAL_READABLE == kSignalReadable);
static_assert(MOAT_HANDLE_SIGNAL_WRITABLE == kSignalWritable);
static_assert(MOAT_HANDLE_SIGNAL_PEER_CLOSED == kSignalPeerClosed);
static_assert(MOAT_HANDLE_SIGNAL_QUOTA_EXCEEDED == kSignalQuotaExceeded);
static_assert(MOAT_QUOTA_TYPE_RECEIVE_QUEUE_LENGTH ==
              static_cast<uint32_t>(QuotaType::kReceiveQueueLength));
static_assert(MOAT_QUOTA_TYPE_RECEIVE_QUEUE_MEMORY_SIZE ==
              static_cast<uint32_t>(QuotaType::kReceiveQueueMemorySize));
static_assert(MOAT_QUOTA_TYPE_UNREAD_MESSAGE_COUNT ==
              static_cast<uint32_t>(QuotaType::kUnreadMessageCount));
static_assert(MOAT_QUOTA_LIMIT_NONE == kNoQuotaLimit);
static_assert(MOAT_TRIGGER_CONDITION_SIGNALS_SATISFIED ==
              static_cast<uint32_t>(TriggerCondition::kSignalsSatisfied));
static_assert(MOAT_TRIGGER_CONDITION_SIGNALS_UNSATISFIED ==
              static_cast<uint32_t>(TriggerCondition::kSignalsUnsatisfied));
static_assert(sizeof(MoatHandle) == sizeof(Handle));

thread_local std::string g_last_error;

MoatResult ResultFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kClosed:  // a closed/transferred handle is not a valid handle
      return MOAT_RESULT_INVALID_ARGUMENT;
    case ErrorCode::kFailedPrecondition:
    case ErrorCode::kPeerClosed:
      return MOAT_RESULT_FAILED_PRECONDITION;
    case ErrorCode::kMalformed:
    case ErrorCode::kProtocolViolation:
      return MOAT_RESULT_DATA_LOSS;
    case ErrorCode::kLimitExceeded:
    case ErrorCode::kQuotaExceeded:
    case ErrorCode::kResourceExhausted:
      return MOAT_RESULT_RESOURCE_EXHAUSTED;
    case ErrorCode::kBusy: return MOAT_RESULT_BUSY;
    case ErrorCode::kNotFound: return MOAT_RESULT_NOT_FOUND;
    case ErrorCode::kShouldWait:
    case ErrorCode::kIncomplete:
      return MOAT_RESULT_SHOULD_WAIT;
    case ErrorCode::kIo: return MOAT_RESULT_UNAVAILABLE;
    case ErrorCode::kAlreadyExists: return MOAT_RESULT_ALREADY_EXISTS;
    case ErrorCode::kDeadlineExceeded: return MOAT_RESULT_DEADLINE_EXCEEDED;
  }
  return MOAT_RESULT_UNKNOWN;
}

MoatResult Fail(const Error& error) {
  g_last_error = error.ToString();
  return ResultFor(error.code());
}

MoatResult Fail(MoatResult result, std::string message) {
  g_last_error = std::move(message);
  return result;
}

MoatResult Done(const Status& s) {
  if (!s.ok()) return Fail(s.error());
  g_last_error.clear();
  return MOAT_RESULT_OK;
}

// Every options struct is {struct_size, flags}; NULL means defaults.
template <typename Options>
MoatResult CheckOptions(const Options* options, const char* name) {
  if (options == nullptr) return MOAT_RESULT_OK;
  if (options->struct_size < sizeof(uint32_t) * 2) {
    return Fail(MOAT_RESULT_INVALID_ARGUMENT,
                internal::Concat(name, ".struct_size: ", options->struct_size, " is below ",
                                 sizeof(uint32_t) * 2));
  }
  if (options->flags != 0) {
    return Fail(MOAT_RESULT_UNIMPLEMENTED,
                internal::Concat(name, ".flags: unknown flags 0x", std::hex, options->flags));
  }
  return MOAT_RESULT_OK;
}

#define MOAT_C_CHECK_OPTIONS(options, name)                  \
  do {                                                       \
    MoatResult moat_options_result_ = CheckOptions(options, name); \
    if (moat_options_result_ != MOAT_RESULT_OK) return moat_options_result_; \
  } while (0)

void FillSignals(const HandleSignalsState& in, MoatHandleSignalsState* out) {
  out->struct_size = sizeof(MoatHandleSignalsState);
  out->satisfied_signals = in.satisfied;
  out->satisfiable_signals = in.satisfiable;
}

MoatResult EventResult(TrapEventResult r) {
  switch (r) {
    case TrapEventResult::kOk: return MOAT_RESULT_OK;
    case TrapEventResult::kFailedPrecondition: return MOAT_RESULT_FAILED_PRECONDITION;
    case TrapEventResult::kCancelled: return MOAT_RESULT_CANCELLED;
  }
  return MOAT_RESULT_UNKNOWN;
}

void FillEvent(const TrapEvent& in, MoatTrapEvent* out) {
  out->struct_size = sizeof(MoatTrapEvent);
  out->flags = 0;
  out->trigger_context = in.trigger_context;
  out->result = EventResult(in.result);
  FillSignals(in.signals_state, &out->signals_state);
}

Core& C() { return Core::ForProcess(); }

// The node this process became through the C API (never destroyed: its Core
// is the process Core).
std::atomic<moat::node::NodeController*> g_node{nullptr};

// Installs `node` as the process node; on failure it is destroyed.
MoatResult BecomeNode(std::unique_ptr<moat::node::NodeController> node, MoatHandle* bootstrap) {
  moat::Status s = Core::SetForProcess(&node->core());
  if (!s.ok()) return Fail(s.error());
  if (bootstrap != nullptr) *bootstrap = node->bootstrap();
  g_node.store(node.release(), std::memory_order_release);
  return Done(moat::OkStatus());
}

// Fails like SetForProcess would, before connecting anywhere.
MoatResult CheckCanBecomeNode() {
  if (g_node.load(std::memory_order_acquire) != nullptr) {
    return Fail(MOAT_RESULT_FAILED_PRECONDITION,
                "this process already joined a node (or became a broker)");
  }
  if (C().handle_count() != 0) {
    return Fail(MOAT_RESULT_FAILED_PRECONDITION,
                internal::Concat("the process handle table already holds ", C().handle_count(),
                       " handle(s); start or join a node before creating any"));
  }
  return MOAT_RESULT_OK;
}

moat::node::NodeController* Broker() {
  moat::node::NodeController* node = g_node.load(std::memory_order_acquire);
  return node != nullptr && node->is_broker() ? node : nullptr;
}

MoatResult NotBroker(const char* call) {
  return Fail(MOAT_RESULT_FAILED_PRECONDITION,
              internal::Concat(call, ": this process is not a broker (MoatStartBroker first)"));
}

MoatResult SocketAddress(const char* path, sockaddr_un* addr) {
  if (path == nullptr) return Fail(MOAT_RESULT_INVALID_ARGUMENT, "path: NULL");
  const size_t len = std::strlen(path);
  *addr = sockaddr_un{};
  addr->sun_family = AF_UNIX;
  if (len == 0 || len >= sizeof(addr->sun_path)) {
    return Fail(MOAT_RESULT_INVALID_ARGUMENT,
                internal::Concat("path: ", len, " bytes; a socket path has 1 to ",
                       sizeof(addr->sun_path) - 1));
  }
  std::memcpy(addr->sun_path, path, len);
  return MOAT_RESULT_OK;
}

MoatResult Errno(const char* what) {
  return Fail(MOAT_RESULT_UNAVAILABLE, internal::Concat(what, ": ", std::strerror(errno)));
}

}  // namespace
}  // namespace moat::system

using moat::Error;
using moat::node::NodeController;
using moat::ErrorCode;
using moat::UniqueFd;
using moat::internal::Concat;
using namespace moat::system;  // NOLINT: implementation file of the C API

extern "C" {

const char* MoatResultToString(MoatResult result) {
  switch (result) {
    case MOAT_RESULT_OK: return "OK";
    case MOAT_RESULT_CANCELLED: return "CANCELLED";
    case MOAT_RESULT_UNKNOWN: return "UNKNOWN";
    case MOAT_RESULT_INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case MOAT_RESULT_NOT_FOUND: return "NOT_FOUND";
    case MOAT_RESULT_ALREADY_EXISTS: return "ALREADY_EXISTS";
    case MOAT_RESULT_PERMISSION_DENIED: return "PERMISSION_DENIED";
    case MOAT_RESULT_RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case MOAT_RESULT_FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case MOAT_RESULT_OUT_OF_RANGE: return "OUT_OF_RANGE";
    case MOAT_RESULT_UNIMPLEMENTED: return "UNIMPLEMENTED";
    case MOAT_RESULT_INTERNAL: return "INTERNAL";
    case MOAT_RESULT_UNAVAILABLE: return "UNAVAILABLE";
    case MOAT_RESULT_DATA_LOSS: return "DATA_LOSS";
    case MOAT_RESULT_BUSY: return "BUSY";
    case MOAT_RESULT_SHOULD_WAIT: return "SHOULD_WAIT";
    case MOAT_RESULT_DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
  }
  return "UNRECOGNIZED";
}

const char* MoatGetLastErrorMessage(void) { return g_last_error.c_str(); }

MoatResult MoatCreateMessagePipe(const struct MoatCreateMessagePipeOptions* options,
                                 MoatHandle* endpoint0, MoatHandle* endpoint1) {
  MOAT_C_CHECK_OPTIONS(options, "MoatCreateMessagePipeOptions");
  if (endpoint0 == nullptr || endpoint1 == nullptr) {
    return Fail(MOAT_RESULT_INVALID_ARGUMENT, "endpoint0/endpoint1: NULL output pointer");
  }
  auto pipe = C().CreateMessagePipe();
  if (!pipe.ok()) return Fail(pipe.error());
  *endpoint0 = pipe->first;
  *endpoint1 = pipe->second;
  return Done(moat::OkStatus());
}

MoatResult MoatWriteMessage(MoatHandle pipe, const void* bytes, uint32_t num_bytes,
                            const MoatHandle* handles, uint32_t num_handles, const int* fds,
                            uint32_t num_fds, const struct MoatWriteMessageOptions* options) {
  // Descriptors are owned from the first instruction, so every return closes
  // them; except SHOULD_WAIT of a non-blocking write, which consumes nothing.
  MOAT_ASSERT(num_fds == 0 || fds != nullptr, "MoatWriteMessage: num_fds ", num_fds,
              " with a NULL fds array");
  const bool non_blocking = options != nullptr && options->struct_size >= sizeof(uint32_t) * 2 &&
                            options->flags == MOAT_WRITE_MESSAGE_FLAG_NON_BLOCKING;
  MOAT_ASSERT(num_fds <= moat::limits::MAX_MESSAGE_FD_COUNT, "MoatWriteMessage: ", num_fds,
              " descriptors exceed MAX_MESSAGE_FD_COUNT ", moat::limits::MAX_MESSAGE_FD_COUNT);
  std::vector<UniqueFd> owned;
  owned.reserve(num_fds);
  for (uint32_t i = 0; i < num_fds; ++i) {
    MOAT_ASSERT(fds[i] >= 0 && ::fcntl(fds[i], F_GETFD) != -1, "MoatWriteMessage: fds[", i,
                "] = ", fds[i], " is not an open descriptor");
    owned.emplace_back(fds[i]);
  }
  if (!non_blocking) MOAT_C_CHECK_OPTIONS(options, "MoatWriteMessageOptions");
  if (num_bytes != 0 && bytes == nullptr) {
    return Fail(MOAT_RESULT_INVALID_ARGUMENT, Concat("bytes: NULL with num_bytes ", num_bytes));
  }
  if (num_handles != 0 && handles == nullptr) {
    return Fail(MOAT_RESULT_INVALID_ARGUMENT,
                Concat("handles: NULL with num_handles ", num_handles));
  }
  MOAT_ASSERT(num_bytes <= moat::limits::MAX_MESSAGE_PAYLOAD_SIZE, "MoatWriteMessage: ",
              num_bytes, " bytes exceed MAX_MESSAGE_PAYLOAD_SIZE ",
              moat::limits::MAX_MESSAGE_PAYLOAD_SIZE);
  MOAT_ASSERT(num_handles <= moat::limits::MAX_MESSAGE_HANDLE_COUNT, "MoatWriteMessage: ",
              num_handles, " handles exceed MAX_MESSAGE_HANDLE_COUNT ",
              moat::limits::MAX_MESSAGE_HANDLE_COUNT);
  std::span<const uint8_t> payload(static_cast<const uint8_t*>(bytes), num_bytes);
  std::span<const Handle> attached(handles, num_handles);
  if (!non_blocking) return Done(C().WriteMessage(pipe, payload, attached, std::move(owned)));
  moat::Status s = C().TryWriteMessage(pipe, payload, attached, &owned);
  if (!s.ok() && s.error().code() == ErrorCode::kShouldWait) {
    for (UniqueFd& fd : owned) (void)fd.release();  // still the caller's
  }
  return Done(s);
}

namespace {

MoatResult ReadMessageImpl(MoatHandle pipe, const struct MoatReadMessageOptions* options,
                           void* bytes, uint32_t* num_bytes, MoatHandle* handles,
                           uint32_t* num_handles, int* fds, uint32_t* num_fds,
                           MoatHandle* context) {
  MOAT_C_CHECK_OPTIONS(options, "MoatReadMessageOptions");
  MessageSizes capacity;
  capacity.num_bytes = num_bytes ? *num_bytes : 0;
  capacity.num_handles = num_handles ? *num_handles : 0;
  capacity.num_fds = num_fds ? *num_fds : 0;
  if ((capacity.num_bytes != 0 && bytes == nullptr) ||
      (capacity.num_handles != 0 && handles == nullptr) ||
      (capacity.num_fds != 0 && fds == nullptr)) {
    return Fail(MOAT_RESULT_INVALID_ARGUMENT, "a buffer is NULL but its capacity is not 0");
  }
  MessageSizes sizes;
  auto m = C().ReadMessage(pipe, &capacity, &sizes, context);
  // Sizes are reported on success and on RESOURCE_EXHAUSTED (the size query).
  if (m.ok() || m.error().code() == ErrorCode::kResourceExhausted) {
    if (num_bytes) *num_bytes = static_cast<uint32_t>(sizes.num_bytes);
    if (num_handles) *num_handles = static_cast<uint32_t>(sizes.num_handles);
    if (num_fds) *num_fds = static_cast<uint32_t>(sizes.num_fds);
  }
  if (!m.ok()) return Fail(m.error());
  if (!m->payload.empty()) std::memcpy(bytes, m->payload.data(), m->payload.size());
  for (size_t i = 0; i < m->handles.size(); ++i) handles[i] = m->handles[i];
  for (size_t i = 0; i < m->fds.size(); ++i) fds[i] = m->fds[i].release();
  return Done(moat::OkStatus());
}

}  // namespace

MoatResult MoatReadMessage(MoatHandle pipe, const struct MoatReadMessageOptions* options,
                           void* bytes, uint32_t* num_bytes, MoatHandle* handles,
                           uint32_t* num_handles, int* fds, uint32_t* num_fds) {
  return ReadMessageImpl(pipe, options, bytes, num_bytes, handles, num_handles, fds, num_fds,
                         nullptr);
}

MoatResult MoatReadMessageWithContext(MoatHandle pipe,
                                      const struct MoatReadMessageOptions* options, void* bytes,
                                      uint32_t* num_bytes, MoatHandle* handles,
                                      uint32_t* num_handles, int* fds, uint32_t* num_fds,
                                      MoatHandle* context) {
  if (context == nullptr) return Fail(MOAT_RESULT_INVALID_ARGUMENT, "context: NULL");
  *context = MOAT_HANDLE_INVALID;
  return ReadMessageImpl(pipe, options, bytes, num_bytes, handles, num_handles, fds, num_fds,
                         context);
}

MoatResult MoatNotifyBadMessage(MoatHandle context, const char* reason, uint32_t reason_length,
                                const struct MoatNotifyBadMessageOptions* options) {
  MOAT_C_CHECK_OPTIONS(options, "MoatNotifyBadMessageOptions");
  if (reason_length != 0 && reason == nullptr) {
    return Fail(MOAT_RESULT_INVALID_ARGUMENT,
                Concat("reason: NULL with reason_length ", reason_length));
  }
  return Done(C().NotifyBadMessage(
      context, std::string_view(reason == nullptr ? "" : reason, reason_length)));
}

MoatResult MoatClose(MoatHandle handle) { return Done(C().Close(handle)); }

MoatResult MoatFuseMessagePipes(MoatHandle endpoint0, MoatHandle endpoint1,
                                const struct MoatFuseMessagePipesOptions* options) {
  MOAT_C_CHECK_OPTIONS(options, "MoatFuseMessagePipesOptions");
  return Done(C().FuseMessagePipes(endpoint0, endpoint1));
}

MoatResult MoatQueryHandleSignalsState(MoatHandle handle, struct MoatHandleSignalsState* state) {
  if (state == nullptr || state->struct_size < sizeof(MoatHandleSignalsState)) {
    return Fail(MOAT_RESULT_INVALID_ARGUMENT,
                "state: NULL or struct_size below sizeof(MoatHandleSignalsState)");
  }
  auto s = C().QuerySignals(handle);
  if (!s.ok()) return Fail(s.error());
  FillSignals(*s, state);
  return Done(moat::OkStatus());
}

MoatResult MoatSetQuota(MoatHandle pipe, MoatQuotaType type, uint64_t limit,
                        const struct MoatSetQuotaOptions* options) {
  MOAT_C_CHECK_OPTIONS(options, "MoatSetQuotaOptions");
  return Done(C().SetQuota(pipe, type, limit));
}

MoatResult MoatQueryQuota(MoatHandle pipe, MoatQuotaType type,
                          const struct MoatQueryQuotaOptions* options, uint64_t* limit,
                          uint64_t* usage) {
  MOAT_C_CHECK_OPTIONS(options, "MoatQueryQuotaOptions");
  auto q = C().QueryQuota(pipe, type);
  if (!q.ok()) return Fail(q.error());
  if (limit) *limit = q->limit;
  if (usage) *usage = q->usage;
  return Done(moat::OkStatus());
}

MoatResult MoatCreateTrap(MoatTrapEventHandler handler, const struct MoatCreateTrapOptions* options,
                          MoatHandle* trap) {
  Trap::Delivery delivery = Trap::Delivery::kAnyThread;
  if (options != nullptr && options->struct_size >= sizeof(uint32_t) * 2 &&
      options->flags == MOAT_CREATE_TRAP_FLAG_POLLABLE) {
    delivery = Trap::Delivery::kPollable;
  } else {
    MOAT_C_CHECK_OPTIONS(options, "MoatCreateTrapOptions");
  }
  if (handler == nullptr || trap == nullptr) {
    return Fail(MOAT_RESULT_INVALID_ARGUMENT, "handler/trap: NULL");
  }
  auto h = C().CreateTrap(
      [handler](const TrapEvent& e) {
        MoatTrapEvent event;
        FillEvent(e, &event);
        handler(&event);
      },
      delivery);
  if (!h.ok()) return Fail(h.error());
  *trap = *h;
  return Done(moat::OkStatus());
}

MoatResult MoatGetTrapDescriptor(MoatHandle trap, int* descriptor) {
  if (descriptor == nullptr) return Fail(MOAT_RESULT_INVALID_ARGUMENT, "descriptor: NULL");
  auto fd = C().TrapDescriptor(trap);
  if (!fd.ok()) return Fail(fd.error());
  *descriptor = *fd;
  return Done(moat::OkStatus());
}

MoatResult MoatDispatchTrapEvents(MoatHandle trap,
                                  const struct MoatDispatchTrapEventsOptions* options,
                                  uint32_t max_events, uint32_t* num_dispatched) {
  MOAT_C_CHECK_OPTIONS(options, "MoatDispatchTrapEventsOptions");
  if (num_dispatched != nullptr) *num_dispatched = 0;
  auto n = C().DispatchTrap(trap, max_events);
  if (!n.ok()) return Fail(n.error());
  if (num_dispatched != nullptr) *num_dispatched = static_cast<uint32_t>(*n);
  return Done(moat::OkStatus());
}

MoatResult MoatAddTrigger(MoatHandle trap, MoatHandle handle, MoatHandleSignals signals,
                          MoatTriggerCondition condition, uintptr_t context,
                          const struct MoatAddTriggerOptions* options) {
  MOAT_C_CHECK_OPTIONS(options, "MoatAddTriggerOptions");
  return Done(C().AddTrigger(trap, handle, signals, condition, context));
}

MoatResult MoatRemoveTrigger(MoatHandle trap, uintptr_t context,
                             const struct MoatRemoveTriggerOptions* options) {
  MOAT_C_CHECK_OPTIONS(options, "MoatRemoveTriggerOptions");
  return Done(C().RemoveTrigger(trap, context));
}

MoatResult MoatArmTrap(MoatHandle trap, const struct MoatArmTrapOptions* options,
                       uint32_t* num_blocking_events, struct MoatTrapEvent* blocking_events) {
  MOAT_C_CHECK_OPTIONS(options, "MoatArmTrapOptions");
  const uint32_t capacity = num_blocking_events ? *num_blocking_events : 0;
  if (capacity != 0 && blocking_events == nullptr) {
    return Fail(MOAT_RESULT_INVALID_ARGUMENT, "blocking_events: NULL with a capacity");
  }
  for (uint32_t i = 0; i < capacity; ++i) {
    if (blocking_events[i].struct_size < sizeof(MoatTrapEvent)) {
      return Fail(MOAT_RESULT_INVALID_ARGUMENT,
                  Concat("blocking_events[", i, "].struct_size: ", blocking_events[i].struct_size,
                         " is below sizeof(MoatTrapEvent) ", sizeof(MoatTrapEvent)));
    }
  }
  std::vector<TrapEvent> blocking;
  moat::Status s = C().ArmTrap(trap, &blocking, capacity);
  if (num_blocking_events) *num_blocking_events = 0;
  if (!s.ok() && s.error().code() == ErrorCode::kFailedPrecondition) {
    uint32_t n = 0;
    for (; n < capacity && n < blocking.size(); ++n) FillEvent(blocking[n], &blocking_events[n]);
    if (num_blocking_events) *num_blocking_events = n;
  }
  return Done(s);
}

MoatResult MoatStartBroker(const struct MoatNodeOptions* options) {
  MOAT_C_CHECK_OPTIONS(options, "MoatNodeOptions");
  MoatResult ready = CheckCanBecomeNode();
  if (ready != MOAT_RESULT_OK) return ready;
  return BecomeNode(NodeController::CreateBroker(), nullptr);
}

MoatResult MoatLaunchChild(const char* path, const char* const* args, uint32_t num_args,
                           const struct MoatLaunchChildOptions* options, int64_t* pid,
                           MoatHandle* bootstrap) {
  MOAT_C_CHECK_OPTIONS(options, "MoatLaunchChildOptions");
  if (path == nullptr || pid == nullptr || bootstrap == nullptr) {
    return Fail(MOAT_RESULT_INVALID_ARGUMENT, "path/pid/bootstrap: NULL");
  }
  if (num_args != 0 && args == nullptr) {
    return Fail(MOAT_RESULT_INVALID_ARGUMENT, Concat("args: NULL with num_args ", num_args));
  }
  std::vector<std::string> argv;
  for (uint32_t i = 0; i < num_args; ++i) {
    if (args[i] == nullptr) return Fail(MOAT_RESULT_INVALID_ARGUMENT, Concat("args[", i, "]: NULL"));
    argv.emplace_back(args[i]);
  }
  NodeController* broker = Broker();
  if (broker == nullptr) return NotBroker("MoatLaunchChild");
  auto child = broker->LaunchChild(path, argv);
  if (!child.ok()) return Fail(child.error());
  *pid = child->pid;
  *bootstrap = child->bootstrap;
  return Done(moat::OkStatus());
}

MoatResult MoatInviteChild(const struct MoatInviteChildOptions* options, int* child_socket,
                           MoatHandle* bootstrap) {
  MOAT_C_CHECK_OPTIONS(options, "MoatInviteChildOptions");
  if (child_socket == nullptr || bootstrap == nullptr) {
    return Fail(MOAT_RESULT_INVALID_ARGUMENT, "child_socket/bootstrap: NULL");
  }
  NodeController* broker = Broker();
  if (broker == nullptr) return NotBroker("MoatInviteChild");
  auto invitation = broker->InviteChild();
  if (!invitation.ok()) return Fail(invitation.error());
  *child_socket = invitation->child_socket.release();
  *bootstrap = invitation->bootstrap;
  return Done(moat::OkStatus());
}

MoatResult MoatAcceptInvitation(int socket, const struct MoatAcceptInvitationOptions* options,
                                MoatHandle* bootstrap) {
  UniqueFd owned(socket >= 0 ? socket : -1);  // consumed on every path
  MOAT_C_CHECK_OPTIONS(options, "MoatAcceptInvitationOptions");
  if (bootstrap == nullptr) return Fail(MOAT_RESULT_INVALID_ARGUMENT, "bootstrap: NULL");
  MoatResult ready = CheckCanBecomeNode();
  if (ready != MOAT_RESULT_OK) return ready;
  if (!owned.valid()) {
    auto inherited = moat::node::TakeBrokerSocketFromEnvironment();
    if (!inherited.ok()) return Fail(inherited.error());
    owned = std::move(*inherited);
  }
  auto node = NodeController::ConnectToBroker(std::move(owned));
  if (!node.ok()) return Fail(node.error());
  return BecomeNode(std::move(*node), bootstrap);
}

MoatResult MoatCreateNamedServer(const char* path, const struct MoatNamedSocketOptions* options,
                                 int* server_socket) {
  MOAT_C_CHECK_OPTIONS(options, "MoatNamedSocketOptions");
  if (server_socket == nullptr) return Fail(MOAT_RESULT_INVALID_ARGUMENT, "server_socket: NULL");
  sockaddr_un addr;
  MoatResult r = SocketAddress(path, &addr);
  if (r != MOAT_RESULT_OK) return r;
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Errno("socket");
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Errno(Concat("bind ", path).c_str());
  }
  if (::listen(fd.get(), 16) != 0) return Errno("listen");
  *server_socket = fd.release();
  return Done(moat::OkStatus());
}

MoatResult MoatAcceptNamedChild(int server_socket, const struct MoatNamedSocketOptions* options,
                                MoatHandle* bootstrap) {
  MOAT_C_CHECK_OPTIONS(options, "MoatNamedSocketOptions");
  if (bootstrap == nullptr) return Fail(MOAT_RESULT_INVALID_ARGUMENT, "bootstrap: NULL");
  NodeController* broker = Broker();
  if (broker == nullptr) return NotBroker("MoatAcceptNamedChild");
  UniqueFd fd(::accept4(server_socket, nullptr, nullptr, SOCK_CLOEXEC));
  if (!fd.valid()) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return Fail(MOAT_RESULT_SHOULD_WAIT, "no child is connecting yet");
    }
    return Errno("accept");
  }
  // Attack: another local user connecting to our named socket to become a
  // child (and so get pipes to us, or pose as one of our children).
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return Errno("SO_PEERCRED");
  if (cred.uid != ::geteuid()) {
    return Fail(MOAT_RESULT_PERMISSION_DENIED,
                Concat("named child: connecting process (pid ", cred.pid, ") runs as uid ",
                       cred.uid, ", not ", ::geteuid(), "; disconnected"));
  }
  auto child = broker->AddChild(std::move(fd));
  if (!child.ok()) return Fail(child.error());
  *bootstrap = child->bootstrap;
  return Done(moat::OkStatus());
}

MoatResult MoatConnectToNamedBroker(const char* path, const struct MoatNamedSocketOptions* options,
                                    MoatHandle* bootstrap) {
  MOAT_C_CHECK_OPTIONS(options, "MoatNamedSocketOptions");
  if (bootstrap == nullptr) return Fail(MOAT_RESULT_INVALID_ARGUMENT, "bootstrap: NULL");
  sockaddr_un addr;
  MoatResult r = SocketAddress(path, &addr);
  if (r != MOAT_RESULT_OK) return r;
  MoatResult ready = CheckCanBecomeNode();
  if (ready != MOAT_RESULT_OK) return ready;
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Errno("socket");
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Errno(Concat("connect ", path).c_str());
  }
  auto node = NodeController::ConnectToBroker(std::move(fd));
  if (!node.ok()) return Fail(node.error());
  return BecomeNode(std::move(*node), bootstrap);
}

MoatResult MoatGetBrokerLossReason(const char** reason) {
  if (reason == nullptr) return Fail(MOAT_RESULT_INVALID_ARGUMENT, "reason: NULL");
  NodeController* node = g_node.load(std::memory_order_acquire);
  if (node == nullptr || node->is_broker()) {
    return Fail(MOAT_RESULT_FAILED_PRECONDITION,
                "MoatGetBrokerLossReason: this process is not a child node");
  }
  std::optional<Error> loss = node->BrokerLoss();
  if (!loss) return Fail(MOAT_RESULT_NOT_FOUND, "the connection to the broker is up");
  static thread_local std::string text;
  text = loss->ToString();
  *reason = text.c_str();
  return Done(moat::OkStatus());
}

MoatResult MoatCreateSharedBuffer(uint64_t size, const struct MoatSharedBufferOptions* options,
                                  int* buffer) {
  MOAT_C_CHECK_OPTIONS(options, "MoatSharedBufferOptions");
  if (buffer == nullptr) return Fail(MOAT_RESULT_INVALID_ARGUMENT, "buffer: NULL");
  auto fd = CreateSharedBuffer(size);
  if (!fd.ok()) return Fail(fd.error());
  *buffer = fd->release();
  return Done(moat::OkStatus());
}

MoatResult MoatDuplicateSharedBufferReadOnly(int buffer,
                                             const struct MoatSharedBufferOptions* options,
                                             int* read_only) {
  MOAT_C_CHECK_OPTIONS(options, "MoatSharedBufferOptions");
  if (read_only == nullptr) return Fail(MOAT_RESULT_INVALID_ARGUMENT, "read_only: NULL");
  auto fd = DuplicateSharedBufferReadOnly(buffer);
  if (!fd.ok()) return Fail(fd.error());
  *read_only = fd->release();
  return Done(moat::OkStatus());
}

MoatResult MoatGetSharedBufferInfo(int buffer, struct MoatSharedBufferInfo* info) {
  if (info == nullptr || info->struct_size < sizeof(MoatSharedBufferInfo)) {
    return Fail(MOAT_RESULT_INVALID_ARGUMENT,
                "info: NULL or struct_size below sizeof(MoatSharedBufferInfo)");
  }
  auto i = InspectSharedBuffer(buffer);
  if (!i.ok()) return Fail(i.error());
  info->struct_size = sizeof(MoatSharedBufferInfo);
  info->flags = i->read_only ? MOAT_SHARED_BUFFER_INFO_FLAG_READ_ONLY : 0;
  info->size = i->size;
  return Done(moat::OkStatus());
}

MoatResult MoatMapSharedBuffer(int buffer, const struct MoatMapSharedBufferOptions* options,
                               void** address, uint64_t* size) {
  bool writable = true;
  if (options != nullptr) {
    if (options->struct_size < sizeof(MoatMapSharedBufferOptions)) {
      return Fail(MOAT_RESULT_INVALID_ARGUMENT,
                  Concat("MoatMapSharedBufferOptions.struct_size: ", options->struct_size,
                         " is below ", sizeof(MoatMapSharedBufferOptions)));
    }
    if ((options->flags & ~MOAT_MAP_SHARED_BUFFER_FLAG_READ_ONLY) != 0) {
      return Fail(MOAT_RESULT_UNIMPLEMENTED,
                  Concat("MoatMapSharedBufferOptions.flags: unknown flags 0x", std::hex,
                         options->flags & ~MOAT_MAP_SHARED_BUFFER_FLAG_READ_ONLY));
    }
    writable = (options->flags & MOAT_MAP_SHARED_BUFFER_FLAG_READ_ONLY) == 0;
  }
  if (address == nullptr || size == nullptr) {
    return Fail(MOAT_RESULT_INVALID_ARGUMENT, "address/size: NULL");
  }
  auto m = MapSharedBuffer(buffer, writable);
  if (!m.ok()) return Fail(m.error());
  *size = m->size();
  *address = m->release();
  return Done(moat::OkStatus());
}

MoatResult MoatUnmapSharedBuffer(void* address, uint64_t size) {
  if (address == nullptr || size == 0) {
    return Fail(MOAT_RESULT_INVALID_ARGUMENT, "address/size: NULL or 0");
  }
  if (::munmap(address, static_cast<size_t>(size)) != 0) {
    return Fail(MOAT_RESULT_INVALID_ARGUMENT, Concat("munmap: ", std::strerror(errno)));
  }
  return Done(moat::OkStatus());
}

}  // extern "C"
