#include "core/system/core.h"

#include <atomic>
#include <utility>

#include "core/check.h"
#include "core/deferred_close.h"

namespace moat::system {
namespace {

Error StaleHandle(Handle handle, uint32_t tag) {
  if ((handle >> 32) != tag) {
    return Error(ErrorCode::kInvalidArgument,
                 internal::Concat("handle 0x", std::hex, handle,
                                  " was not issued by this handle table (tag 0x", tag,
                                  "): another Core's handle, or made up"));
  }
  return Error(ErrorCode::kInvalidArgument,
               internal::Concat("handle 0x", std::hex, handle,
                                " is not valid (closed, transferred, or never issued)"));
}

uint32_t NewTableTag() {
  for (;;) {
    const uint32_t tag = static_cast<uint32_t>(ports::NodeName::Random().lo);
    if (tag != 0) return tag;
  }
}

inline uint32_t IndexOf(Handle h) { return static_cast<uint32_t>(h) & kHandleIndexMask; }
inline uint32_t GenerationOf(Handle h) { return static_cast<uint32_t>(h) >> kHandleIndexBits; }

std::atomic<Core*> g_installed_core{nullptr};
std::atomic<Core*> g_local_core{nullptr};
Mutex g_process_core_mu;

}  // namespace

Core::Core(EventForwarder forwarder, ports::NodeName name, ports::NodeOptions node_options)
    : forwarder_(std::move(forwarder)),
      table_tag_(NewTableTag()),
      node_(std::make_unique<ports::Node>(name, this, node_options)) {
  MutexLock lock(&table_mu_);
  slots_.emplace_back();  // index 0: handle 0 is never valid
}

Core::~Core() {
  std::vector<Object> objects;
  {
    MutexLock lock(&table_mu_);
    for (Slot& slot : slots_) {
      if (!std::holds_alternative<std::monostate>(slot.object)) {
        objects.push_back(std::move(slot.object));
      }
    }
    slots_.clear();
    free_slots_.clear();
    live_handles_ = 0;
  }
  // Traps first so their triggers are cancelled before the endpoints go.
  for (Object& o : objects) {
    if (auto* trap = std::get_if<std::shared_ptr<Trap>>(&o)) (*trap)->Close();
  }
  for (Object& o : objects) {
    if (auto* ep = std::get_if<std::shared_ptr<MessagePipeEndpoint>>(&o)) (void)(*ep)->Close();
  }
  objects.clear();
  node_.reset();
}

Core& Core::ForProcess() {
  if (Core* installed = g_installed_core.load(std::memory_order_acquire)) return *installed;
  MutexLock lock(&g_process_core_mu);
  if (Core* installed = g_installed_core.load(std::memory_order_acquire)) return *installed;
  Core* local = g_local_core.load(std::memory_order_acquire);
  if (local == nullptr) {
    local = new Core();  // never destroyed
    g_local_core.store(local, std::memory_order_release);
  }
  return *local;
}

Status Core::SetForProcess(Core* core) {
  MOAT_ASSERT(core != nullptr, "SetForProcess(nullptr)");
  MutexLock lock(&g_process_core_mu);
  MOAT_REQUIRE(g_installed_core.load() == nullptr, ErrorCode::kFailedPrecondition,
               "this process already joined a node (or became a broker)");
  Core* local = g_local_core.load();
  MOAT_REQUIRE(local == nullptr || local->handle_count() == 0, ErrorCode::kFailedPrecondition,
               "the process Core already holds ", local ? local->handle_count() : 0,
               " handle(s); start or join a node before creating any");
  g_installed_core.store(core, std::memory_order_release);
  return OkStatus();
}

Result<Handle> Core::AddHandle(Object object) {
  MutexLock lock(&table_mu_);
  uint32_t index;
  if (!free_slots_.empty()) {
    index = free_slots_.back();
    free_slots_.pop_back();
  } else {
    // Attack: a peer sending handle after handle to grow our table without bound.
    MOAT_REQUIRE(slots_.size() <= kHandleIndexMask, ErrorCode::kResourceExhausted,
                 "handle table full: ", kHandleIndexMask, " live handles");
    index = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  Slot& slot = slots_[index];
  slot.object = std::move(object);
  ++live_handles_;
  return (static_cast<Handle>(table_tag_) << 32) |
         static_cast<Handle>((slot.generation << kHandleIndexBits) | index);
}

Result<Core::Object> Core::Lookup(Handle handle) const {
  const uint32_t index = IndexOf(handle);
  const uint32_t generation = GenerationOf(handle);
  MutexLock lock(&table_mu_);
  if ((handle >> 32) != table_tag_ || index == 0 || index >= slots_.size() ||
      slots_[index].generation != generation ||
      std::holds_alternative<std::monostate>(slots_[index].object)) {
    return StaleHandle(handle, table_tag_);
  }
  return slots_[index].object;
}

Result<std::shared_ptr<MessagePipeEndpoint>> Core::GetEndpoint(Handle handle) const {
  const uint32_t index = IndexOf(handle);
  const uint32_t generation = GenerationOf(handle);
  if ((handle >> 32) == table_tag_) {
    // Every read and write starts here: one reference taken under the lock,
    // without copying the slot's variant first.
    MutexLock lock(&table_mu_);
    if (index != 0 && index < slots_.size() && slots_[index].generation == generation) {
      if (auto* ep = std::get_if<std::shared_ptr<MessagePipeEndpoint>>(&slots_[index].object)) {
        return *ep;
      }
    }
  }
  MOAT_ASSIGN_OR_RETURN(Object o, Lookup(handle));  // the precise error
  // (The slot may have been filled meanwhile.)
  if (auto* ep = std::get_if<std::shared_ptr<MessagePipeEndpoint>>(&o)) return *ep;
  return Error(ErrorCode::kInvalidArgument,
               internal::Concat("handle 0x", std::hex, handle, " is not a message pipe"));
}

Result<std::shared_ptr<Trap>> Core::LookupTrap(Handle handle) const {
  MOAT_ASSIGN_OR_RETURN(Object o, Lookup(handle));
  auto* trap = std::get_if<std::shared_ptr<Trap>>(&o);
  if (trap == nullptr) {
    return Error(ErrorCode::kInvalidArgument,
                 internal::Concat("handle 0x", std::hex, handle, " is not a trap"));
  }
  return *trap;
}

void Core::RemoveHandle(Handle handle, const Object& object) {
  const uint32_t index = IndexOf(handle);
  const uint32_t generation = GenerationOf(handle);
  MutexLock lock(&table_mu_);
  if ((handle >> 32) != table_tag_ || index == 0 || index >= slots_.size()) return;
  Slot& slot = slots_[index];
  if (slot.generation != generation || slot.object != object) return;
  slot.object = std::monostate{};
  --live_handles_;
  if (slot.generation == kMaxHandleGeneration) return;  // retired: never reissued
  ++slot.generation;
  free_slots_.push_back(index);
}

size_t Core::handle_count() const {
  MutexLock lock(&table_mu_);
  return live_handles_;
}

Result<Handle> Core::AdoptPort(ports::PortRef port) {
  auto ep = std::make_shared<MessagePipeEndpoint>(node_.get(), port);
  {
    MutexLock lock(&observers_mu_);
    observers_[port.name()] = ep;
  }
  Result<Handle> h = AddHandle(ep);
  if (!h.ok()) {
    Unobserve(port.name());
    (void)ep->Close();
  }
  return h;
}

void Core::Unobserve(const ports::PortName& name) {
  MutexLock lock(&observers_mu_);
  observers_.erase(name);
}

bool Core::IsBound(const ports::PortName& name) {
  MutexLock lock(&observers_mu_);
  return observers_.count(name) != 0;
}

Result<std::pair<Handle, Handle>> Core::CreateMessagePipe() {
  ports::PortRef a, b;
  MOAT_TRY(node_->CreatePortPair(&a, &b));
  Result<Handle> ha = AdoptPort(a);
  if (!ha.ok()) {
    (void)node_->ClosePort(b);
    return std::move(ha).error();
  }
  Result<Handle> hb = AdoptPort(b);
  if (!hb.ok()) {
    (void)Close(*ha);
    return std::move(hb).error();
  }
  return std::make_pair(*ha, *hb);
}

Status Core::WriteMessage(Handle pipe, std::span<const uint8_t> payload,
                          std::span<const Handle> handles, std::vector<UniqueFd> fds) {
  MOAT_ASSIGN_OR_RETURN(std::shared_ptr<MessagePipeEndpoint> sender, LookupPipe(pipe));
  std::vector<std::shared_ptr<MessagePipeEndpoint>> attached;
  attached.reserve(handles.size());
  for (size_t i = 0; i < handles.size(); ++i) {
    Result<std::shared_ptr<MessagePipeEndpoint>> ep = LookupPipe(handles[i]);
    if (!ep.ok()) return std::move(ep).error().WithField(internal::Concat("handles[", i, "]"));
    attached.push_back(std::move(ep).value());
  }
  Status s = sender->Write(payload, attached, std::move(fds));
  if (s.ok() || s.error().code() == ErrorCode::kPeerClosed) {
    if (!s.ok() && attached.empty()) return s;
    for (size_t i = 0; i < handles.size(); ++i) {
      Unobserve(attached[i]->port().name());
      RemoveHandle(handles[i], Object(attached[i]));
    }
  }
  return s;
}

Status Core::TryWriteMessage(Handle pipe, std::span<const uint8_t> payload,
                             std::span<const Handle> handles, std::vector<UniqueFd>* fds) {
  MOAT_ASSIGN_OR_RETURN(std::shared_ptr<MessagePipeEndpoint> sender, LookupPipe(pipe));
  MOAT_ASSIGN_OR_RETURN(bool would_wait, sender->WouldWaitToWrite());
  if (would_wait) {
    return Error(ErrorCode::kShouldWait,
                 "write would wait: the pipe is not WRITABLE (its peer's node has not confirmed "
                 "a new link, its unread-bytes window is full, or the connection's send queue is "
                 "above its high-water mark)");
  }
  ports::ScopedNoWait no_wait;
  return WriteMessage(pipe, payload, handles, std::move(*fds));
}

Result<ReadResult> Core::ReadMessage(Handle pipe, const MessageSizes* capacity,
                                     MessageSizes* sizes, Handle* context) {
  MOAT_ASSIGN_OR_RETURN(std::shared_ptr<MessagePipeEndpoint> ep, LookupPipe(pipe));
  std::shared_ptr<MessageContext> origin;
  Handle origin_handle = kInvalidHandle;
  if (context != nullptr) {
    origin = std::make_shared<MessageContext>();
    MOAT_ASSIGN_OR_RETURN(origin_handle, AddHandle(origin));
  }
  Result<ReceivedMessage> read =
      ep->Read(capacity, sizes, [this](const ports::PortName& name) { return IsBound(name); });
  if (!read.ok()) {
    if (origin) RemoveHandle(origin_handle, Object(origin));
    return std::move(read).error();
  }
  ReceivedMessage& m = *read;
  ReadResult out;
  out.payload = std::move(m.payload);
  out.fds = std::move(m.fds);
  out.source_node = m.source_node;
  for (size_t i = 0; i < m.ports.size(); ++i) {
    Result<Handle> h = AdoptPort(m.ports[i]);
    if (!h.ok()) {
      // Nothing of this message may survive half-delivered.
      for (size_t j = i + 1; j < m.ports.size(); ++j) (void)node_->ClosePort(m.ports[j]);
      for (Handle made : out.handles) (void)Close(made);
      if (origin) RemoveHandle(origin_handle, Object(origin));
      CloseDeferred(out.fds);  // possibly a peer's: never wait for them here (TRP-12)
      return std::move(h).error();
    }
    out.handles.push_back(*h);
  }
  if (origin) {
    // Published to other threads through table_mu_ (Lookup) once returned.
    origin->source_node = m.source_node;
    *context = origin_handle;
  }
  return out;
}

Status Core::NotifyBadMessage(Handle context, std::string_view reason) {
  MOAT_ASSIGN_OR_RETURN(Object o, Lookup(context));
  auto* origin = std::get_if<std::shared_ptr<MessageContext>>(&o);
  MOAT_REQUIRE(origin != nullptr, ErrorCode::kInvalidArgument, "handle 0x", std::hex, context,
               " is not a message context");
  const ports::NodeName source = (*origin)->source_node;
  RemoveHandle(context, o);
  if (!source.is_valid() || source == node_->name()) return OkStatus();
  BadEventFrom(source, Error(ErrorCode::kProtocolViolation,
                             internal::Concat("the embedder of node ", node_->name().ToString(),
                                              " reported a bad message from node ",
                                              source.ToString(), ": ", reason)));
  return OkStatus();
}

Status Core::Close(Handle handle) {
  MOAT_ASSIGN_OR_RETURN(Object o, Lookup(handle));
  if (auto* ep = std::get_if<std::shared_ptr<MessagePipeEndpoint>>(&o)) {
    MOAT_TRY((*ep)->Close());
    Unobserve((*ep)->port().name());
  } else if (auto* trap = std::get_if<std::shared_ptr<Trap>>(&o)) {
    (*trap)->Close();
  }
  RemoveHandle(handle, o);
  return OkStatus();
}

Status Core::FuseMessagePipes(Handle a, Handle b) {
  MOAT_REQUIRE(a != b, ErrorCode::kInvalidArgument, "fuse: a pipe endpoint cannot be fused with itself");
  MOAT_ASSIGN_OR_RETURN(std::shared_ptr<MessagePipeEndpoint> ea, LookupPipe(a));
  MOAT_ASSIGN_OR_RETURN(std::shared_ptr<MessagePipeEndpoint> eb, LookupPipe(b));
  Status begin_a = ea->BeginTransit();
  if (!begin_a.ok()) return std::move(begin_a).error().WithField("fuse.a");
  Status begin_b = eb->BeginTransit();
  if (!begin_b.ok()) {
    ea->CancelTransit();
    return std::move(begin_b).error().WithField("fuse.b");
  }
  Status merged = node_->MergeLocalPorts(ea->port(), eb->port());
  if (!merged.ok()) {
    ea->CancelTransit();
    eb->CancelTransit();
    return merged;
  }
  ea->CompleteTransit();
  eb->CompleteTransit();
  Unobserve(ea->port().name());
  Unobserve(eb->port().name());
  RemoveHandle(a, Object(ea));
  RemoveHandle(b, Object(eb));
  return OkStatus();
}

Result<HandleSignalsState> Core::QuerySignals(Handle pipe) {
  MOAT_ASSIGN_OR_RETURN(std::shared_ptr<MessagePipeEndpoint> ep, LookupPipe(pipe));
  return ep->QuerySignals();
}

Status Core::SetQuota(Handle pipe, uint32_t type, uint64_t limit) {
  MOAT_ASSIGN_OR_RETURN(std::shared_ptr<MessagePipeEndpoint> ep, LookupPipe(pipe));
  MOAT_ASSIGN_OR_RETURN(QuotaType t, QuotaSet::ParseType(type));
  return ep->SetQuota(t, limit);
}

Result<QuotaState> Core::QueryQuota(Handle pipe, uint32_t type) {
  MOAT_ASSIGN_OR_RETURN(std::shared_ptr<MessagePipeEndpoint> ep, LookupPipe(pipe));
  MOAT_ASSIGN_OR_RETURN(QuotaType t, QuotaSet::ParseType(type));
  return ep->QueryQuota(t);
}

Result<Handle> Core::CreateTrap(Trap::Handler handler, Trap::Delivery delivery) {
  MOAT_REQUIRE(handler != nullptr, ErrorCode::kInvalidArgument, "create trap: null handler");
  MOAT_ASSIGN_OR_RETURN(std::shared_ptr<Trap> trap, Trap::Create(std::move(handler), delivery));
  Result<Handle> h = AddHandle(trap);
  if (!h.ok()) trap->Close();
  return h;
}

Result<int> Core::TrapDescriptor(Handle trap) const {
  MOAT_ASSIGN_OR_RETURN(std::shared_ptr<Trap> t, LookupTrap(trap));
  return t->descriptor();
}

Result<size_t> Core::DispatchTrap(Handle trap, size_t max_events) {
  MOAT_ASSIGN_OR_RETURN(std::shared_ptr<Trap> t, LookupTrap(trap));
  return t->Dispatch(max_events);
}

Status Core::AddTrigger(Handle trap, Handle handle, SignalSet signals, uint32_t condition,
                        uintptr_t context) {
  MOAT_REQUIRE(condition <= static_cast<uint32_t>(TriggerCondition::kSignalsUnsatisfied),
               ErrorCode::kInvalidArgument, "trigger condition ", condition,
               " is not a known condition");
  MOAT_ASSIGN_OR_RETURN(std::shared_ptr<Trap> t, LookupTrap(trap));
  MOAT_ASSIGN_OR_RETURN(std::shared_ptr<MessagePipeEndpoint> ep, LookupPipe(handle));
  return t->AddTrigger(std::move(ep), signals, static_cast<TriggerCondition>(condition),
                       context);
}

Status Core::RemoveTrigger(Handle trap, uintptr_t context) {
  MOAT_ASSIGN_OR_RETURN(std::shared_ptr<Trap> t, LookupTrap(trap));
  return t->RemoveTrigger(context);
}

Status Core::ArmTrap(Handle trap, std::vector<TrapEvent>* blocking_events, size_t max_events) {
  MOAT_ASSIGN_OR_RETURN(std::shared_ptr<Trap> t, LookupTrap(trap));
  return t->Arm(blocking_events, max_events);
}

Result<ports::PortName> Core::ReleaseForRemoteMerge(Handle pipe) {
  MOAT_ASSIGN_OR_RETURN(std::shared_ptr<MessagePipeEndpoint> ep, LookupPipe(pipe));
  MOAT_TRY(ep->BeginTransit());
  ep->CompleteTransit();
  Unobserve(ep->port().name());
  RemoveHandle(pipe, Object(ep));
  return ep->port().name();
}

Status Core::MergeWithRemotePort(Handle local, const ports::NodeName& node,
                                 const ports::PortName& port) {
  MOAT_ASSIGN_OR_RETURN(std::shared_ptr<MessagePipeEndpoint> ep, LookupPipe(local));
  MOAT_TRY(ep->BeginTransit());
  Status s = node_->MergePorts(ep->port(), node, port);
  if (!s.ok()) {
    ep->CancelTransit();
    return s;
  }
  ep->CompleteTransit();
  Unobserve(ep->port().name());
  RemoveHandle(local, Object(ep));
  return OkStatus();
}

void Core::ForwardEvent(const ports::NodeName& node, std::unique_ptr<ports::Event> event) {
  if (forwarder_) forwarder_(node, std::move(event));
}

void Core::PortStatusChanged(const ports::PortRef& port) {
  std::shared_ptr<MessagePipeEndpoint> ep;
  {
    MutexLock lock(&observers_mu_);
    auto it = observers_.find(port.name());
    if (it == observers_.end()) return;
    ep = it->second.lock();
  }
  if (ep) ep->OnPortStatusChanged();
}

}  // namespace moat::system
