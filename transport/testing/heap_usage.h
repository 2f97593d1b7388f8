// Test helper: bytes of heap this process has allocated and not freed, as the
// allocator itself reports them (glibc mallinfo2, or the sanitizer allocator
// under ASan/TSan). Used to assert memory bounds with real measurements, not
// only with a component's own accounting.
//
//   const size_t before = moat::testing::HeapBytesInUse();
//   ... let a hostile peer do its worst ...
//   EXPECT_LE(moat::testing::HeapBytesInUse() - before, budget);
#ifndef MOAT_TRANSPORT_TESTING_HEAP_USAGE_H_
#define MOAT_TRANSPORT_TESTING_HEAP_USAGE_H_

#include <malloc.h>

#include <cstddef>

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define MOAT_HEAP_USAGE_FROM_SANITIZER 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MOAT_HEAP_USAGE_FROM_SANITIZER 1
#endif

#ifdef MOAT_HEAP_USAGE_FROM_SANITIZER
#include <sanitizer/allocator_interface.h>
#endif

namespace moat::testing {

inline size_t HeapBytesInUse() {
#ifdef MOAT_HEAP_USAGE_FROM_SANITIZER
  return __sanitizer_get_current_allocated_bytes();
#else
  const struct mallinfo2 info = ::mallinfo2();
  return info.uordblks + info.hblkhd;  // small chunks in use + mmapped chunks
#endif
}

// Signed difference, so a shrink below the baseline does not wrap.
inline long long HeapGrowthSince(size_t baseline) {
  return static_cast<long long>(HeapBytesInUse()) - static_cast<long long>(baseline);
}

}  // namespace moat::testing

#endif  // MOAT_TRANSPORT_TESTING_HEAP_USAGE_H_
