// Shared buffers (issue 15 item 7): memory shared between processes for bulk
// data (graphics), as descriptors that travel in messages like any other.
//
// A buffer is a sealed memfd: its size is fixed at creation (F_SEAL_SHRINK,
// F_SEAL_GROW), so no holder can shrink it under another's mapping (which
// would turn that process's reads into SIGBUS). MakeReadOnly adds
// F_SEAL_FUTURE_WRITE and F_SEAL_SEAL: from then on nobody can map it
// writable or write() it, through any descriptor, while mappings made before
// (the producer's) keep writing. That is the producer/consumer pattern:
//
//   MOAT_ASSIGN_OR_RETURN(UniqueFd buf, CreateSharedBuffer(size));
//   MOAT_ASSIGN_OR_RETURN(SharedMapping out, MapSharedBuffer(buf.get(), /*writable=*/true));
//   MOAT_ASSIGN_OR_RETURN(UniqueFd ro, DuplicateSharedBufferReadOnly(buf.get()));
//   // send `ro`; keep drawing into out.data()
//
// A received descriptor is untrusted: InspectSharedBuffer (and MapSharedBuffer,
// which calls it) accepts only a memfd sealed against shrinking and reports
// its size and whether it is read-only.
#ifndef MOAT_CORE_SYSTEM_SHARED_BUFFER_H_
#define MOAT_CORE_SYSTEM_SHARED_BUFFER_H_

#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "core/unique_fd.h"

namespace moat::system {

struct SharedBufferInfo {
  uint64_t size = 0;
  bool read_only = false;  // F_SEAL_FUTURE_WRITE: no writable mapping possible
};

// A mapping, unmapped on destruction (or by the C API's MoatUnmapSharedBuffer).
class SharedMapping {
 public:
  SharedMapping() = default;
  SharedMapping(void* data, size_t size) : data_(data), size_(size) {}
  SharedMapping(SharedMapping&& other) noexcept;
  SharedMapping& operator=(SharedMapping&& other) noexcept;
  ~SharedMapping();
  void* data() const { return data_; }
  size_t size() const { return size_; }
  // The caller unmaps (munmap(data, size)) itself.
  void* release();

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

// kInvalidArgument for size 0; kIo if the kernel refuses.
Result<UniqueFd> CreateSharedBuffer(uint64_t size);

// Seals `buffer` read-only (for every holder, see the file comment) and
// returns a new descriptor of it. kInvalidArgument if it is not a buffer.
Result<UniqueFd> DuplicateSharedBufferReadOnly(int buffer);

// kInvalidArgument, naming the rule, for a descriptor that is not a buffer
// (not a memfd, not sealed against shrinking).
Result<SharedBufferInfo> InspectSharedBuffer(int buffer);

// Maps the whole buffer. kFailedPrecondition: `writable` on a read-only one.
Result<SharedMapping> MapSharedBuffer(int buffer, bool writable);

}  // namespace moat::system

#endif  // MOAT_CORE_SYSTEM_SHARED_BUFFER_H_
