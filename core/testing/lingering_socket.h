// moat::testing::LingeringSocket: a descriptor whose last close() blocks for
// as long as the test likes, the weapon of TRP-12 (issue 13 item 1).
//
// A loopback TCP socket with unsent data behind a zero window and SO_LINGER
// {1, N}: close() waits N seconds for an acknowledgement that never comes.
// Hand `weapon` to the code under test (dropping every other copy, so its
// close is the last one) and check that the call returns at once. When a
// check fails, Disarm() resets the connection, which ends the linger: a
// regression then fails within the test's guard instead of hanging it.
//
//   LingeringSocket w = LingeringSocket::Make();
//   ... give w.weapon.release() to the victim ...
//   double s = RunWithin("MoatClose", &w, [&] { MoatClose(h); });
#ifndef MOAT_CORE_TESTING_LINGERING_SOCKET_H_
#define MOAT_CORE_TESTING_LINGERING_SOCKET_H_

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>
#include <vector>

#include "core/unique_fd.h"

namespace moat::testing {

// How long a lingering close would block: far beyond kLingerGuard, so a
// regression is unmistakable.
inline constexpr int kLingerSeconds = 120;
inline constexpr auto kLingerGuard = std::chrono::seconds(10);

struct LingeringSocket {
  UniqueFd weapon;    // hand this one to the victim (and drop every other copy)
  UniqueFd receiver;  // the accepted end, never read; resetting it ends the linger

  static LingeringSocket Make(int linger_seconds = kLingerSeconds) {
    LingeringSocket out;
    UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    EXPECT_TRUE(listener.valid());
    const int small = 4096;
    // Inherited by the accepted socket: a small window fills fast.
    EXPECT_EQ(::setsockopt(listener.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(listener.get(), 1), 0);
    socklen_t len = sizeof(addr);
    EXPECT_EQ(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len), 0);
    out.weapon.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    EXPECT_EQ(::setsockopt(out.weapon.get(), SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    EXPECT_EQ(::connect(out.weapon.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    out.receiver.reset(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    EXPECT_TRUE(out.receiver.valid());
    // Fill the receiver's window and our send queue.
    std::vector<char> junk(64 * 1024, 'j');
    while (::send(out.weapon.get(), junk.data(), junk.size(), MSG_DONTWAIT | MSG_NOSIGNAL) > 0) {
    }
    int unsent = 0;
    EXPECT_EQ(::ioctl(out.weapon.get(), SIOCOUTQ, &unsent), 0);
    EXPECT_GT(unsent, 0) << "nothing left unsent: close() would not linger";
    const linger lng{1, linger_seconds};
    EXPECT_EQ(::setsockopt(out.weapon.get(), SOL_SOCKET, SO_LINGER, &lng, sizeof(lng)), 0);
    return out;
  }

  // Resets the connection (the receiver closes with unread data): a close
  // still lingering on `weapon` returns at once. Only for a failing test.
  void Disarm() { receiver.reset(); }
};

// Runs `fn` on another thread, so that a call stuck in close() fails the test
// after kLingerGuard (then `weapon` is disarmed) instead of hanging it.
// Returns the seconds `fn` took.
inline double RunWithin(const char* what, LingeringSocket* weapon, std::function<void()> fn) {
  using Clock = std::chrono::steady_clock;
  std::atomic<bool> done{false};
  const Clock::time_point start = Clock::now();
  std::thread runner([&] {
    fn();
    done = true;
  });
  while (!done && Clock::now() - start < kLingerGuard) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_TRUE(done) << what << " blocked in close() for " << seconds << " s";
  if (!done && weapon != nullptr) weapon->Disarm();
  runner.join();
  return seconds;
}

}  // namespace moat::testing

#endif  // MOAT_CORE_TESTING_LINGERING_SOCKET_H_
