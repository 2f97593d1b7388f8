// moat::SharedMemoryRegion: a sealed memfd that travels in a message (R6).
//
// Create() makes a memfd (MFD_CLOEXEC | MFD_ALLOW_SEALING) of an exact size
// and seals it against shrinking, growing and further sealing. The codec
// sends it as u64 size + descriptor slot. Regions are exempt from
// MAX_DECODED_SIZE (the sender already allocated the memory), but a received
// region is accepted only if the descriptor is a regular file whose fstat()
// size equals the declared size and which carries F_SEAL_SHRINK: a peer that
// could shrink the file after our check would make our mapping SIGBUS.
// Checked at decode time as well, so that a region which decodes can also be
// mapped as it says: the descriptor must be open for reading (not O_WRONLY),
// and the region is at most MAX_SHARED_MEMORY_REGION_SIZE (a sparse memfd
// costs its sender nothing). A region opened O_RDONLY or write-sealed
// (F_SEAL_WRITE / F_SEAL_FUTURE_WRITE) decodes as read-only: writable() is
// false and Map(kReadWrite) fails with kFailedPrecondition. A region with
// F_SEAL_WRITE is immutable(): its content can no longer change under us.
//
//   MOAT_ASSIGN_OR_RETURN(SharedMemoryRegion region, SharedMemoryRegion::Create(1 << 20));
//   MOAT_ASSIGN_OR_RETURN(SharedMemoryMapping map, region.Map(SharedMemoryRegion::Access::kReadWrite));
//   std::memcpy(map.data(), src, n);
//   encoder.Encode(region);                    // shares it (the descriptor is dup()ed)
//   ...
//   MOAT_ASSIGN_OR_RETURN(SharedMemoryRegion got, decoder.Decode<SharedMemoryRegion>());
#ifndef MOAT_CORE_CODEC_SHARED_MEMORY_H_
#define MOAT_CORE_CODEC_SHARED_MEMORY_H_

#include <cstddef>
#include <cstdint>
#include <span>

#include "core/codec/codec.h"
#include "core/decoder_registry.h"
#include "core/error.h"
#include "core/unique_fd.h"

namespace moat {

// An mmap()ed view of a region; unmapped on destruction.
class SharedMemoryMapping {
 public:
  SharedMemoryMapping() = default;
  SharedMemoryMapping(void* data, size_t size, bool writable)
      : data_(static_cast<uint8_t*>(data)), size_(size), writable_(writable) {}
  SharedMemoryMapping(SharedMemoryMapping&& other) noexcept;
  SharedMemoryMapping& operator=(SharedMemoryMapping&& other) noexcept;
  SharedMemoryMapping(const SharedMemoryMapping&) = delete;
  SharedMemoryMapping& operator=(const SharedMemoryMapping&) = delete;
  ~SharedMemoryMapping();

  // Writable only for kReadWrite mappings (asserted).
  uint8_t* data();
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  bool writable() const { return writable_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool writable_ = false;
};

class SharedMemoryRegion {
 public:
  enum class Access { kReadOnly, kReadWrite };

  SharedMemoryRegion() = default;
  SharedMemoryRegion(SharedMemoryRegion&&) = default;
  SharedMemoryRegion& operator=(SharedMemoryRegion&&) = default;

  // A new sealed memfd of exactly `size` bytes (zero-filled). Errors: kIo;
  // kInvalidArgument beyond MAX_SHARED_MEMORY_REGION_SIZE (no peer takes it).
  static Result<SharedMemoryRegion> Create(size_t size);

  // Checks a descriptor received from a peer (the R6 rules above) and adopts
  // it; on error the descriptor is closed. Used by Codec<SharedMemoryRegion>.
  MOAT_DECODER(shared_memory_region)
  static Result<SharedMemoryRegion> FromReceived(UniqueFd fd, uint64_t declared_size);

  // Maps the whole region. A size-0 region maps to an empty mapping.
  // kReadWrite on a read-only region: kFailedPrecondition.
  Result<SharedMemoryMapping> Map(Access access) const;

  bool valid() const { return fd_.valid(); }
  size_t size() const { return size_; }
  // Map(kReadWrite) can work: open O_RDWR and not write-sealed.
  bool writable() const { return read_only_reason_ == nullptr; }
  // F_SEAL_WRITE: nobody (not even the sender) can change the content.
  bool immutable() const { return immutable_; }
  const UniqueFd& fd() const { return fd_; }
  // A second region sharing the same memory (dup()ed descriptor).
  Result<SharedMemoryRegion> Duplicate() const;

 private:
  SharedMemoryRegion(UniqueFd fd, size_t size, const char* read_only_reason = nullptr,
                     bool immutable = false)
      : fd_(std::move(fd)),
        size_(size),
        read_only_reason_(read_only_reason),
        immutable_(immutable) {}

  UniqueFd fd_;
  size_t size_ = 0;
  const char* read_only_reason_ = nullptr;  // why Map(kReadWrite) cannot work
  bool immutable_ = false;
};

// Wire form: u64 size, u32 descriptor slot.
template <>
struct Codec<SharedMemoryRegion> {
  static constexpr size_t kMinEncodedSize = 12;
  // Shares the region: the descriptor is dup()ed (an OS failure is reported
  // by Encoder::Finish()). Asserts the region is valid.
  static void Encode(Encoder& e, const SharedMemoryRegion& region);
  MOAT_DECODER(shared_memory_region)
  static Result<SharedMemoryRegion> Decode(Decoder& d);
};

}  // namespace moat

#endif  // MOAT_CORE_CODEC_SHARED_MEMORY_H_
