// A fuzz target with a planted bug for moat_fuzz_test: aborts on any input
// that contains "moat!". The test seeds it with a padded trigger, so the crash
// is found at once and minimization has something to remove.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string.h>  // memmem

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (memmem(data, size, "moat!", 5) != nullptr) std::abort();
  return 0;
}
