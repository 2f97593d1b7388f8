#include "core/unique_fd.h"

#include <fcntl.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace moat {

Result<UniqueFd> UniqueFd::Duplicate() const {
  int fd = ::fcntl(fd_, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return IoError("fcntl(F_DUPFD_CLOEXEC)", errno);
  return UniqueFd(fd);
}

Error IoError(const char* call, int err) {
  return Error(ErrorCode::kIo, std::string(call) + ": " + std::strerror(err));
}

}  // namespace moat
