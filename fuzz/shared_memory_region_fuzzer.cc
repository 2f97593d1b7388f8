// Property: a received shared-memory region is accepted exactly when it is
// valid: the descriptor is a memfd carrying F_SEAL_SHRINK whose real size
// equals the declared size (R6). Accepted regions map and their last byte
// reads without SIGBUS; rejected ones are closed (no descriptor leak).
//
// Input (choices, from the end): kind (memfd with sealing / memfd without /
// pipe / /dev/null), real size, seal bits, declared-size mode and delta, and
// whether to send the descriptor at all.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <vector>

#include "core/codec/shared_memory.h"
#include "fuzz/fuzz_harness.h"

namespace {

using namespace moat;  // NOLINT

struct Candidate {
  UniqueFd fd;
  UniqueFd keep;  // the other end of a pipe
  bool shrink_sealed = false;
  uint64_t real_size = 0;
  bool is_memfd = false;
};

Candidate Make(moat::fuzz::Input& in) {
  Candidate c;
  const uint8_t kind = in.InRange<uint8_t>(0, 3);
  c.real_size = in.InRange<uint32_t>(0, 1 << 16);
  const uint8_t seal_bits = in.Integral<uint8_t>();
  if (kind <= 1) {
    c.fd.reset(::memfd_create("fuzz", MFD_CLOEXEC | (kind == 0 ? MFD_ALLOW_SEALING : 0)));
    MOAT_FUZZ_CHECK(c.fd.valid(), "memfd_create failed");
    MOAT_FUZZ_CHECK(::ftruncate(c.fd.get(), static_cast<off_t>(c.real_size)) == 0, "ftruncate failed");
    int seals = 0;
    if (seal_bits & 1) seals |= F_SEAL_SHRINK;
    if (seal_bits & 2) seals |= F_SEAL_GROW;
    if (seal_bits & 4) seals |= F_SEAL_WRITE;
    if (seal_bits & 8) seals |= F_SEAL_SEAL;
    if (seals != 0 && kind == 0) MOAT_FUZZ_CHECK(::fcntl(c.fd.get(), F_ADD_SEALS, seals) == 0, "F_ADD_SEALS failed");
    c.shrink_sealed = kind == 0 && (seals & F_SEAL_SHRINK) != 0;
    c.is_memfd = true;
  } else if (kind == 2) {
    int p[2];
    MOAT_FUZZ_CHECK(::pipe2(p, O_CLOEXEC) == 0, "pipe2 failed");
    c.fd.reset(p[0]);
    c.keep.reset(p[1]);
    c.real_size = 0;
  } else {
    c.fd.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    c.real_size = 0;
  }
  return c;
}

}  // namespace

MOAT_FUZZ_COVERS("shared_memory_region")
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moat::fuzz::Input in(data, size);
  Candidate c = Make(in);
  uint64_t declared = c.real_size;
  switch (in.InRange<uint8_t>(0, 3)) {
    case 0: break;
    case 1: declared += in.InRange<uint64_t>(1, 1 << 20); break;
    case 2: declared -= std::min<uint64_t>(declared, in.InRange<uint64_t>(1, 1 << 20)); break;
    default: declared = in.Integral<uint64_t>(); break;
  }
  const bool send_fd = in.InRange<uint8_t>(0, 7) != 0;
  const uint32_t slot = in.InRange<uint8_t>(0, 7) == 0 ? in.Integral<uint32_t>() : 0;

  Encoder e;
  e.WriteU64(declared);
  e.WriteU32(slot);
  std::vector<uint8_t> bytes = e.TakeBytes();
  std::vector<UniqueFd> fds;
  if (send_fd) fds.push_back(std::move(c.fd));

  Result<SharedMemoryRegion> region = DecodeMessage<SharedMemoryRegion>(bytes, fds);
  const bool valid = send_fd && slot == 0 && c.is_memfd && c.shrink_sealed && declared == c.real_size;
  MOAT_FUZZ_CHECK(region.ok() == valid, region.ok() ? "accepted an invalid region" : "rejected a valid region");
  if (region.ok()) {
    MOAT_FUZZ_CHECK(region->size() == declared, "region size differs from the declared size");
    Result<SharedMemoryMapping> map = region->Map(SharedMemoryRegion::Access::kReadOnly);
    MOAT_FUZZ_CHECK(map.ok(), "mapping an accepted region failed");
    if (map->size() > 0) {
      volatile uint8_t last = map->bytes()[map->size() - 1];  // SIGBUS if the size lied
      (void)last;
    }
  }
  return 0;
}
