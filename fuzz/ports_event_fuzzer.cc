// Property: DeserializeEvent never crashes, leaks or over-allocates on
// arbitrary bytes and descriptors, and every event it accepts re-serializes
// to exactly the same bytes with the same number of descriptors (one
// canonical encoding per event).
#include <fcntl.h>

#include <vector>

#include "core/ports/event_codec.h"
#include "fuzz/fuzz_harness.h"

MOAT_FUZZ_COVERS("ports_event")
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moat::fuzz::Input in(data, size);
  const int fd_count = in.InRange<uint8_t>(0, 3);  // the last byte
  std::vector<moat::UniqueFd> fds;
  for (int i = 0; i < fd_count; ++i) fds.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  std::vector<uint8_t> bytes = in.RemainingBytes();
  auto event = moat::ports::DeserializeEvent(bytes, fds);
  if (!event.ok()) return 0;
  std::vector<moat::UniqueFd> out_fds;
  std::vector<uint8_t> again = moat::ports::SerializeEvent(**event, &out_fds);
  MOAT_FUZZ_CHECK(again == bytes, "accepted event does not re-serialize identically");
  MOAT_FUZZ_CHECK(out_fds.size() == static_cast<size_t>(fd_count),
                  "accepted event did not use exactly the descriptors it was given");
  return 0;
}
