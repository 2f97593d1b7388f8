#include "transport/ring/ring.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/check.h"
#include "limits/limits.h"

namespace moat::transport::ring {

namespace internal {
void (*g_after_length_read_for_testing)(RingView view) = nullptr;
}  // namespace internal

namespace {

constexpr unsigned kRequiredSeals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;

bool IsValidCapacity(uint64_t capacity) {
  return capacity >= limits::RING_MIN_CAPACITY && capacity <= limits::RING_MAX_CAPACITY &&
         (capacity & (capacity - 1)) == 0;
}

// Every access to a field the peer can write is one atomic load or store:
// the compiler can neither re-read it nor tear it.
uint64_t Load64(const RingView& v, size_t offset, int order) {
  return __atomic_load_n(reinterpret_cast<const uint64_t*>(v.base + offset), order);
}
void Store64(const RingView& v, size_t offset, uint64_t value, int order) {
  __atomic_store_n(reinterpret_cast<uint64_t*>(v.base + offset), value, order);
}
uint32_t Load32(const RingView& v, size_t offset, int order) {
  return __atomic_load_n(reinterpret_cast<const uint32_t*>(v.base + offset), order);
}
void Store32(const RingView& v, size_t offset, uint32_t value, int order) {
  __atomic_store_n(reinterpret_cast<uint32_t*>(v.base + offset), value, order);
}

uint8_t* Data(const RingView& v) { return v.base + kControlSize; }

// Copies n bytes starting at data-area position pos (< capacity), wrapping.
void CopyOut(const RingView& v, uint64_t pos, uint8_t* dst, size_t n) {
  if (n == 0) return;  // an empty vector's data() may be null
  const size_t first = static_cast<size_t>(std::min<uint64_t>(n, v.capacity - pos));
  std::memcpy(dst, Data(v) + pos, first);
  std::memcpy(dst + first, Data(v), n - first);
}
void CopyIn(const RingView& v, uint64_t pos, const uint8_t* src, size_t n) {
  if (n == 0) return;
  const size_t first = static_cast<size_t>(std::min<uint64_t>(n, v.capacity - pos));
  std::memcpy(Data(v) + pos, src, first);
  std::memcpy(Data(v), src + first, n - first);
}

// One doorbell datagram; never blocks (MSG_DONTWAIT is per call, so a peer
// that clears O_NONBLOCK on the shared description cannot make it block). A
// full doorbell (EAGAIN) already holds a pending wake; a dead peer is seen by
// the next wait.
void Ring(int doorbell) {
  if (doorbell < 0) return;
  const uint8_t one = 1;
  ssize_t r;
  do {
    r = ::send(doorbell, &one, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (r < 0 && errno == EINTR);
}

enum class Woke { kDoorbell, kPeerClosed, kWatchReadable };

// Sleeps until the doorbell (or `watch`, if any) has something. With a watch
// descriptor it polls both and drains at most RING_MAX_DOORBELL_DRAIN bells.
Result<Woke> WaitForBell(int doorbell, int watch) {
  if (watch < 0) {
    // One blocking recv is both the wait and the drain of one bell (our end's
    // flags are ours: the peer holds the other end, a different file). A
    // dead peer reads as end of file. Stale bells left queued wake us again
    // and count as spurious, so a storm stays bounded.
    uint8_t buf[16];
    ssize_t r;
    do {
      r = ::recv(doorbell, buf, sizeof(buf), 0);
    } while (r < 0 && errno == EINTR);
    if (r == 0 || (r < 0 && (errno == ECONNRESET || errno == EPIPE))) return Woke::kPeerClosed;
    if (r < 0) return IoError("recv doorbell", errno);
    return Woke::kDoorbell;
  }
  pollfd fds[2] = {{doorbell, POLLIN, 0}, {watch, POLLIN | POLLRDHUP, 0}};
  const nfds_t n = watch >= 0 ? 2 : 1;
  int r;
  do {
    r = ::poll(fds, n, -1);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return IoError("poll", errno);
  if (fds[0].revents & POLLIN) {
    uint8_t buf[16];
    for (uint32_t i = 0; i < limits::RING_MAX_DOORBELL_DRAIN; ++i) {
      if (::recv(doorbell, buf, sizeof(buf), MSG_DONTWAIT) <= 0) break;
    }
  }
  if ((fds[0].revents & (POLLHUP | POLLERR | POLLNVAL)) ||
      (n == 2 && (fds[1].revents & (POLLHUP | POLLRDHUP | POLLERR | POLLNVAL)))) {
    return Woke::kPeerClosed;
  }
  if (n == 2 && (fds[1].revents & POLLIN)) return Woke::kWatchReadable;
  return Woke::kDoorbell;
}

}  // namespace

// ---- RingMemory ----

Result<RingMemory> RingMemory::Create(uint64_t capacity) {
  MOAT_ASSERT(IsValidCapacity(capacity), "ring capacity ", capacity,
              " is not a power of two in [RING_MIN_CAPACITY, RING_MAX_CAPACITY]");
  UniqueFd fd(::memfd_create("moat-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) return IoError("memfd_create", errno);
  const size_t size = kControlSize + capacity;
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) return IoError("ftruncate", errno);
  if (::fcntl(fd.get(), F_ADD_SEALS, kRequiredSeals) != 0) return IoError("F_ADD_SEALS", errno);
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) return IoError("mmap", errno);
  return RingMemory(std::move(fd), RingView{static_cast<uint8_t*>(p), capacity});
}

Result<RingMemory> RingMemory::Adopt(UniqueFd fd, uint64_t capacity) {
  MOAT_ASSERT(IsValidCapacity(capacity), "expected ring capacity ", capacity,
              " is not a power of two in [RING_MIN_CAPACITY, RING_MAX_CAPACITY]");
  MOAT_ASSERT(fd.valid(), "adopting an invalid ring descriptor");
  const int seals = ::fcntl(fd.get(), F_GET_SEALS);
  // Attack: a descriptor that is not a memfd (a file, a pipe, a device) posing
  // as the ring.
  MOAT_REQUIRE(seals >= 0, ErrorCode::kProtocolViolation,
               "ring descriptor is not a sealable memfd (F_GET_SEALS: ", std::strerror(errno), ")");
  // Attack: an unsealed memfd the peer shrinks under our mapping, so our next
  // access to the ring raises SIGBUS.
  MOAT_REQUIRE((static_cast<unsigned>(seals) & kRequiredSeals) == kRequiredSeals,
               ErrorCode::kProtocolViolation, "ring memfd seals 0x", std::hex, seals,
               " lack F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_SEAL (0x", kRequiredSeals, ")");
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return IoError("fstat", errno);
  const uint64_t expected = kControlSize + capacity;
  // Attack: a ring smaller than agreed makes us index past its end; a larger
  // one wastes our address space.
  MOAT_REQUIRE(S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) == expected,
               ErrorCode::kProtocolViolation, "ring memfd size ", st.st_size, " is not the expected ",
               expected, " (control ", kControlSize, " + capacity ", capacity, ")");
  void* p = ::mmap(nullptr, expected, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  // Attack: a write-sealed memfd (F_SEAL_WRITE / F_SEAL_FUTURE_WRITE) that
  // cannot carry our index.
  MOAT_REQUIRE(p != MAP_FAILED, ErrorCode::kProtocolViolation,
               "ring memfd cannot be mapped shared and writable: ", std::strerror(errno));
  return RingMemory(std::move(fd), RingView{static_cast<uint8_t*>(p), capacity});
}

RingMemory::RingMemory(RingMemory&& other) noexcept
    : fd_(std::move(other.fd_)), view_(other.view_) {
  other.view_ = RingView{};
}

RingMemory& RingMemory::operator=(RingMemory&& other) noexcept {
  if (this != &other) {
    if (view_.base != nullptr) ::munmap(view_.base, kControlSize + view_.capacity);
    fd_ = std::move(other.fd_);
    view_ = other.view_;
    other.view_ = RingView{};
  }
  return *this;
}

RingMemory::~RingMemory() {
  if (view_.base != nullptr) ::munmap(view_.base, kControlSize + view_.capacity);
}

// ---- doorbells ----

Status CheckDoorbell(int fd) {
  int type = 0, domain = 0;
  socklen_t len = sizeof(type);
  const bool got_type = ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0;
  len = sizeof(domain);
  const bool got_domain = ::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0;
  // Attack: a doorbell that is a pipe or a stream socket the peer keeps full,
  // or a descriptor a read of which would block us.
  MOAT_REQUIRE(got_type && got_domain && type == SOCK_SEQPACKET && domain == AF_UNIX,
               ErrorCode::kProtocolViolation,
               "ring doorbell is not an AF_UNIX SOCK_SEQPACKET socket");
  return OkStatus();
}

Status MakeDoorbellPair(UniqueFd* a, UniqueFd* b) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    return IoError("socketpair", errno);
  }
  *a = UniqueFd(sv[0]);
  *b = UniqueFd(sv[1]);
  return OkStatus();
}

// ---- RingReader ----

RingReader::RingReader(RingView view, int doorbell, int watch)
    : view_(view), doorbell_(doorbell), watch_(watch) {
  MOAT_ASSERT(IsValidCapacity(view.capacity) && view.base != nullptr &&
                  reinterpret_cast<uintptr_t>(view.base) % 8 == 0,
              "ring view must be 8-aligned with a valid capacity");
}

RingReader::RingReader(RingMemory memory, UniqueFd doorbell, int watch)
    : RingReader(memory.view(), doorbell.get(), watch) {
  memory_.emplace(std::move(memory));
  doorbell_storage_ = std::move(doorbell);
}

Result<bool> RingReader::TryRead(std::vector<uint8_t>* out) {
  if (broken_) return error_;
  Result<bool> r = TryReadOnce(out);
  if (!r.ok()) {
    broken_ = true;
    error_ = r.error();
  }
  return r;
}

Result<bool> RingReader::TryReadOnce(std::vector<uint8_t>* out) {
  const uint64_t head = Load64(view_, kHeadOffset, __ATOMIC_ACQUIRE);
  const uint64_t available = head - tail_;  // modulo 2^64: a head behind tail is huge
  // Attack: the producer publishes a head behind our tail or more than one
  // ring ahead of it, so that we read bytes it never wrote, or read twice.
  MOAT_REQUIRE(available <= view_.capacity, ErrorCode::kProtocolViolation, "ring head ", head,
               " is not within capacity ", view_.capacity, " ahead of tail ", tail_);
  if (available == 0) return false;
  // Attack: a head that splits a record header (legitimate heads advance by
  // whole records).
  MOAT_REQUIRE(available >= kRecordHeaderSize && available % 8 == 0,
               ErrorCode::kProtocolViolation, "ring head ", head, " is not on a record boundary (",
               available, " bytes after tail ", tail_, ")");
  const uint64_t pos = tail_ & (view_.capacity - 1);  // 8-aligned: the header never wraps
  // Read once: every check and the copy below use these locals, never the
  // shared bytes again.
  const uint32_t length = Load32(view_, kControlSize + pos, __ATOMIC_RELAXED);
  const uint32_t reserved = Load32(view_, kControlSize + pos + 4, __ATOMIC_RELAXED);
  if (internal::g_after_length_read_for_testing != nullptr) {
    internal::g_after_length_read_for_testing(view_);
  }
  // Attack: a record header with garbage in its reserved word (a desynchronised
  // or scribbled ring).
  MOAT_REQUIRE(reserved == 0, ErrorCode::kMalformed, "ring record at tail ", tail_,
               ": reserved word 0x", std::hex, reserved, " is not zero");
  // Attack: a length larger than the ring can hold, to make us allocate or
  // copy past the data area.
  MOAT_REQUIRE(length <= MaxPayload(view_.capacity), ErrorCode::kLimitExceeded,
               "ring record length ", length, " exceeds the ring's max payload ",
               MaxPayload(view_.capacity));
  const uint64_t record = RecordSize(length);
  // Attack: a length that runs past the published head, into bytes the
  // producer has not written (or that belong to the next lap).
  MOAT_REQUIRE(record <= available, ErrorCode::kProtocolViolation, "ring record length ", length,
               " (", record, " bytes) runs past head: only ", available, " bytes published");
  // Copy out before anyone looks at the payload: the peer may rewrite the
  // shared bytes at any time, the private copy it cannot.
  out->resize(length);
  CopyOut(view_, (pos + kRecordHeaderSize) & (view_.capacity - 1), out->data(), length);
  tail_ += record;
  ++records_;
  Store64(view_, kTailOffset, tail_, __ATOMIC_RELEASE);
  // Dekker with the producer's sleep: publish tail, then read its flag.
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  if (Load32(view_, kProducerWaitingOffset, __ATOMIC_RELAXED) != 0) Ring(doorbell_);
  return true;
}

Status RingReader::Sleep(int* spurious) {
  Store32(view_, kConsumerWaitingOffset, 1, __ATOMIC_RELAXED);
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  // A record published before the flag was visible: the producer may not ring.
  if (Load64(view_, kHeadOffset, __ATOMIC_RELAXED) != tail_) {
    Store32(view_, kConsumerWaitingOffset, 0, __ATOMIC_RELAXED);
    return OkStatus();
  }
  Result<Woke> woke = WaitForBell(doorbell_, watch_);
  Store32(view_, kConsumerWaitingOffset, 0, __ATOMIC_RELAXED);
  ++wakes_;
  if (!woke.ok()) return woke.error();
  const bool has_record = Load64(view_, kHeadOffset, __ATOMIC_RELAXED) != tail_;
  // Records a peer published before it died are still delivered.
  if (has_record) return OkStatus();
  MOAT_REQUIRE(*woke != Woke::kPeerClosed, ErrorCode::kPeerClosed,
               "ring peer hung up while we waited for a record");
  MOAT_REQUIRE(*woke != Woke::kWatchReadable, ErrorCode::kShouldWait,
               "watched descriptor readable while waiting on the ring");
  // Attack: a doorbell storm (or a peer that rings and never writes) keeping
  // this thread awake for nothing.
  MOAT_REQUIRE(++*spurious <= static_cast<int>(limits::RING_MAX_SPURIOUS_WAKES),
               ErrorCode::kProtocolViolation, "ring doorbell woke us ", *spurious,
               " times without a record (RING_MAX_SPURIOUS_WAKES ",
               limits::RING_MAX_SPURIOUS_WAKES, ")");
  return OkStatus();
}

Status RingReader::Read(std::vector<uint8_t>* out, int spin) {
  MOAT_ASSERT(doorbell_ >= 0, "RingReader::Read needs a doorbell");
  int spurious = 0;
  for (;;) {
    Result<bool> got = TryRead(out);
    if (!got.ok()) return got.error();
    if (*got) return OkStatus();
    if (spin > 0) {
      --spin;
      __builtin_ia32_pause();
      continue;
    }
    Status slept = Sleep(&spurious);
    if (!slept.ok()) {
      if (slept.error().code() == ErrorCode::kProtocolViolation) {
        broken_ = true;
        error_ = slept.error();
      }
      return slept;
    }
  }
}

// ---- RingWriter ----

RingWriter::RingWriter(RingView view, int doorbell, int watch)
    : view_(view), doorbell_(doorbell), watch_(watch) {
  MOAT_ASSERT(IsValidCapacity(view.capacity) && view.base != nullptr &&
                  reinterpret_cast<uintptr_t>(view.base) % 8 == 0,
              "ring view must be 8-aligned with a valid capacity");
}

RingWriter::RingWriter(RingMemory memory, UniqueFd doorbell, int watch)
    : RingWriter(memory.view(), doorbell.get(), watch) {
  memory_.emplace(std::move(memory));
  doorbell_storage_ = std::move(doorbell);
}

Result<bool> RingWriter::TryWrite(std::span<const uint8_t> payload) {
  MOAT_ASSERT(payload.size() <= MaxPayload(view_.capacity), "ring payload ", payload.size(),
              " exceeds the ring's max payload ", MaxPayload(view_.capacity),
              ": send it over the socket");
  if (broken_) return error_;
  Result<uint64_t> used = UsedBytes();
  if (!used.ok()) {
    broken_ = true;
    error_ = used.error();
    return error_;
  }
  const uint64_t record = RecordSize(payload.size());
  if (view_.capacity - *used < record) return false;
  const uint64_t pos = head_ & (view_.capacity - 1);
  const uint32_t header[2] = {static_cast<uint32_t>(payload.size()), 0};
  std::memcpy(Data(view_) + pos, header, sizeof(header));  // 8-aligned: never wraps
  CopyIn(view_, (pos + kRecordHeaderSize) & (view_.capacity - 1), payload.data(), payload.size());
  head_ += record;
  Store64(view_, kHeadOffset, head_, __ATOMIC_RELEASE);
  __atomic_thread_fence(__ATOMIC_SEQ_CST);  // Dekker with the consumer's sleep
  if (Load32(view_, kConsumerWaitingOffset, __ATOMIC_RELAXED) != 0) Ring(doorbell_);
  return true;
}

Result<uint64_t> RingWriter::UsedBytes() {
  const uint64_t tail = Load64(view_, kTailOffset, __ATOMIC_ACQUIRE);
  const uint64_t used = head_ - tail;  // modulo 2^64: a tail past head is huge
  // Attack: the consumer publishes a tail past our head (claims bytes we never
  // wrote) or more than a ring behind it, to make our free-space arithmetic
  // wrap and overwrite unread records or index outside the data area.
  MOAT_REQUIRE(used <= view_.capacity, ErrorCode::kProtocolViolation, "ring tail ", tail,
               " is not within capacity ", view_.capacity, " behind head ", head_);
  return used;
}

Status RingWriter::Sleep(int* spurious, uint64_t record) {
  Store32(view_, kProducerWaitingOffset, 1, __ATOMIC_RELAXED);
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  auto has_room = [&]() -> Result<bool> {
    MOAT_ASSIGN_OR_RETURN(uint64_t used, UsedBytes());
    return view_.capacity - used >= record;
  };
  Result<bool> room = has_room();
  if (!room.ok() || *room) {
    Store32(view_, kProducerWaitingOffset, 0, __ATOMIC_RELAXED);
    return room.ok() ? OkStatus() : Status(room.error());
  }
  Result<Woke> woke = WaitForBell(doorbell_, watch_);
  Store32(view_, kProducerWaitingOffset, 0, __ATOMIC_RELAXED);
  ++wakes_;
  if (!woke.ok()) return woke.error();
  room = has_room();
  if (!room.ok()) return room.error();
  if (*room) return OkStatus();
  MOAT_REQUIRE(*woke != Woke::kPeerClosed, ErrorCode::kPeerClosed,
               "ring peer hung up while we waited for room");
  MOAT_REQUIRE(*woke != Woke::kWatchReadable, ErrorCode::kShouldWait,
               "watched descriptor readable while waiting for ring room");
  // Attack: a doorbell storm keeping the producer awake without making room.
  MOAT_REQUIRE(++*spurious <= static_cast<int>(limits::RING_MAX_SPURIOUS_WAKES),
               ErrorCode::kProtocolViolation, "ring doorbell woke us ", *spurious,
               " times without room (RING_MAX_SPURIOUS_WAKES ", limits::RING_MAX_SPURIOUS_WAKES,
               ")");
  return OkStatus();
}

Status RingWriter::Write(std::span<const uint8_t> payload, int spin) {
  MOAT_ASSERT(doorbell_ >= 0, "RingWriter::Write needs a doorbell");
  const uint64_t record = RecordSize(payload.size());
  int spurious = 0;
  for (;;) {
    Result<bool> wrote = TryWrite(payload);
    if (!wrote.ok()) return wrote.error();
    if (*wrote) return OkStatus();
    if (spin > 0) {
      --spin;
      __builtin_ia32_pause();
      continue;
    }
    Status slept = Sleep(&spurious, record);
    if (!slept.ok()) {
      if (slept.error().code() == ErrorCode::kProtocolViolation) {
        broken_ = true;
        error_ = slept.error();
      }
      return slept;
    }
  }
}

}  // namespace moat::transport::ring
