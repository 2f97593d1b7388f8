#include "core/system/shared_buffer.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "core/check.h"

namespace moat::system {
namespace {

Error Os(const char* call) {
  return Error(ErrorCode::kIo, internal::Concat(call, ": ", std::strerror(errno)));
}

}  // namespace

SharedMapping::SharedMapping(SharedMapping&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

SharedMapping& SharedMapping::operator=(SharedMapping&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) ::munmap(data_, size_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

SharedMapping::~SharedMapping() {
  if (data_ != nullptr) ::munmap(data_, size_);
}

void* SharedMapping::release() {
  size_ = 0;
  return std::exchange(data_, nullptr);
}

Result<UniqueFd> CreateSharedBuffer(uint64_t size) {
  MOAT_REQUIRE(size != 0, ErrorCode::kInvalidArgument, "shared buffer size: 0");
  MOAT_REQUIRE(size <= static_cast<uint64_t>(INT64_MAX), ErrorCode::kInvalidArgument,
               "shared buffer size: ", size, " exceeds off_t");
  UniqueFd fd(::memfd_create("moat-shared-buffer", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) return Os("memfd_create");
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) return Os("ftruncate");
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0) return Os("F_ADD_SEALS");
  return fd;
}

Result<SharedBufferInfo> InspectSharedBuffer(int buffer) {
  const int seals = ::fcntl(buffer, F_GET_SEALS);
  // Attack: a peer sending a regular file, a device or a pipe as a "buffer"
  // (its size can change, or mapping it has side effects).
  MOAT_REQUIRE(seals >= 0, ErrorCode::kInvalidArgument, "shared buffer: descriptor ", buffer,
               " is not a sealable memfd (", std::strerror(errno), ")");
  // Attack: a sender that shrinks the buffer after we mapped it, so that our
  // reads of the mapping fault (SIGBUS).
  MOAT_REQUIRE((seals & F_SEAL_SHRINK) != 0, ErrorCode::kInvalidArgument,
               "shared buffer: descriptor ", buffer,
               " is not sealed against shrinking (F_SEAL_SHRINK)");
  struct stat st {};
  if (::fstat(buffer, &st) != 0) return Os("fstat");
  SharedBufferInfo info;
  info.size = static_cast<uint64_t>(st.st_size);
  info.read_only = (seals & (F_SEAL_FUTURE_WRITE | F_SEAL_WRITE)) != 0;
  // Attack: an empty buffer (mmap of 0 bytes fails; nothing to share).
  MOAT_REQUIRE(info.size != 0, ErrorCode::kInvalidArgument, "shared buffer: descriptor ", buffer,
               " has size 0");
  return info;
}

Result<UniqueFd> DuplicateSharedBufferReadOnly(int buffer) {
  MOAT_ASSIGN_OR_RETURN(SharedBufferInfo info, InspectSharedBuffer(buffer));
  (void)info;
  const int seals = ::fcntl(buffer, F_GET_SEALS);
  if ((seals & F_SEAL_FUTURE_WRITE) == 0) {
    if (::fcntl(buffer, F_ADD_SEALS, F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) != 0) {
      return Os("F_ADD_SEALS F_SEAL_FUTURE_WRITE");
    }
  }
  UniqueFd dup(::fcntl(buffer, F_DUPFD_CLOEXEC, 0));
  if (!dup.valid()) return Os("F_DUPFD_CLOEXEC");
  return dup;
}

Result<SharedMapping> MapSharedBuffer(int buffer, bool writable) {
  MOAT_ASSIGN_OR_RETURN(SharedBufferInfo info, InspectSharedBuffer(buffer));
  MOAT_REQUIRE(!writable || !info.read_only, ErrorCode::kFailedPrecondition,
               "map shared buffer: descriptor ", buffer, " is read-only");
  MOAT_REQUIRE(info.size <= SIZE_MAX, ErrorCode::kInvalidArgument, "shared buffer size ",
               info.size, " exceeds the address space");
  const int prot = writable ? PROT_READ | PROT_WRITE : PROT_READ;
  void* data = ::mmap(nullptr, static_cast<size_t>(info.size), prot, MAP_SHARED, buffer, 0);
  if (data == MAP_FAILED) return Os("mmap");
  return SharedMapping(data, static_cast<size_t>(info.size));
}

}  // namespace moat::system
