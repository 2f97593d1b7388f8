// moat::StreamReassembler: turns a byte stream plus out-of-band descriptors
// (as recvmsg() delivers them on a SOCK_STREAM Unix socket) into whole frames.
//
// The transport receives directly into the reassembler's buffer (no copy),
// then drains frames:
//
//   StreamReassembler reassembler(limits);
//   std::span<uint8_t> space = reassembler.PrepareWrite(64 * 1024);
//   ssize_t n = recvmsg(fd, ...space..., &fds);          // fds -> UniqueFd
//   MOAT_TRY(reassembler.CommitWrite(n, std::move(fds)));
//   while (true) {
//     MOAT_ASSIGN_OR_RETURN(std::optional<ReceivedFrame> frame, reassembler.Next());
//     if (!frame) break;                                  // need more bytes
//     Deliver(*frame);                                    // payload valid until the next call
//   }
//
// Any Error means "disconnect this peer": the stream cannot be trusted again.
//
// Bounds (R1, R4, R18): buffered bytes never exceed max_unprocessed_bytes and
// buffered descriptors never exceed max_unprocessed_fds; the buffer grows only
// with bytes that actually arrived, never with a size the peer declared. The
// buffer's allocation (not only its content) stays within
// max_unprocessed_bytes, or within the tighter capacity a caller passes to
// PrepareWrite (the transport passes what its receive queue leaves of the
// budget, TRP-15), and it shrinks back once a large frame has been consumed.
//
// Descriptors dropped here (limit violation, Clear(), destruction) are closed
// as `close_mode` says: the transport passes CloseMode::kDeferred, because
// their close() may block as long as the peer likes (TRP-12); fuzzers and
// tools (no threads) keep the inline default.
//
// Descriptor attribution: the kernel delivers a sendmsg()'s descriptors with
// the first bytes of that sendmsg, and moat's sender always starts a frame's
// sendmsg with the frame header. So descriptors can arrive with or after the
// first byte of the frame that claims them (a frame whose descriptors have not
// all arrived waits for them, R4), but never before it. Descriptors that
// arrived in a receive that ended at or before the start of the frame now
// claiming them were sent with an earlier frame that under-declared them: a
// protocol violation. Descriptors left over when no bytes remain are likewise
// unclaimed and rejected.
#ifndef MOAT_CORE_STREAM_REASSEMBLER_H_
#define MOAT_CORE_STREAM_REASSEMBLER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "core/decoder_registry.h"
#include "core/deferred_close.h"
#include "core/error.h"
#include "core/frame.h"
#include "core/unique_fd.h"
#include "limits/limits.h"

namespace moat {

struct ReceivedFrame {
  FrameHeader header;
  // Points into the reassembler's buffer (valid until the next call to
  // PrepareWrite/PrepareRead/CommitWrite/Append/Next), or into `owned`.
  std::span<const uint8_t> payload;
  std::vector<UniqueFd> fds;
  // A large frame's payload, received straight into a buffer of its own
  // (see PrepareRead); empty otherwise. The caller may keep it: it is the
  // payload, no copy needed (moving the vector keeps `payload` valid).
  std::vector<uint8_t> owned;
};

class StreamReassembler {
 public:
  explicit StreamReassembler(
      const limits::ConnectionLimits& limits = limits::ConnectionLimits::Defaults(),
      CloseMode close_mode = CloseMode::kInline);
  ~StreamReassembler();
  StreamReassembler(const StreamReassembler&) = delete;
  StreamReassembler& operator=(const StreamReassembler&) = delete;

  // Returns writable space of up to `want` bytes at the end of the buffer,
  // compacting unprocessed bytes to the front first. The buffer's allocation
  // never exceeds min(max_unprocessed_bytes, max_capacity) (an allocation
  // already larger is shrunk first when its content fits). The span is
  // shorter than `want` (possibly empty) when that leaves less room: an empty
  // span means the buffered bytes fill the allowed capacity.
  std::span<uint8_t> PrepareWrite(size_t want, size_t max_capacity = SIZE_MAX);

  // Where the next receive may go, for a scatter read (recvmsg with two
  // iovecs): `first`, then `second`. Once the header of a frame of at least
  // kDirectFrameMin payload bytes is in, its payload is received into a
  // buffer of its own (ReceivedFrame::owned) that grows only with bytes that
  // arrived (by at most one `want` ahead of them, never past the frame's
  // end, within the same capacity bound as the buffer): `first` is its free
  // space, and `second`, once `first` reaches the frame's end, room for just
  // the next frame's header, so that the next large frame goes into its own
  // buffer too. Otherwise `first` is PrepareWrite's span and `second` empty.
  // Both empty: as PrepareWrite's empty span.
  struct ReadSpace {
    std::span<uint8_t> first, second;
  };
  ReadSpace PrepareRead(size_t want, size_t max_capacity = SIZE_MAX);
  // Smallest payload received into a buffer of its own: below it the
  // copy out of the shared buffer costs less than the extra receive.
  static constexpr size_t kDirectFrameMin = 32 * 1024;

  // Marks `n` bytes of the last PrepareWrite span (or PrepareRead's spans,
  // `first` filled before `second`) as received, together with
  // the descriptors that arrived in the same recvmsg(). On a limit violation
  // every descriptor is closed (they are owned here) and an Error returned.
  Status CommitWrite(size_t n, std::vector<UniqueFd> fds = {});

  // Convenience for tests and fuzzers: PrepareWrite + copy + CommitWrite.
  Status Append(std::span<const uint8_t> bytes, std::vector<UniqueFd> fds = {});

  // The next whole frame, or nullopt if more input is needed. With `admit`,
  // a whole frame (with its descriptors) for which admit(header) is false is
  // left buffered and nullopt returned (held_back() is then true): the caller
  // has no room for it yet and asks again later. Error offsets are stream
  // offsets (the byte of the whole stream where the bad field starts).
  MOAT_DECODER(stream_reassembler)
  Result<std::optional<ReceivedFrame>> Next(
      const std::function<bool(const FrameHeader&)>& admit = nullptr);
  // The last Next() left a whole frame buffered because admit() refused it.
  bool held_back() const { return held_back_; }

  // Reallocates the buffer to at most `max_capacity` bytes if its content
  // fits (a smaller or released buffer); false if it does not fit.
  bool ShrinkTo(size_t max_capacity);

  // Drops everything buffered (bytes, buffer, descriptors: closed with
  // the close mode) after the stream was abandoned, e.g. at a disconnect.
  // The stream offset is kept.
  void Clear();

  // To be called at end of stream: an Error if a partial frame or unclaimed
  // descriptors remain (the peer died or lied mid-frame).
  Status Finish() const;

  size_t unprocessed_bytes() const { return ring_bytes() + direct_filled_; }
  size_t unprocessed_fds() const { return fds_.size(); }
  // Both allocations: the shared buffer's and a large frame's own.
  size_t buffer_capacity() const { return capacity_ + direct_.size(); }
  // The large frame's own buffer (0 if none): it leaves with that frame.
  size_t direct_capacity() const { return direct_.size(); }
  // Total bytes consumed as frames so far (the stream offset of the next frame).
  uint64_t stream_offset() const { return consumed_; }

 private:
  struct PendingFd {
    UniqueFd fd;
    // Stream offset just past the bytes of the recvmsg() that carried it.
    uint64_t arrived_by;
  };

  // Bytes in the shared buffer (a large frame's header, and only what
  // follows that frame in the stream).
  size_t ring_bytes() const { return write_pos_ - read_pos_; }
  void Compact();
  // Moves the large frame at read_pos_ into a buffer of its own, if that
  // fits under `limit`; false if it stays in the shared buffer.
  bool StartDirect(size_t want, size_t limit);
  // The free space of the large frame's buffer, grown if it is full; empty
  // if the frame is whole or `limit` allows no more.
  std::span<uint8_t> DirectSpace(size_t want, size_t limit);
  // Grows the full buffer, to at most `limit` bytes; false if it cannot.
  bool Grow(size_t limit);
  bool Reallocate(size_t capacity);
  // Smallest allocation worth making for this connection's budget.
  size_t MinCapacity() const;

  limits::ConnectionLimits limits_;
  CloseMode close_mode_;
  std::unique_ptr<uint8_t[]> buffer_;
  size_t capacity_ = 0;
  size_t read_pos_ = 0;
  size_t write_pos_ = 0;
  uint64_t consumed_ = 0;   // stream offset of buffer_[read_pos_]
  std::deque<PendingFd> fds_;
  std::optional<FrameHeader> pending_header_;  // decoded header of the frame at read_pos_
  // Direct mode (PrepareRead): the payload of the frame at read_pos_ (its
  // header stays in buffer_), direct_filled_ bytes of it received. The bytes
  // in buffer_ after that header follow this payload in the stream.
  bool direct_active_ = false;
  std::vector<uint8_t> direct_;
  size_t direct_filled_ = 0;
  bool held_back_ = false;
};

}  // namespace moat

#endif  // MOAT_CORE_STREAM_REASSEMBLER_H_
