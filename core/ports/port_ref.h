// PortRef: a copyable, refcounted reference to a port on this node.
//
// Holding a PortRef keeps the Port object alive but not registered: once the
// node erases the port (closed, proxy removed), operations through the ref
// fail with kNotFound/kClosed instead of touching freed memory.
//
//   PortRef a, b;
//   node.CreatePortPair(&a, &b);
//   PortRef copy = a;          // same port
#ifndef MOAT_CORE_PORTS_PORT_REF_H_
#define MOAT_CORE_PORTS_PORT_REF_H_

#include <memory>

#include "core/ports/name.h"

namespace moat::ports {

class Port;

class PortRef {
 public:
  PortRef() = default;
  PortRef(const PortName& name, std::shared_ptr<Port> port) : name_(name), port_(std::move(port)) {}

  const PortName& name() const { return name_; }
  bool is_valid() const { return port_ != nullptr; }
  Port* port() const { return port_.get(); }

  friend bool operator==(const PortRef& a, const PortRef& b) { return a.port_ == b.port_; }

 private:
  PortName name_;
  std::shared_ptr<Port> port_;
};

}  // namespace moat::ports

#endif  // MOAT_CORE_PORTS_PORT_REF_H_
