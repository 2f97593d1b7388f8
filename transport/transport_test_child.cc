// Child process for transport_process_test: runs one role over the transport
// socket it inherits as descriptor 3.
//
//   transport_test_child echo        echo every message (payload + descriptors)
//   transport_test_child use_fds     write to a received pipe, read a memfd, reply
//   transport_test_child count N K   receive N messages from K sender threads,
//                                    check per-thread order, reply "ok" or the error
//   transport_test_child partial     raw: a "ready" frame plus half a frame, then wait
//   transport_test_child idle        raw: an "idle" frame, then never read (the parent kills it)
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <thread>
#include <cstring>
#include <string>
#include <vector>

#include "core/frame.h"
#include "core/mutex.h"
#include "transport/transport.h"

namespace {

using moat::transport::Message;
using moat::transport::MessageView;
using moat::transport::Transport;
using moat::transport::TransportHandle;
using moat::transport::TransportOptions;

constexpr int kSocketFd = 3;

std::vector<uint8_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }

std::unique_ptr<Transport> Connect(TransportOptions options) {
  auto t = TransportHandle(moat::UniqueFd(kSocketFd)).CreateTransport(std::move(options));
  if (!t.ok()) {
    std::fprintf(stderr, "child: %s\n", t.error().ToString().c_str());
    std::exit(2);
  }
  return std::move(*t);
}

// Echo from the IO thread (no hop); exits when the parent disconnects.
int Echo() {
  moat::Mutex mu;
  moat::CondVar cv;
  bool done = false;
  std::atomic<Transport*> self{nullptr};
  TransportOptions options;
  options.on_message = [&](MessageView& m) {
    // The handler may run before Connect returns.
    while (self.load(std::memory_order_acquire) == nullptr) std::this_thread::yield();
    (void)self.load(std::memory_order_acquire)->Send(m.payload, std::move(m.fds));
  };
  options.on_disconnect = [&](const moat::Error&) {
    moat::MutexLock lock(&mu);
    done = true;
    cv.SignalAll();
  };
  std::unique_ptr<Transport> t = Connect(std::move(options));
  self.store(t.get(), std::memory_order_release);
  moat::MutexLock lock(&mu);
  while (!done) cv.Wait(&mu);
  return 0;
}

int UseFds() {
  std::unique_ptr<Transport> t = Connect({});
  auto m = t->Receive();
  if (!m.ok() || m->fds.size() != 2) return 3;
  const char text[] = "written by the child";
  if (::write(m->fds[0].get(), text, sizeof(text) - 1) != sizeof(text) - 1) return 4;
  char buf[64] = {};
  const ssize_t n = ::pread(m->fds[1].get(), buf, sizeof(buf), 0);
  if (n <= 0) return 5;
  if (!t->Send(Bytes(std::string(buf, static_cast<size_t>(n)))).ok()) return 6;
  auto bye = t->Receive();  // the parent closes when it has the reply
  return bye.ok() ? 7 : 0;
}

int Count(int n, int k) {
  std::unique_ptr<Transport> t = Connect({});
  std::vector<int> next(static_cast<size_t>(k), 0);
  std::string verdict = "ok";
  for (int i = 0; i < n; ++i) {
    auto m = t->Receive();
    if (!m.ok()) {
      verdict = "receive failed: " + m.error().ToString();
      break;
    }
    std::string s(m->payload.begin(), m->payload.end());
    const int thread = std::stoi(s.substr(0, s.find(':')));
    const int seq = std::stoi(s.substr(s.find(':') + 1));
    if (thread < 0 || thread >= k || seq != next[static_cast<size_t>(thread)]) {
      verdict = "out of order: " + s;
      break;
    }
    ++next[static_cast<size_t>(thread)];
  }
  if (!t->Send(Bytes(verdict)).ok()) return 3;
  auto bye = t->Receive();
  return 0;
}

int Partial() {
  auto ready = moat::EncodeFrameHeader({.type = moat::FrameType::kMessage, .payload_size = 5});
  std::vector<uint8_t> bytes(ready.begin(), ready.end());
  const char r[] = "ready";
  bytes.insert(bytes.end(), r, r + 5);
  auto half = moat::EncodeFrameHeader({.type = moat::FrameType::kMessage, .payload_size = 1000});
  bytes.insert(bytes.end(), half.begin(), half.end());
  bytes.insert(bytes.end(), 500, 'h');
  if (::write(kSocketFd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) {
    return 3;
  }
  while (true) ::pause();
}

// Raw: says "idle" and then never reads, so the parent's sends fill the socket.
int Idle() {
  auto header = moat::EncodeFrameHeader({.type = moat::FrameType::kMessage, .payload_size = 4});
  std::vector<uint8_t> bytes(header.begin(), header.end());
  bytes.insert(bytes.end(), {'i', 'd', 'l', 'e'});
  if (::write(kSocketFd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) {
    return 3;
  }
  while (true) ::pause();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  const std::string mode = argv[1];
  if (mode == "echo") return Echo();
  if (mode == "use_fds") return UseFds();
  if (mode == "count" && argc == 4) return Count(std::atoi(argv[2]), std::atoi(argv[3]));
  if (mode == "partial") return Partial();
  if (mode == "idle") return Idle();
  return 2;
}
