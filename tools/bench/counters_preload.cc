// libmoat_bench_counters.so: LD_PRELOADed by `moat bench --counters` into
// the one-run processes it spawns (never into the timed runs). It counts,
// over the whole process tree (the counters live in one MAP_SHARED page made
// before any fork, so a forked child adds to the same totals):
//   allocations  malloc/calloc/realloc/aligned allocations and frees
//   locks        pthread_mutex_lock/trylock successes (moat::Mutex is a
//                std::mutex, which locks through these)
//   copies       memcpy/memmove calls of at least MOAT_BENCH_COPY_MIN bytes
//                (the case's payload size) and the bytes they moved: user-
//                space payload copies (the kernel's copies are not seen)
// The bench reads them through moat_bench_counters() (dlsym).
#include <dlfcn.h>
#include <pthread.h>
#include <sys/mman.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void __libc_free(void*);
}

namespace {

struct Counters {
  std::atomic<uint64_t> allocs, frees, locks, copies, copy_bytes;
};
static_assert(std::atomic<uint64_t>::is_always_lock_free);

Counters g_fallback;  // until the shared page exists
Counters* g_counters = &g_fallback;
size_t g_copy_min = SIZE_MAX;

using LockFn = int (*)(pthread_mutex_t*);
using CopyFn = void* (*)(void*, const void*, size_t);
LockFn g_lock = nullptr;
LockFn g_trylock = nullptr;
CopyFn g_memcpy = nullptr;
CopyFn g_memmove = nullptr;

void* ByteCopy(void* d, const void* s, size_t n) {
  auto* dst = static_cast<volatile unsigned char*>(d);
  const auto* src = static_cast<const unsigned char*>(s);
  if (dst < src) {
    for (size_t i = 0; i < n; ++i) dst[i] = src[i];
  } else {
    for (size_t i = n; i > 0; --i) dst[i - 1] = src[i - 1];
  }
  return d;
}

void Count(std::atomic<uint64_t>& c, uint64_t by = 1) { c.fetch_add(by, std::memory_order_relaxed); }

__attribute__((constructor)) void Init() {
  g_memcpy = reinterpret_cast<CopyFn>(dlsym(RTLD_NEXT, "memcpy"));
  g_memmove = reinterpret_cast<CopyFn>(dlsym(RTLD_NEXT, "memmove"));
  g_lock = reinterpret_cast<LockFn>(dlsym(RTLD_NEXT, "pthread_mutex_lock"));
  g_trylock = reinterpret_cast<LockFn>(dlsym(RTLD_NEXT, "pthread_mutex_trylock"));
  void* page = mmap(nullptr, sizeof(Counters), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                    -1, 0);
  if (page != MAP_FAILED) g_counters = new (page) Counters{};
  if (const char* min = getenv("MOAT_BENCH_COPY_MIN")) g_copy_min = strtoull(min, nullptr, 10);
}

}  // namespace

extern "C" {

// allocs, frees, locks, copies, copy_bytes
__attribute__((visibility("default"))) void moat_bench_counters(uint64_t out[5]) {
  out[0] = g_counters->allocs.load();
  out[1] = g_counters->frees.load();
  out[2] = g_counters->locks.load();
  out[3] = g_counters->copies.load();
  out[4] = g_counters->copy_bytes.load();
}

void* malloc(size_t n) noexcept {
  Count(g_counters->allocs);
  return __libc_malloc(n);
}
void* calloc(size_t n, size_t m) noexcept {
  Count(g_counters->allocs);
  return __libc_calloc(n, m);
}
void* realloc(void* p, size_t n) noexcept {
  Count(g_counters->allocs);
  return __libc_realloc(p, n);
}
void free(void* p) noexcept {
  if (p != nullptr) Count(g_counters->frees);
  __libc_free(p);
}
void* memalign(size_t a, size_t n) noexcept {
  Count(g_counters->allocs);
  return __libc_memalign(a, n);
}
void* aligned_alloc(size_t a, size_t n) noexcept {
  Count(g_counters->allocs);
  return __libc_memalign(a, n);
}
int posix_memalign(void** out, size_t a, size_t n) noexcept {
  Count(g_counters->allocs);
  *out = __libc_memalign(a, n);
  return *out != nullptr ? 0 : 12;  // ENOMEM
}

int pthread_mutex_lock(pthread_mutex_t* m) noexcept {
  Count(g_counters->locks);
  return g_lock(m);
}
int pthread_mutex_trylock(pthread_mutex_t* m) noexcept {
  const int r = g_trylock(m);
  if (r == 0) Count(g_counters->locks);
  return r;
}

void* memcpy(void* d, const void* s, size_t n) noexcept {
  if (n >= g_copy_min) {
    Count(g_counters->copies);
    Count(g_counters->copy_bytes, n);
  }
  return g_memcpy != nullptr ? g_memcpy(d, s, n) : ByteCopy(d, s, n);
}
void* memmove(void* d, const void* s, size_t n) noexcept {
  if (n >= g_copy_min) {
    Count(g_counters->copies);
    Count(g_counters->copy_bytes, n);
  }
  return g_memmove != nullptr ? g_memmove(d, s, n) : ByteCopy(d, s, n);
}

}  // extern "C"
