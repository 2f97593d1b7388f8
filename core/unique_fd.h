// moat::UniqueFd: the owning file-descriptor type.
//
// Every descriptor moat receives from a peer is wrapped in a UniqueFd the
// instant it leaves recvmsg(), so every error path closes it by destruction:
// a hostile peer cannot make us leak descriptors by making decoding fail.
//
//   UniqueFd fd(::memfd_create("x", MFD_CLOEXEC));
//   if (!fd.valid()) return IoError("memfd_create");
//   int raw = fd.get();          // borrow
//   int owned = fd.release();    // caller now owns
#ifndef MOAT_CORE_UNIQUE_FD_H_
#define MOAT_CORE_UNIQUE_FD_H_

#include <unistd.h>

#include <utility>

#include "core/error.h"

namespace moat {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  bool valid() const { return fd_ >= 0; }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    int old = std::exchange(fd_, fd);
    if (old >= 0) ::close(old);
  }

  // dup()s with close-on-exec; an invalid UniqueFd and an Error on failure.
  Result<UniqueFd> Duplicate() const;

 private:
  int fd_ = -1;
};

// Error(kIo) naming the failed call and errno's text.
Error IoError(const char* call, int err);

}  // namespace moat

#endif  // MOAT_CORE_UNIQUE_FD_H_
