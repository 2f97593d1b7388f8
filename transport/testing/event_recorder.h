// Test helper: records a Transport's disconnect events so tests can wait for
// one (with a generous hang guard, never a timing assertion) and then assert
// there was exactly one.
//
//   DisconnectRecorder rec;
//   TransportOptions options = rec.Options();
//   ... provoke ...
//   Error e = rec.WaitForFirst();
//   EXPECT_EQ(rec.count(), 1);
#ifndef MOAT_TRANSPORT_TESTING_EVENT_RECORDER_H_
#define MOAT_TRANSPORT_TESTING_EVENT_RECORDER_H_

#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <optional>
#include <vector>

#include "core/error.h"
#include "core/mutex.h"
#include "transport/transport.h"

namespace moat::transport::testing {

class DisconnectRecorder {
 public:
  // Options whose on_disconnect records into this recorder (which must
  // outlive the transport).
  TransportOptions Options(limits::ConnectionLimits limits = limits::ConnectionLimits::Defaults()) {
    TransportOptions options;
    options.limits = limits;
    options.on_disconnect = [this](const Error& e) {
      MutexLock lock(&mu_);
      errors_.push_back(e);
      cv_.SignalAll();
    };
    return options;
  }

  // The first disconnect; aborts the test binary after a minute (a hang).
  Error WaitForFirst() {
    MutexLock lock(&mu_);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (errors_.empty()) {
      if (std::chrono::steady_clock::now() > deadline) {
        std::fprintf(stderr, "DisconnectRecorder: no disconnect event (hang)\n");
        std::abort();
      }
      cv_.WaitFor(&mu_, std::chrono::milliseconds(100));
    }
    return errors_.front();
  }

  // The first disconnect, or nullopt if none arrives within `timeout` (for
  // tests whose failure mode is a missing event: they fail, not abort).
  std::optional<Error> WaitFor(std::chrono::nanoseconds timeout) {
    MutexLock lock(&mu_);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (errors_.empty()) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) return std::nullopt;
      cv_.WaitFor(&mu_, deadline - now);
    }
    return errors_.front();
  }

  size_t count() const {
    MutexLock lock(&mu_);
    return errors_.size();
  }

 private:
  mutable Mutex mu_;
  CondVar cv_;
  std::vector<Error> errors_ ABSL_GUARDED_BY(mu_);
};

}  // namespace moat::transport::testing

#endif  // MOAT_TRANSPORT_TESTING_EVENT_RECORDER_H_
