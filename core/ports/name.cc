#include "core/ports/name.h"

#include <sys/random.h>

#include <cerrno>
#include <cstdio>

#include "core/check.h"

namespace moat::ports::internal {

void RandomName(uint64_t* hi, uint64_t* lo) {
  uint64_t words[2] = {0, 0};
  do {
    size_t got = 0;
    while (got < sizeof(words)) {
      ssize_t n = ::getrandom(reinterpret_cast<uint8_t*>(words) + got, sizeof(words) - got, 0);
      if (n < 0 && errno == EINTR) continue;
      // A name we cannot make unguessable would break the capability model.
      MOAT_ASSERT(n > 0, "getrandom failed: errno ", errno);
      got += static_cast<size_t>(n);
    }
  } while (words[0] == 0 && words[1] == 0);
  *hi = words[0];
  *lo = words[1];
}

std::string NameToString(uint64_t hi, uint64_t lo) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%016llx:%016llx", static_cast<unsigned long long>(hi),
                static_cast<unsigned long long>(lo));
  return buf;
}

}  // namespace moat::ports::internal
