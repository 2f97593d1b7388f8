// moat.hpp: header-only C++ conveniences over the C API in moat.h.
//
// libmoat has no C++ ABI: everything here is inline and calls only the
// exported C functions, so it works with any C++ standard library and
// compiler (C++17 or later).
//
//   moat::api::Pipe pipe;
//   if (moat::api::CreatePipe(&pipe) != MOAT_RESULT_OK) ...
//   moat::api::Write(pipe.a.get(), "hi", 2);
//   moat::api::Message m;
//   moat::api::Read(pipe.b.get(), &m);   // m.bytes == "hi"
#ifndef MOAT_MOAT_HPP_
#define MOAT_MOAT_HPP_

#include <unistd.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "moat.h"

namespace moat::api {

// Owns a handle: MoatClose on destruction.
class ScopedHandle {
 public:
  ScopedHandle() = default;
  explicit ScopedHandle(MoatHandle h) : h_(h) {}
  ScopedHandle(ScopedHandle&& o) noexcept : h_(o.release()) {}
  ScopedHandle& operator=(ScopedHandle&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  ScopedHandle(const ScopedHandle&) = delete;
  ScopedHandle& operator=(const ScopedHandle&) = delete;
  ~ScopedHandle() { reset(); }

  MoatHandle get() const { return h_; }
  bool valid() const { return h_ != MOAT_HANDLE_INVALID; }
  MoatHandle release() { return std::exchange(h_, MOAT_HANDLE_INVALID); }
  void reset(MoatHandle h = MOAT_HANDLE_INVALID) {
    const MoatHandle old = std::exchange(h_, h);
    if (old != MOAT_HANDLE_INVALID) (void)MoatClose(old);
  }

 private:
  MoatHandle h_ = MOAT_HANDLE_INVALID;
};

struct Pipe {
  ScopedHandle a, b;
};

inline MoatResult CreatePipe(Pipe* pipe) {
  MoatHandle a = MOAT_HANDLE_INVALID, b = MOAT_HANDLE_INVALID;
  const MoatResult r = MoatCreateMessagePipe(nullptr, &a, &b);
  if (r == MOAT_RESULT_OK) {
    pipe->a.reset(a);
    pipe->b.reset(b);
  }
  return r;
}

// A received message. The handles and descriptors belong to it.
struct Message {
  std::vector<uint8_t> bytes;
  std::vector<ScopedHandle> handles;
  std::vector<int> fds;

  Message() = default;
  Message(Message&&) = default;
  Message& operator=(Message&& o) noexcept {
    CloseFds();
    bytes = std::move(o.bytes);
    handles = std::move(o.handles);
    fds = std::move(o.fds);
    return *this;
  }
  ~Message() { CloseFds(); }

  // Gives up ownership of descriptor i (the caller closes it).
  int TakeFd(size_t i) { return std::exchange(fds[i], -1); }

 private:
  void CloseFds() {
    for (int fd : fds) {
      if (fd >= 0) ::close(fd);
    }
    fds.clear();
  }
};

// MoatWriteMessage without attachments, or with them (see moat.h for who
// owns the attached handles and descriptors afterwards).
inline MoatResult Write(MoatHandle pipe, const void* bytes, uint32_t num_bytes,
                        const std::vector<MoatHandle>& handles = {},
                        const std::vector<int>& fds = {}) {
  return MoatWriteMessage(pipe, bytes, num_bytes, handles.data(),
                          static_cast<uint32_t>(handles.size()), fds.data(),
                          static_cast<uint32_t>(fds.size()), nullptr);
}

// Write that never waits (MOAT_WRITE_MESSAGE_FLAG_NON_BLOCKING): SHOULD_WAIT
// if the pipe is not WRITABLE now, and then the handles and descriptors are
// still the caller's.
inline MoatResult TryWrite(MoatHandle pipe, const void* bytes, uint32_t num_bytes,
                           const std::vector<MoatHandle>& handles = {},
                           const std::vector<int>& fds = {}) {
  const MoatWriteMessageOptions options = {sizeof(options), MOAT_WRITE_MESSAGE_FLAG_NON_BLOCKING};
  return MoatWriteMessage(pipe, bytes, num_bytes, handles.data(),
                          static_cast<uint32_t>(handles.size()), fds.data(),
                          static_cast<uint32_t>(fds.size()), &options);
}

// MoatReadMessage with buffers sized by the first call.
inline MoatResult Read(MoatHandle pipe, Message* out) {
  uint32_t num_bytes = 0, num_handles = 0, num_fds = 0;
  MoatResult r =
      MoatReadMessage(pipe, nullptr, nullptr, &num_bytes, nullptr, &num_handles, nullptr, &num_fds);
  if (r != MOAT_RESULT_OK && r != MOAT_RESULT_RESOURCE_EXHAUSTED) return r;
  std::vector<uint8_t> bytes(num_bytes);
  std::vector<MoatHandle> handles(num_handles);
  std::vector<int> fds(num_fds, -1);
  if (r == MOAT_RESULT_RESOURCE_EXHAUSTED) {
    r = MoatReadMessage(pipe, nullptr, bytes.data(), &num_bytes, handles.data(), &num_handles,
                        fds.data(), &num_fds);
    if (r != MOAT_RESULT_OK) return r;
  }
  Message m;
  m.bytes = std::move(bytes);
  for (uint32_t i = 0; i < num_handles; ++i) m.handles.emplace_back(handles[i]);
  fds.resize(num_fds);
  m.fds = std::move(fds);
  *out = std::move(m);
  return MOAT_RESULT_OK;
}

}  // namespace moat::api

#endif  // MOAT_MOAT_HPP_
