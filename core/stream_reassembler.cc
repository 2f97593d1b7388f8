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
  const size_t have = unprocessed_bytes();
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
  if (capacity_ > kRetainCapacity && unprocessed_bytes() <= kRetainCapacity / 2 &&
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
  if (capacity_ <= max_capacity) return true;
  const size_t have = unprocessed_bytes();
  if (have > max_capacity) return false;
  return Reallocate(have == 0 ? 0 : std::max(have, std::min(max_capacity, MinCapacity())));
}

void StreamReassembler::Clear() {
  buffer_.reset();
  capacity_ = 0;
  read_pos_ = write_pos_ = 0;
  pending_header_.reset();
  held_back_ = false;
  for (PendingFd& pending : fds_) Dispose(close_mode_, std::move(pending.fd));
  fds_.clear();
}

std::span<uint8_t> StreamReassembler::PrepareWrite(size_t want, size_t max_capacity) {
  Compact();
  const size_t limit = std::min(limits_.max_unprocessed_bytes, max_capacity);
  if (unprocessed_bytes() >= limit) return {};
  if (capacity_ > limit && !ShrinkTo(limit)) return {};
  // Reads fill the free space; the buffer grows only when it is full, i.e.
  // when the frame being received needs more room (small frames are drained
  // before the next read, so they never grow it).
  if (write_pos_ == capacity_ && !Grow(limit)) return {};
  const size_t n = std::min(want, capacity_ - write_pos_);
  if (n == 0) return {};
  return {buffer_.get() + write_pos_, n};
}

Status StreamReassembler::CommitWrite(size_t n, std::vector<UniqueFd> fds) {
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
    std::span<uint8_t> space = PrepareWrite(bytes.size() - done);
    if (space.empty()) {
      for (UniqueFd& fd : fds) Dispose(close_mode_, std::move(fd));
    }
    // Attack: a peer that writes faster than we process, to grow our buffer without bound.
    MOAT_REQUIRE(!space.empty(), ErrorCode::kLimitExceeded, "unprocessed bytes ",
                 unprocessed_bytes(), " + ", bytes.size() - done,
                 " exceed MAX_UNPROCESSED_BYTES ", limits_.max_unprocessed_bytes);
    std::memcpy(space.data(), bytes.data() + done, space.size());
    // Descriptors travel with the first chunk of this receive.
    MOAT_TRY(CommitWrite(space.size(), done == 0 ? std::move(fds) : std::vector<UniqueFd>{}));
    done += space.size();
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
    if (capacity_ > kRetainCapacity && unprocessed_bytes() <= kRetainCapacity / 2) {
      Reallocate(unprocessed_bytes() == 0 ? 0 : kRetainCapacity);
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
    auto header = DecodeFrameHeader({buffer_.get() + read_pos_, available}, limits_);
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
  frame.payload = {buffer_.get() + read_pos_ + kFrameHeaderSize, header.payload_size};
  frame.fds.reserve(header.fd_count);
  for (uint32_t i = 0; i < header.fd_count; ++i) {
    frame.fds.push_back(std::move(fds_.front().fd));
    fds_.pop_front();
  }
  read_pos_ += frame_size.value();
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
