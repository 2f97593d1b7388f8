#include "core/check.h"

#include <cstdio>
#include <cstdlib>

namespace moat::internal {

void AssertionFailed(const char* file, int line, const char* condition,
                     const std::string& message) {
  std::fprintf(stderr, "moat: programmer error at %s:%d: MOAT_ASSERT(%s) failed%s%s\n", file,
               line, condition, message.empty() ? "" : ": ", message.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace moat::internal
