// A hostile-safe shared-memory ring: one direction of a data plane between
// two processes (docs/wire-format-ring.md, docs/threat-model/ring.md).
//
// One sealed memfd per direction holds a 256-byte control block and a data
// area of `capacity` bytes (a power of two). The producer appends records
// (u32 length, u32 zero, payload, padding to 8) and publishes `head`; the
// consumer copies records out and publishes `tail`. A SOCK_SEQPACKET
// socketpair is the doorbell: a side that is about to sleep says so in the
// control block, and the other side sends one byte only then.
//
// The peer can write any byte of the mapping at any time. So each side keeps
// its own index privately and only publishes it; the peer's index is read
// once and checked (0 <= head - tail <= capacity); a length is read once and
// the record is copied out before anyone looks at it; a memfd that is not
// sealed against shrinking/growing, or has the wrong size, is refused; a
// doorbell storm costs a bounded number of wakes per wait; a dead peer ends a
// wait (the doorbell socket hangs up).
//
//   auto memory = RingMemory::Create(1 * limits::MiB);          // side A
//   ... send memory->fd() and one end of a doorbell socketpair to side B ...
//   auto mem_b = RingMemory::Adopt(std::move(fd), capacity);    // side B
//   RingWriter writer(std::move(*memory), std::move(bell_a));    // A produces
//   RingReader reader(std::move(*mem_b), std::move(bell_b));     // B consumes
//   MOAT_TRY(writer.Write(payload));        // blocks while the ring is full
//   std::vector<uint8_t> record;
//   MOAT_TRY(reader.Read(&record));         // blocks until a record arrives
//
// Not wired into the node data plane (yet): it is a standalone module, its
// cost measured by the ring_* rows of `moat bench`.
#ifndef MOAT_TRANSPORT_RING_RING_H_
#define MOAT_TRANSPORT_RING_RING_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "core/decoder_registry.h"
#include "core/error.h"
#include "core/unique_fd.h"

namespace moat::transport::ring {

// Byte offsets of the control block (each field on its own cache line).
inline constexpr size_t kHeadOffset = 0;              // u64, producer-written
inline constexpr size_t kTailOffset = 64;             // u64, consumer-written
inline constexpr size_t kConsumerWaitingOffset = 128;  // u32, consumer-written
inline constexpr size_t kProducerWaitingOffset = 192;  // u32, producer-written
inline constexpr size_t kControlSize = 256;
inline constexpr size_t kRecordHeaderSize = 8;  // u32 length, u32 zero

// Bytes a record with `payload` bytes occupies in the data area.
constexpr uint64_t RecordSize(uint64_t payload) {
  return kRecordHeaderSize + ((payload + 7) & ~uint64_t{7});
}

// The largest payload one record of a ring of `capacity` can carry.
constexpr uint64_t MaxPayload(uint64_t capacity) { return capacity - kRecordHeaderSize; }

// A mapped ring (control block + data area), not owning. Tests and the fuzz
// target build one over ordinary memory.
struct RingView {
  uint8_t* base = nullptr;  // kControlSize + capacity bytes
  uint64_t capacity = 0;    // power of two
};

// A sealed memfd and its mapping; owns both.
class RingMemory {
 public:
  // Creates, sizes, seals (shrink, grow, seal) and maps a new ring.
  // `capacity` is a local choice: MOAT_ASSERTs it is a power of two within
  // [RING_MIN_CAPACITY, RING_MAX_CAPACITY].
  static Result<RingMemory> Create(uint64_t capacity);

  // Maps a ring memfd received from the peer after checking it: a memfd
  // whose seals include F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_SEAL (so the peer
  // can never shrink it under our mapping) and whose size is exactly
  // kControlSize + capacity. `capacity` is what we expect, not what the
  // peer says.
  MOAT_DECODER(ring_memfd)
  static Result<RingMemory> Adopt(UniqueFd fd, uint64_t capacity);

  RingMemory(RingMemory&& other) noexcept;
  RingMemory& operator=(RingMemory&& other) noexcept;
  RingMemory(const RingMemory&) = delete;
  RingMemory& operator=(const RingMemory&) = delete;
  ~RingMemory();

  RingView view() const { return view_; }
  int fd() const { return fd_.get(); }

 private:
  RingMemory(UniqueFd fd, RingView view) : fd_(std::move(fd)), view_(view) {}
  UniqueFd fd_;
  RingView view_;
};

// Checks a doorbell received from the peer: an AF_UNIX SOCK_SEQPACKET socket
// (sends to it use MSG_DONTWAIT, so the peer can never make them block).
Status CheckDoorbell(int fd);

// Makes a connected doorbell pair (one end per side).
Status MakeDoorbellPair(UniqueFd* a, UniqueFd* b);

// The consuming side. Not thread-safe: one thread reads a ring.
class RingReader {
 public:
  // `doorbell`: our end of the doorbell socketpair (-1: none, TryRead only).
  // `watch`: optional extra descriptor (e.g. the transport socket) whose
  // hang-up ends a wait as kPeerClosed and whose readability ends it as
  // kShouldWait; -1 for none. Not owned.
  RingReader(RingView view, int doorbell, int watch = -1);
  RingReader(RingMemory memory, UniqueFd doorbell, int watch = -1);

  // Copies the next record into *out (resized to the payload). Returns
  // true if a record was read, false if the ring is empty. An error is a
  // protocol violation (the peer's index or a length is impossible); the
  // reader is then broken and every later call returns the same error.
  MOAT_DECODER(ring_record)
  Result<bool> TryRead(std::vector<uint8_t>* out);

  // Blocks until a record is read into *out. kPeerClosed if the peer hung
  // up while we waited; kShouldWait if `watch` became readable;
  // kProtocolViolation on a doorbell storm (more than
  // RING_MAX_SPURIOUS_WAKES wakes without a record in one call).
  // `spin` polls the ring that many times before sleeping.
  Status Read(std::vector<uint8_t>* out, int spin = 0);

  uint64_t records_read() const { return records_; }
  uint64_t wakes() const { return wakes_; }

 private:
  Result<bool> TryReadOnce(std::vector<uint8_t>* out);
  Status Sleep(int* spurious);

  std::optional<RingMemory> memory_;  // empty for view-only readers
  RingView view_;
  UniqueFd doorbell_storage_;
  int doorbell_ = -1;
  int watch_ = -1;
  uint64_t tail_ = 0;  // private: the published tail is only a copy
  uint64_t records_ = 0;
  uint64_t wakes_ = 0;
  bool broken_ = false;
  Error error_{ErrorCode::kProtocolViolation, ""};
};

// The producing side. Not thread-safe: one thread writes a ring.
class RingWriter {
 public:
  RingWriter(RingView view, int doorbell, int watch = -1);
  RingWriter(RingMemory memory, UniqueFd doorbell, int watch = -1);

  // Appends one record if it fits now: true if written, false if the ring
  // has no room yet. MOAT_ASSERTs payload.size() <= MaxPayload(capacity)
  // (a sender-side bug: larger messages go over the socket). An error means
  // the peer published an impossible tail; the writer is then broken.
  MOAT_DECODER(ring_peer_tail)
  Result<bool> TryWrite(std::span<const uint8_t> payload);

  // As TryWrite, sleeping until the consumer makes room. Errors as
  // RingReader::Read.
  Status Write(std::span<const uint8_t> payload, int spin = 0);

  uint64_t wakes() const { return wakes_; }

 private:
  Result<uint64_t> UsedBytes();  // validates the peer's tail
  Status Sleep(int* spurious, uint64_t record);

  std::optional<RingMemory> memory_;
  RingView view_;
  UniqueFd doorbell_storage_;
  int doorbell_ = -1;
  int watch_ = -1;
  uint64_t head_ = 0;  // private: the published head is only a copy
  uint64_t wakes_ = 0;
  bool broken_ = false;
  Error error_{ErrorCode::kProtocolViolation, ""};
};

namespace internal {
// Called by TryRead after it has read a record's length and before it copies
// the payload, when set: tests and the fuzz target scribble the ring here to
// model a peer that changes the length after we read it. Null in production.
extern void (*g_after_length_read_for_testing)(RingView view);
}  // namespace internal

}  // namespace moat::transport::ring

#endif  // MOAT_TRANSPORT_RING_RING_H_
