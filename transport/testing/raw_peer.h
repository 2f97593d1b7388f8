// Test helpers for a hostile peer that speaks the transport's wire by hand on
// a raw socket: frame headers with any field, frames, raw sendmsg with
// SCM_RIGHTS, blocking writes.
//
//   ASSERT_TRUE(SendRaw(raw.get(), RawFrame("hi", 1), OpenDevNull(1)));
#ifndef MOAT_TRANSPORT_TESTING_RAW_PEER_H_
#define MOAT_TRANSPORT_TESTING_RAW_PEER_H_

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/frame.h"
#include "core/internal/little_endian.h"

namespace moat::transport::testing {

// A frame header with every field chosen by the caller (no validation).
inline std::vector<uint8_t> RawHeader(uint16_t type, uint32_t payload_size, uint32_t fd_count,
                                      uint32_t ack_count, uint32_t magic = kFrameMagic,
                                      uint16_t flags = 0) {
  std::vector<uint8_t> out(kFrameHeaderSize);
  ::moat::internal::StoreLE32(&out[0], magic);
  ::moat::internal::StoreLE16(&out[4], type);
  ::moat::internal::StoreLE16(&out[6], flags);
  ::moat::internal::StoreLE32(&out[8], payload_size);
  ::moat::internal::StoreLE32(&out[12], fd_count);
  ::moat::internal::StoreLE32(&out[16], ack_count);
  ::moat::internal::StoreLE32(&out[20], 0);
  return out;
}

// A MESSAGE frame carrying `payload` and claiming `fd_count` descriptors.
template <typename Bytes>
std::vector<uint8_t> RawFrame(const Bytes& payload, uint32_t fd_count = 0) {
  std::vector<uint8_t> out = RawHeader(static_cast<uint16_t>(FrameType::kMessage),
                                       static_cast<uint32_t>(payload.size()), fd_count, 0);
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}
inline std::vector<uint8_t> RawFrame(const char* payload, uint32_t fd_count = 0) {
  return RawFrame(std::string(payload), fd_count);
}

inline std::vector<int> OpenDevNull(size_t n) {
  std::vector<int> out;
  for (size_t i = 0; i < n; ++i) out.push_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  return out;
}

// One raw sendmsg with `fds` attached (the caller's copies are closed after).
inline bool SendRaw(int socket, const std::vector<uint8_t>& bytes, std::vector<int> fds = {}) {
  iovec iov{const_cast<uint8_t*>(bytes.data()), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * std::max<size_t>(fds.size(), 1)));
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  const ssize_t n = ::sendmsg(socket, &msg, MSG_NOSIGNAL);
  for (int fd : fds) ::close(fd);
  return n == static_cast<ssize_t>(bytes.size());
}

// Writes all of `bytes`, blocking.
inline bool WriteAll(int socket, const std::vector<uint8_t>& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::send(socket, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace moat::transport::testing

#endif  // MOAT_TRANSPORT_TESTING_RAW_PEER_H_
