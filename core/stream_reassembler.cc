#include "core/stream_reassembler.h"

#include <algorithm>
#include <cstring>
#include <new>

#include "core/check.h"
#include "core/checked.h"
#include "core/deferred_close.h"

namespace moat {
namespace {

// Smallest buffer worth allocating (for a tight budget: an eighth of it, so
// the buffer leaves room for queued messages), and the size above which a
// buffer is shrunk back once the large frame that grew it has been consumed
// (so one large message does not pin memory while a few bytes remain).
constexpr size_t kMinCapacity = 64 * 1024;
constexpr size_t kRetainCapacity = 1024 * 1024;

}  // namespace

StreamReassembler::StreamReassembler(const limits::ConnectionLimits& limits, CloseMode close_mode)
    : limits_(limits), close_mode_(close_mode) {}

StreamReassembler::~StreamReassembler() { Clear(); }

size_t StreamReassembler::MinCapacity() const {
  return std::max<size_t>(1, std::min(kMinCapacity, limits_.max_unprocessed_bytes / 8));
}

bool StreamReassembler::Reallocate(size_t capacity) {
  const size_t have = ring_bytes();
  MOAT_ASSERT(capacity >= have, "reallocating below the buffered bytes");
  std::unique_ptr<uint8_t[]> fresh;
  if (capacity > 0) {
    fresh.reset(new (std::nothrow) uint8_t[capacity]);
    if (!fresh) return false;
    if (have > 0) std::memcpy(fresh.get(), buffer_.get() + read_pos_, have);
  }
  buffer_ = std::move(fresh);
  capacity_ = capacity;
  read_pos_ = 0;
  write_pos_ = have;
  return true;
}

void StreamReassembler::Compact() {
  if (read_pos_ == write_pos_) {
    read_pos_ = write_pos_ = 0;
    if (capacity_ > kRetainCapacity) Reallocate(0);
    return;
  }
  if (read_pos_ == 0) return;
  // A large buffer holding only the tail of a large frame: shrink while
  // moving the tail (no extra copy).
  if (capacity_ > kRetainCapacity && ring_bytes() <= kRetainCapacity / 2 &&
      Reallocate(kRetainCapacity)) {
    return;
  }
  // In place: no new buffer for the unprocessed tail (R19).
  std::memmove(buffer_.get(), buffer_.get() + read_pos_, write_pos_ - read_pos_);
  write_pos_ -= read_pos_;
  read_pos_ = 0;
}

bool StreamReassembler::Grow(size_t limit) {
  // Doubling (the buffer grows only with bytes that actually arrived), but
  // never past the end of the frame being received: doubling a 64 MiB
  // frame's buffer used to reach 128 MiB. A frame that is already whole
  // (waiting for its descriptors) gets no such cap.
  const size_t floor = std::max(MinCapacity(), kFrameHeaderSize);
  size_t grown = std::max(floor, capacity_ * 2);
  if (pending_header_) {
    const size_t frame_end = read_pos_ + kFrameHeaderSize + pending_header_->payload_size;
    if (frame_end > capacity_) grown = std::min(grown, std::max(frame_end, floor));
  }
  grown = std::min(grown, limit);
  if (grown <= capacity_) return false;
  return Reallocate(grown);
}

bool StreamReassembler::ShrinkTo(size_t max_capacity) {
  if (buffer_capacity() <= max_capacity) return true;
  // A large frame's own buffer holds received bytes: only the shared one shrinks.
  if (direct_.size() > max_capacity) return false;
  const size_t ring_max = max_capacity - direct_.size();
  const size_t have = ring_bytes();
  if (have > ring_max) return false;
  return Reallocate(have == 0 ? 0 : std::max(have, std::min(ring_max, MinCapacity())));
}

void StreamReassembler::Clear() {
  buffer_.reset();
  capacity_ = 0;
  read_pos_ = write_pos_ = 0;
  pending_header_.reset();
  direct_active_ = false;
  direct_ = std::vector<uint8_t>();
  direct_filled_ = 0;
  held_back_ = false;
  for (PendingFd& pending : fds_) Dispose(close_mode_, std::move(pending.fd));
  fds_.clear();
}

std::span<uint8_t> StreamReassembler::PrepareWrite(size_t want, size_t max_capacity) {
  ReadSpace space = PrepareRead(want, max_capacity);
  return space.first;
}

bool StreamReassembler::StartDirect(size_t want, size_t limit) {
  const size_t frame_payload = pending_header_->payload_size;
  const size_t have = ring_bytes() - kFrameHeaderSize;  // of this frame's payload
  // What arrived plus one receive ahead, never past the frame's end: a peer
  // declaring 64 MiB and sending 10 bytes gets 10 + `want` bytes allocated.
  const size_t initial = std::min(frame_payload, have + std::max(want, kFrameHeaderSize));
  // The shared buffer keeps just the header and room for the next one. Both
  // buffers together stay within the one budget (TRP-15); a frame too close
  // to it for that stays in the shared buffer.
  const size_t ring_after = 2 * kFrameHeaderSize;
  if (ring_after + frame_payload > limit) return false;
  std::vector<uint8_t> direct;
  direct.reserve(initial);  // exactly: resize() alone may double the allocation
  direct.resize(initial);
  // The one copy: what a large shared-buffer read brought of this frame.
  if (have > 0) std::memcpy(direct.data(), buffer_.get() + read_pos_ + kFrameHeaderSize, have);
  write_pos_ = read_pos_ + kFrameHeaderSize;
  direct_ = std::move(direct);
  direct_filled_ = have;
  direct_active_ = true;
  if (capacity_ != ring_after) Reallocate(ring_after);  // moves only the header
  return true;
}

std::span<uint8_t> StreamReassembler::DirectSpace(size_t want, size_t limit) {
  const size_t frame_payload = pending_header_->payload_size;
  if (direct_filled_ == direct_.size() && direct_.size() < frame_payload) {
    // Full: grow by doubling (at least one receive ahead), to the frame's
    // end at most, within the budget left beside the shared buffer.
    size_t grown = std::min(frame_payload,
                            std::max(direct_.size() * 2, direct_filled_ + want));
    grown = std::min(grown, limit > capacity_ ? limit - capacity_ : 0);
    if (grown <= direct_.size()) return {};
    std::vector<uint8_t> bigger;
    bigger.reserve(grown);
    bigger.resize(grown);
    std::memcpy(bigger.data(), direct_.data(), direct_filled_);
    direct_ = std::move(bigger);
  }
  return {direct_.data() + direct_filled_, direct_.size() - direct_filled_};
}

StreamReassembler::ReadSpace StreamReassembler::PrepareRead(size_t want, size_t max_capacity) {
  Compact();
  const size_t limit = std::min(limits_.max_unprocessed_bytes, max_capacity);
  if (unprocessed_bytes() >= limit) return {};
  if (buffer_capacity() > limit && !ShrinkTo(limit)) return {};
  if (!direct_active_ && pending_header_ &&
      pending_header_->payload_size >= kDirectFrameMin &&
      ring_bytes() < kFrameHeaderSize + size_t{pending_header_->payload_size}) {
    StartDirect(want, limit);
  }
  ReadSpace out;
  if (direct_active_) {
    out.first = DirectSpace(want, limit);
    const bool reaches_end =
        direct_filled_ + out.first.size() == size_t{pending_header_->payload_size};
    if (!out.first.empty() && !reaches_end) return out;
    if (!out.first.empty()) {
      // Just the next frame's header: if that frame is large, its payload
      // goes into a buffer of its own at the next receive, not in here.
      const size_t room = capacity_ - write_pos_;
      if (room > 0) {
        out.second = {buffer_.get() + write_pos_, std::min(room, kFrameHeaderSize)};
      }
      return out;
    }
    if (direct_filled_ < pending_header_->payload_size) return out;  // the budget is spent
    // The large frame is whole (it waits for descriptors, or was held back):
    // whatever follows goes into the shared buffer as usual.
  }
  // Reads fill the free space; the buffer grows only when it is full, i.e.
  // when the frame being received needs more room (small frames are drained
  // before the next read, so they never grow it).
  if (write_pos_ == capacity_ && !Grow(limit > direct_.size() ? limit - direct_.size() : 0)) {
    return out;
  }
  const size_t n = std::min(want, capacity_ - write_pos_);
  if (n == 0) return out;
  if (out.first.empty()) {
    out.first = {buffer_.get() + write_pos_, n};
  } else {
    out.second = {buffer_.get() + write_pos_, n};
  }
  return out;
}

Status StreamReassembler::CommitWrite(size_t n, std::vector<UniqueFd> fds) {
  if (direct_active_) {
    // The large frame's buffer fills first (PrepareRead's `first`).
    const size_t direct = std::min(n, direct_.size() - direct_filled_);
    direct_filled_ += direct;
    n -= direct;
  }
  MOAT_ASSERT(write_pos_ + n <= capacity_, "CommitWrite past the PrepareWrite span");
  write_pos_ += n;
  // Attack: a descriptor flood that exhausts our descriptor table before any frame claims them.
  if (!fds.empty()) {
    Checked<size_t> total = Checked<size_t>(fds_.size()) + fds.size();
    if (total.has_overflow() || total.value() > limits_.max_unprocessed_fds) {
      Error error(ErrorCode::kLimitExceeded,
                  internal::Concat("unprocessed descriptors ", fds_.size(), " + ", fds.size(),
                                   " exceed MAX_UNPROCESSED_FDS ", limits_.max_unprocessed_fds));
      for (UniqueFd& fd : fds) Dispose(close_mode_, std::move(fd));
      return error;
    }
    const uint64_t arrived_by = consumed_ + unprocessed_bytes();
    for (auto& fd : fds) fds_.push_back(PendingFd{std::move(fd), arrived_by});
  }
  return OkStatus();
}

Status StreamReassembler::Append(std::span<const uint8_t> bytes, std::vector<UniqueFd> fds) {
  size_t done = 0;
  while (done < bytes.size()) {
    ReadSpace space = PrepareRead(bytes.size() - done);
    if (space.first.empty()) {
      for (UniqueFd& fd : fds) Dispose(close_mode_, std::move(fd));
    }
    // Attack: a peer that writes faster than we process, to grow our buffer without bound.
    MOAT_REQUIRE(!space.first.empty(), ErrorCode::kLimitExceeded, "unprocessed bytes ",
                 unprocessed_bytes(), " + ", bytes.size() - done,
                 " exceed MAX_UNPROCESSED_BYTES ", limits_.max_unprocessed_bytes);
    // As a scatter read fills them: `first`, then `second`.
    size_t n = 0;
    for (std::span<uint8_t> part : {space.first, space.second}) {
      const size_t take = std::min(part.size(), bytes.size() - done - n);
      if (take > 0) std::memcpy(part.data(), bytes.data() + done + n, take);
      n += take;
    }
    // Descriptors travel with the first chunk of this receive.
    MOAT_TRY(CommitWrite(n, done == 0 ? std::move(fds) : std::vector<UniqueFd>{}));
    done += n;
  }
  if (bytes.empty() && !fds.empty()) MOAT_TRY(CommitWrite(0, std::move(fds)));
  return OkStatus();
}

Result<std::optional<ReceivedFrame>> StreamReassembler::Next(
    const std::function<bool(const FrameHeader&)>& admit) {
  held_back_ = false;
  const auto need_more = [this] {
    // What a consumed large frame left behind is small: shrink back now,
    // not at the next receive (which may never come).
    if (capacity_ > kRetainCapacity && ring_bytes() <= kRetainCapacity / 2) {
      Reallocate(ring_bytes() == 0 ? 0 : kRetainCapacity);
    }
    return std::optional<ReceivedFrame>();
  };
  const size_t available = unprocessed_bytes();
  if (!pending_header_) {
    if (available < kFrameHeaderSize) {
      // Attack: descriptors sent with no frame to claim them (or more than a frame declared).
      if (available == 0 && !fds_.empty()) {
        return Error(ErrorCode::kProtocolViolation,
                     internal::Concat(fds_.size(), " descriptors arrived with no frame to claim them"))
            .AtOffset(consumed_);
      }
      return need_more();
    }
    auto header = DecodeFrameHeader({buffer_.get() + read_pos_, ring_bytes()}, limits_);
    if (!header.ok()) {
      // The header decoder knows the byte within the header; a captured
      // stream is triaged by its stream offset (`moat inspect`), so report that.
      const Error& inner = header.error();
      Error error(inner.code(), inner.reason());
      if (!inner.field().empty()) error.WithField(inner.field());
      return std::move(error).WithField("frame").AtOffset(consumed_ + inner.offset().value_or(0));
    }
    pending_header_ = *header;
  }
  const FrameHeader& header = *pending_header_;

  // Attack: header + payload arithmetic overflowing to a small frame size.
  Checked<size_t> frame_size = Checked<size_t>(kFrameHeaderSize) + size_t{header.payload_size};
  MOAT_ASSERT(!frame_size.has_overflow(), "24 + u32 overflowed size_t");
  if (available < frame_size.value()) return need_more();

  // Attack: descriptors sent with an earlier frame that under-declared them, now
  // misattributed to this frame.
  for (size_t i = 0; i < std::min<size_t>(header.fd_count, fds_.size()); ++i) {
    if (fds_[i].arrived_by <= consumed_) {
      return Error(ErrorCode::kProtocolViolation,
                   internal::Concat("frame declares ", header.fd_count,
                                    " descriptors but descriptor ", i,
                                    " arrived before the frame started"))
          .WithField("frame.fd_count")
          .AtOffset(consumed_);
    }
  }
  // R4: a frame whose descriptors have not all arrived waits (bounded by limits).
  if (fds_.size() < header.fd_count) return need_more();
  // The caller has no room for this frame yet: it stays buffered (counted
  // in the buffer's allocation) until asked for again.
  if (admit && !admit(header)) {
    held_back_ = true;
    return std::optional<ReceivedFrame>();
  }

  ReceivedFrame frame;
  frame.header = header;
  if (direct_active_) {
    MOAT_ASSERT(direct_filled_ == header.payload_size && direct_.size() == direct_filled_,
                "a whole large frame fills its own buffer exactly");
    frame.owned = std::move(direct_);
    frame.payload = frame.owned;
    direct_ = std::vector<uint8_t>();
    direct_filled_ = 0;
    direct_active_ = false;
    read_pos_ += kFrameHeaderSize;  // only its header was in the shared buffer
  } else {
    frame.payload = {buffer_.get() + read_pos_ + kFrameHeaderSize, header.payload_size};
    read_pos_ += frame_size.value();
  }
  frame.fds.reserve(header.fd_count);
  for (uint32_t i = 0; i < header.fd_count; ++i) {
    frame.fds.push_back(std::move(fds_.front().fd));
    fds_.pop_front();
  }
  consumed_ += frame_size.value();
  pending_header_.reset();
  return std::optional<ReceivedFrame>(std::move(frame));
}

Status StreamReassembler::Finish() const {
  MOAT_REQUIRE(unprocessed_bytes() == 0, ErrorCode::kIncomplete, "stream ended inside a frame: ",
               unprocessed_bytes(), " unprocessed bytes",
               pending_header_ ? internal::Concat(" of a ", kFrameHeaderSize + pending_header_->payload_size,
                                                  "-byte frame")
                               : std::string());
  MOAT_REQUIRE(fds_.empty(), ErrorCode::kProtocolViolation, "stream ended with ", fds_.size(),
               " unclaimed descriptors");
  return OkStatus();
}

}  // namespace moat
