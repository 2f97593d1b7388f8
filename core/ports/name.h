// NodeName and PortName: 128-bit random names of nodes (processes) and ports.
//
// Names are unguessable (drawn from getrandom), so knowing a port's name is
// the capability to address it: a peer can only target ports whose names it
// was told. The all-zero name is "invalid" and is never generated.
//
//   PortName p = PortName::Random();
//   if (p.is_valid()) log(p.ToString());   // "0123456789abcdef:fedcba9876543210"
#ifndef MOAT_CORE_PORTS_NAME_H_
#define MOAT_CORE_PORTS_NAME_H_

#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace moat::ports {

namespace internal {
// Fills both words from getrandom(); never returns an all-zero pair.
void RandomName(uint64_t* hi, uint64_t* lo);
std::string NameToString(uint64_t hi, uint64_t lo);
}  // namespace internal

struct NodeName {
  uint64_t hi = 0, lo = 0;

  bool is_valid() const { return hi != 0 || lo != 0; }
  friend auto operator<=>(const NodeName&, const NodeName&) = default;
  std::string ToString() const { return internal::NameToString(hi, lo); }
  static NodeName Random() {
    NodeName n;
    internal::RandomName(&n.hi, &n.lo);
    return n;
  }
};

struct PortName {
  uint64_t hi = 0, lo = 0;

  bool is_valid() const { return hi != 0 || lo != 0; }
  friend auto operator<=>(const PortName&, const PortName&) = default;
  std::string ToString() const { return internal::NameToString(hi, lo); }
  static PortName Random() {
    PortName n;
    internal::RandomName(&n.hi, &n.lo);
    return n;
  }
};

inline constexpr NodeName kInvalidNodeName{};
inline constexpr PortName kInvalidPortName{};

struct NameHash {
  size_t operator()(const NodeName& n) const { return std::hash<uint64_t>()(n.hi ^ (n.lo * 31)); }
  size_t operator()(const PortName& n) const { return std::hash<uint64_t>()(n.hi ^ (n.lo * 31)); }
};

}  // namespace moat::ports

#endif  // MOAT_CORE_PORTS_NAME_H_
