// Payload inspectors for `moat inspect`. A unit that defines a wire format
// registers a function that decodes a payload and prints every field (or
// returns the decoder's exact Error):
//
//   MOAT_INSPECTOR(ports_event, "a serialized ports event",
//       [](std::span<const uint8_t> bytes, moat::tools::FieldPrinter& out) -> moat::Status {
//         MOAT_ASSIGN_OR_RETURN(auto event, DeserializeEvent(bytes, {}));
//         out.Field("type", EventTypeName(event->type()));
//         return moat::OkStatus();
//       });
#ifndef MOAT_TOOLS_INSPECT_INSPECTOR_H_
#define MOAT_TOOLS_INSPECT_INSPECTOR_H_

#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>

#include "core/error.h"

namespace moat::tools {

class FieldPrinter {
 public:
  explicit FieldPrinter(FILE* out, int indent = 2) : out_(out), indent_(indent) {}
  void Field(std::string_view name, std::string_view value) {
    std::fprintf(out_, "%*s%-16.*s %.*s\n", indent_, "", static_cast<int>(name.size()), name.data(),
                 static_cast<int>(value.size()), value.data());
  }
  void Field(std::string_view name, uint64_t value) { Field(name, std::to_string(value)); }
  void Line(std::string_view text) {
    std::fprintf(out_, "%*s%.*s\n", indent_, "", static_cast<int>(text.size()), text.data());
  }
  FieldPrinter Nested() const { return FieldPrinter(out_, indent_ + 2); }

 private:
  FILE* out_;
  int indent_;
};

struct Inspector {
  std::string summary;
  std::function<Status(std::span<const uint8_t>, FieldPrinter&)> inspect;
};

std::map<std::string, Inspector>& Inspectors();

struct InspectorRegistration {
  InspectorRegistration(const char* name, const char* summary,
                        std::function<Status(std::span<const uint8_t>, FieldPrinter&)> fn) {
    Inspectors()[name] = Inspector{summary, std::move(fn)};
  }
};

}  // namespace moat::tools

#define MOAT_INSPECTOR(name, summary, fn) \
  static ::moat::tools::InspectorRegistration moat_inspector_##name(#name, summary, fn)

#endif  // MOAT_TOOLS_INSPECT_INSPECTOR_H_
