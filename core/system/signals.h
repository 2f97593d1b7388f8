// Handle signals: the observable state of a message-pipe endpoint (R14).
//
// A signal is *satisfied* when the condition holds now and *satisfiable* when
// it could still hold at some point in the future. Traps (trap.h) watch these
// bits; a trigger whose signals can never be satisfied again is reported as
// FAILED_PRECONDITION instead of waiting forever.
//
//   HandleSignalsState s = endpoint->QuerySignals();
//   if (s.Satisfies(kSignalReadable)) ReadMessage(...);
//   if (!s.CanSatisfy(kSignalReadable)) { /* peer gone and queue drained */ }
//
// The values are identical to the MOAT_HANDLE_SIGNAL_* constants of the C API
// (moat.h); core.cc static_asserts that they stay so.
#ifndef MOAT_CORE_SYSTEM_SIGNALS_H_
#define MOAT_CORE_SYSTEM_SIGNALS_H_

#include <cstdint>
#include <string>

namespace moat::system {

using SignalSet = uint32_t;

inline constexpr SignalSet kSignalNone = 0;
// At least one message is queued for reading.
inline constexpr SignalSet kSignalReadable = 1u << 0;
// The peer is open and no unread-message quota is exceeded on this end.
inline constexpr SignalSet kSignalWritable = 1u << 1;
// The peer endpoint was closed (or its node was lost).
inline constexpr SignalSet kSignalPeerClosed = 1u << 2;
// A quota set on this endpoint is currently exceeded. Bit 5 as in Mojo
// (MOJO_HANDLE_SIGNAL_QUOTA_EXCEEDED); bits 3 and 4 are Mojo's
// NEW_DATA_READABLE and PEER_REMOTE, which moat does not raise: reserved, and
// rejected as unknown in a trigger.
inline constexpr SignalSet kSignalQuotaExceeded = 1u << 5;

inline constexpr SignalSet kAllSignals =
    kSignalReadable | kSignalWritable | kSignalPeerClosed | kSignalQuotaExceeded;

struct HandleSignalsState {
  SignalSet satisfied = kSignalNone;
  SignalSet satisfiable = kSignalNone;

  bool Satisfies(SignalSet signals) const { return (satisfied & signals) != 0; }
  bool SatisfiesAll(SignalSet signals) const { return (satisfied & signals) == signals; }
  bool CanSatisfy(SignalSet signals) const { return (satisfiable & signals) != 0; }

  friend bool operator==(const HandleSignalsState&, const HandleSignalsState&) = default;
};

// "READABLE|PEER_CLOSED" (or "NONE"), for errors and test output.
inline std::string SignalsToString(SignalSet signals) {
  std::string out;
  auto add = [&](SignalSet bit, const char* name) {
    if ((signals & bit) == 0) return;
    if (!out.empty()) out += "|";
    out += name;
  };
  add(kSignalReadable, "READABLE");
  add(kSignalWritable, "WRITABLE");
  add(kSignalPeerClosed, "PEER_CLOSED");
  add(kSignalQuotaExceeded, "QUOTA_EXCEEDED");
  if ((signals & ~kAllSignals) != 0) {
    if (!out.empty()) out += "|";
    out += "UNKNOWN";
  }
  return out.empty() ? "NONE" : out;
}

}  // namespace moat::system

#endif  // MOAT_CORE_SYSTEM_SIGNALS_H_
