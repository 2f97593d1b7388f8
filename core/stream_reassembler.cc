#include "core/stream_reassembler.h"

#include <algorithm>
#include <cstring>
#include <new>

#include "core/check.h"
#include "core/checked.h"

namespace moat {
namespace {

// Smallest buffer worth allocating, and the size above which an emptied
// buffer is released (so one large message does not pin memory forever).
constexpr size_t kMinCapacity = 64 * 1024;
constexpr size_t kRetainCapacity = 1024 * 1024;

}  // namespace

StreamReassembler::StreamReassembler(const limits::ConnectionLimits& limits) : limits_(limits) {}

void StreamReassembler::Compact() {
  if (read_pos_ == write_pos_) {
    read_pos_ = write_pos_ = 0;
    if (capacity_ > kRetainCapacity) {
      buffer_.reset();
      capacity_ = 0;
    }
    return;
  }
  if (read_pos_ == 0) return;
  // In place: no new buffer for the unprocessed tail (R19).
  std::memmove(buffer_.get(), buffer_.get() + read_pos_, write_pos_ - read_pos_);
  write_pos_ -= read_pos_;
  read_pos_ = 0;
}

bool StreamReassembler::Reserve(size_t capacity) {
  if (capacity <= capacity_) return true;
  size_t grown = std::max({capacity, kMinCapacity, capacity_ * 2});
  // Never hold more than the unprocessed budget plus one receive's slack.
  grown = std::min(grown, std::max(capacity, limits_.max_unprocessed_bytes));
  std::unique_ptr<uint8_t[]> bigger(new (std::nothrow) uint8_t[grown]);
  if (!bigger) return false;
  if (write_pos_ > read_pos_) {
    std::memcpy(bigger.get(), buffer_.get() + read_pos_, write_pos_ - read_pos_);
  }
  write_pos_ -= read_pos_;
  read_pos_ = 0;
  buffer_ = std::move(bigger);
  capacity_ = grown;
  return true;
}

std::span<uint8_t> StreamReassembler::PrepareWrite(size_t want) {
  Compact();
  const size_t room = limits_.max_unprocessed_bytes - unprocessed_bytes();
  const size_t n = std::min(want, room);
  if (n == 0) return {};
  if (!Reserve(write_pos_ + n)) return {};
  return {buffer_.get() + write_pos_, n};
}

Status StreamReassembler::CommitWrite(size_t n, std::vector<UniqueFd> fds) {
  MOAT_ASSERT(write_pos_ + n <= capacity_, "CommitWrite past the PrepareWrite span");
  write_pos_ += n;
  // Attack: a descriptor flood that exhausts our descriptor table before any frame claims them.
  if (!fds.empty()) {
    Checked<size_t> total = Checked<size_t>(fds_.size()) + fds.size();
    MOAT_REQUIRE(!total.has_overflow() && total.value() <= limits_.max_unprocessed_fds,
                 ErrorCode::kLimitExceeded, "unprocessed descriptors ", fds_.size(), " + ",
                 fds.size(), " exceed MAX_UNPROCESSED_FDS ", limits_.max_unprocessed_fds);
    const uint64_t arrived_by = consumed_ + unprocessed_bytes();
    for (auto& fd : fds) fds_.push_back(PendingFd{std::move(fd), arrived_by});
  }
  return OkStatus();
}

Status StreamReassembler::Append(std::span<const uint8_t> bytes, std::vector<UniqueFd> fds) {
  size_t done = 0;
  while (done < bytes.size()) {
    std::span<uint8_t> space = PrepareWrite(bytes.size() - done);
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

Result<std::optional<ReceivedFrame>> StreamReassembler::Next() {
  const size_t available = unprocessed_bytes();
  if (!pending_header_) {
    if (available < kFrameHeaderSize) {
      // Attack: descriptors sent with no frame to claim them (or more than a frame declared).
      if (available == 0 && !fds_.empty()) {
        return Error(ErrorCode::kProtocolViolation,
                     internal::Concat(fds_.size(), " descriptors arrived with no frame to claim them"))
            .AtOffset(consumed_);
      }
      return std::optional<ReceivedFrame>();
    }
    auto header = DecodeFrameHeader({buffer_.get() + read_pos_, available}, limits_);
    if (!header.ok()) {
      return std::move(header).error().WithField("frame").AtOffset(consumed_);
    }
    pending_header_ = *header;
  }
  const FrameHeader& header = *pending_header_;

  // Attack: header + payload arithmetic overflowing to a small frame size.
  Checked<size_t> frame_size = Checked<size_t>(kFrameHeaderSize) + size_t{header.payload_size};
  MOAT_ASSERT(!frame_size.has_overflow(), "24 + u32 overflowed size_t");
  if (available < frame_size.value()) return std::optional<ReceivedFrame>();

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
  if (fds_.size() < header.fd_count) return std::optional<ReceivedFrame>();

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
