#include "tools/bench/raw_io.h"

#include <sys/socket.h>
#include <unistd.h>

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace moat::tools::raw {

bool WriteAll(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool ReadAll(int fd, uint8_t* p, size_t n) {
  while (n > 0) {
    const ssize_t r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

bool SendFd(int socket, const uint8_t* p, size_t n, int fd) {
  iovec iov{const_cast<uint8_t*>(p), n};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  return ::sendmsg(socket, &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(n);
}

int RecvFd(int socket, uint8_t* p, size_t n) {
  iovec iov{p, n};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  const ssize_t r = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC);
  if (r <= 0) return -1;
  int fd = -1;
  if (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr && c->cmsg_type == SCM_RIGHTS) {
    std::memcpy(&fd, CMSG_DATA(c), sizeof(int));
  }
  if (static_cast<size_t>(r) < n && !ReadAll(socket, p + r, n - static_cast<size_t>(r))) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  return fd;
}

namespace {

using Clock = std::chrono::steady_clock;
constexpr double kMiB = 1024.0 * 1024.0;

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "moat bench (raw baseline): %s: %s\n", what, std::strerror(errno));
  std::_Exit(1);
}

}  // namespace

[[noreturn]] void EchoChild(int socket, const Exchange& c) {
  std::vector<uint8_t> buf(std::max<size_t>(c.size, 1));
  switch (c.kind) {
    case Kind::kRoundTrip:
      while (ReadAll(socket, buf.data(), c.size) && WriteAll(socket, buf.data(), c.size)) {
      }
      break;
    case Kind::kRoundTripFd:
      while (true) {
        const int fd = RecvFd(socket, buf.data(), c.size);
        if (fd < 0) break;
        const bool ok = SendFd(socket, buf.data(), c.size, fd);
        ::close(fd);
        if (!ok) break;
      }
      break;
    case Kind::kThroughput: {
      const size_t total = c.size * static_cast<size_t>(c.tput_messages);
      size_t got = 0;
      while (got < total) {
        const ssize_t r = ::read(socket, buf.data(), std::min(buf.size(), total - got));
        if (r <= 0) break;
        got += static_cast<size_t>(r);
      }
      uint8_t done = 1;
      WriteAll(socket, &done, 1);
      ReadAll(socket, &done, 1);  // until the parent closes
      break;
    }
  }
  std::_Exit(0);
}

double TimeExchange(int socket, const Exchange& c) {
  std::vector<uint8_t> buf(std::max<size_t>(c.size, 1), 0x42);
  if (c.kind == Kind::kThroughput) {
    const auto start = Clock::now();
    for (int i = 0; i < c.tput_messages; ++i) {
      if (!WriteAll(socket, buf.data(), c.size)) Die("write");
    }
    uint8_t done;
    if (!ReadAll(socket, &done, 1)) Die("read");
    const double secs = std::chrono::duration<double>(Clock::now() - start).count();
    return static_cast<double>(c.size) * c.tput_messages / secs / kMiB;
  }
  int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  auto one = [&] {
    if (c.kind == Kind::kRoundTrip) {
      if (!WriteAll(socket, buf.data(), c.size) || !ReadAll(socket, buf.data(), c.size)) {
        Die("raw round trip");
      }
    } else {
      if (!SendFd(socket, buf.data(), c.size, fd)) Die("sendmsg");
      ::close(fd);
      fd = RecvFd(socket, buf.data(), c.size);
      if (fd < 0) Die("recvmsg");
    }
  };
  for (int i = 0; i < c.rt_iters / 10; ++i) one();  // warm up
  const auto start = Clock::now();
  for (int i = 0; i < c.rt_iters; ++i) one();
  const double us = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
  ::close(fd);
  return us / c.rt_iters;
}

}  // namespace moat::tools::raw
