#include "core/codec/shared_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <limits>
#include <utility>

#include "limits/limits.h"

namespace moat {

SharedMemoryMapping::SharedMemoryMapping(SharedMemoryMapping&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      writable_(std::exchange(other.writable_, false)) {}

SharedMemoryMapping& SharedMemoryMapping::operator=(SharedMemoryMapping&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) ::munmap(data_, size_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    writable_ = std::exchange(other.writable_, false);
  }
  return *this;
}

SharedMemoryMapping::~SharedMemoryMapping() {
  if (data_ != nullptr) ::munmap(data_, size_);
}

uint8_t* SharedMemoryMapping::data() {
  MOAT_ASSERT(writable_ || data_ == nullptr, "writing through a read-only shared-memory mapping");
  return data_;
}

Result<SharedMemoryRegion> SharedMemoryRegion::Create(size_t size) {
  if (size > limits::MAX_SHARED_MEMORY_REGION_SIZE) {
    return Error(ErrorCode::kInvalidArgument,
                 internal::Concat("shared memory size ", size,
                                  " exceeds MAX_SHARED_MEMORY_REGION_SIZE ",
                                  limits::MAX_SHARED_MEMORY_REGION_SIZE));
  }
  if (size > static_cast<uint64_t>(std::numeric_limits<off_t>::max())) {
    return Error(ErrorCode::kInvalidArgument,
                 internal::Concat("shared memory size ", size, " does not fit off_t"));
  }
  UniqueFd fd(::memfd_create("moat-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) return IoError("memfd_create", errno);
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) return IoError("ftruncate", errno);
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    return IoError("fcntl(F_ADD_SEALS)", errno);
  }
  return SharedMemoryRegion(std::move(fd), size);
}

Result<SharedMemoryRegion> SharedMemoryRegion::FromReceived(UniqueFd fd, uint64_t declared_size) {
  // Seals first, size second: once F_SEAL_SHRINK is seen nobody can shrink
  // the file, so the size we read next cannot change under us.
  const int seals = ::fcntl(fd.get(), F_GET_SEALS);
  // Attack: a file the peer can still shrink after our check: touching the
  // vanished tail of our mapping raises SIGBUS and kills us.
  MOAT_REQUIRE(seals >= 0 && (seals & F_SEAL_SHRINK) != 0, ErrorCode::kMalformed,
               "shared memory descriptor lacks F_SEAL_SHRINK");
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return IoError("fstat", errno);
  // Attack: a socket, pipe or device posing as memory.
  MOAT_REQUIRE(S_ISREG(st.st_mode), ErrorCode::kMalformed,
               "shared memory descriptor is not a regular file");
  const uint64_t real_size = static_cast<uint64_t>(st.st_size);
  // Attack: a declared size larger than the file (reads past its end SIGBUS)
  // or smaller (we would trust a size that is not the object's).
  MOAT_REQUIRE(real_size == declared_size, ErrorCode::kMalformed, "declared size ", declared_size,
               " does not match the descriptor's size ", real_size);
  // Attack: a sparse memfd of a terabyte: free for the sender, but each page
  // a consumer touches is allocated then, and charged to us.
  MOAT_REQUIRE(declared_size <= limits::MAX_SHARED_MEMORY_REGION_SIZE, ErrorCode::kLimitExceeded,
               "shared memory size ", declared_size, " exceeds MAX_SHARED_MEMORY_REGION_SIZE ",
               limits::MAX_SHARED_MEMORY_REGION_SIZE);
  // Attack: a size that does not fit our address space (32-bit builds).
  MOAT_REQUIRE(IsInRange<size_t>(declared_size), ErrorCode::kLimitExceeded, "shared memory size ",
               declared_size, " does not fit size_t");
  const int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0) return IoError("fcntl(F_GETFL)", errno);
  const int access = flags & O_ACCMODE;
  // Attack: a write-only descriptor, which decodes fine but can never be
  // mapped: the failure would surface only later, at Map(), in the consumer.
  MOAT_REQUIRE(access != O_WRONLY, ErrorCode::kMalformed,
               "shared memory descriptor is open write-only (O_WRONLY): it cannot be mapped");
  const char* read_only_reason = nullptr;
  if (access == O_RDONLY) {
    read_only_reason = "the descriptor is open read-only (O_RDONLY)";
  } else if ((seals & F_SEAL_WRITE) != 0) {
    read_only_reason = "the region is write-sealed (F_SEAL_WRITE)";
  } else if ((seals & F_SEAL_FUTURE_WRITE) != 0) {
    read_only_reason = "the region is write-sealed (F_SEAL_FUTURE_WRITE)";
  }
  return SharedMemoryRegion(std::move(fd), static_cast<size_t>(declared_size), read_only_reason,
                            (seals & F_SEAL_WRITE) != 0);
}

Result<SharedMemoryMapping> SharedMemoryRegion::Map(Access access) const {
  MOAT_ASSERT(fd_.valid(), "mapping an invalid shared memory region");
  const bool writable = access == Access::kReadWrite;
  if (writable && read_only_reason_ != nullptr) {
    return Error(ErrorCode::kFailedPrecondition,
                 internal::Concat("cannot map the shared memory region read-write: ",
                                  read_only_reason_));
  }
  if (size_ == 0) return SharedMemoryMapping();
  void* p = ::mmap(nullptr, size_, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd_.get(), 0);
  if (p == MAP_FAILED) return IoError("mmap", errno);
  return SharedMemoryMapping(p, size_, writable);
}

Result<SharedMemoryRegion> SharedMemoryRegion::Duplicate() const {
  Result<UniqueFd> fd = fd_.Duplicate();
  if (!fd.ok()) return std::move(fd).error();
  return SharedMemoryRegion(std::move(*fd), size_, read_only_reason_, immutable_);
}

void Codec<SharedMemoryRegion>::Encode(Encoder& e, const SharedMemoryRegion& region) {
  MOAT_ASSERT(region.valid(), "encoding an invalid shared memory region");
  MOAT_ASSERT(region.size() <= limits::MAX_SHARED_MEMORY_REGION_SIZE, "sending a shared memory region of ",
              region.size(), " bytes exceeds MAX_SHARED_MEMORY_REGION_SIZE ",
              limits::MAX_SHARED_MEMORY_REGION_SIZE);
  e.WriteU64(region.size());
  Result<UniqueFd> fd = region.fd().Duplicate();
  if (!fd.ok()) {
    e.SetOsError(std::move(fd).error());
    e.WriteU32(0);
    return;
  }
  e.WriteU32(e.AttachFd(std::move(*fd)));
}

Result<SharedMemoryRegion> Codec<SharedMemoryRegion>::Decode(Decoder& d) {
  // No MAX_DECODED_SIZE here (R6): the sender already allocated the memory;
  // the size is instead checked against the descriptor itself.
  Result<uint64_t> size = d.ReadU64();
  if (!size.ok()) return std::move(size).error();
  const size_t fd_at = d.offset();
  Result<UniqueFd> fd = d.TakeFd();
  if (!fd.ok()) return std::move(fd).error();
  Result<SharedMemoryRegion> region = SharedMemoryRegion::FromReceived(std::move(*fd), *size);
  if (!region.ok()) return std::move(region).error().AtOffset(fd_at);
  return region;
}

}  // namespace moat
