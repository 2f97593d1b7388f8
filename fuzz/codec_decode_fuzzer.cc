// Property: decoding arbitrary bytes plus 0-3 real descriptors and 0-3
// handles as one of several rich nested schemas (every codec type, including
// a recursive one) never crashes, never leaks, and anything accepted
// re-encodes byte-identically with the same descriptor and handle counts
// (the encoding is canonical: one value, one byte string).
//
// Input layout (moat::fuzz::Input takes choices from the end):
//   [payload ...][handle count][fd count][schema selector]
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/codec/codec.h"
#include "core/codec/testing/test_schema.h"
#include "fuzz/fuzz_harness.h"

namespace {

using namespace moat;  // NOLINT
using namespace moat::codec_testing;  // NOLINT

int DevNull() {
  static const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  return fd;
}

template <typename T>
void DecodeAndCheck(std::span<const uint8_t> payload, size_t fd_count, size_t handle_count) {
  std::vector<UniqueFd> fds;
  for (size_t i = 0; i < fd_count; ++i) fds.emplace_back(::fcntl(DevNull(), F_DUPFD_CLOEXEC, 0));
  std::vector<uint64_t> handles;
  for (size_t i = 0; i < handle_count; ++i) handles.push_back(1000 + i);

  Result<T> value = DecodeMessage<T>(payload, fds, handles);
  if (!value.ok()) {
    MOAT_FUZZ_CHECK(!value.error().reason().empty(), "an error without a reason");
    return;
  }
  Result<EncodedMessage> again = EncodeMessage(*value);
  MOAT_FUZZ_CHECK(again.ok(), "re-encoding an accepted value failed");
  MOAT_FUZZ_CHECK(again->bytes.size() == payload.size() &&
                      std::equal(payload.begin(), payload.end(), again->bytes.begin()),
                  "accepted input does not re-encode byte-identically");
  MOAT_FUZZ_CHECK(again->fds.size() == fd_count, "descriptor count changed in the round trip");
  MOAT_FUZZ_CHECK(again->handles == handles, "handles changed in the round trip");
}

}  // namespace

MOAT_FUZZ_COVERS("codec_size", "codec_value")
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moat::fuzz::Input in(data, size);
  const uint8_t selector = in.Integral<uint8_t>();
  const size_t fd_count = in.Integral<uint8_t>() % 4;
  const size_t handle_count = in.Integral<uint8_t>() % 4;
  const std::span<const uint8_t> payload = in.BytesView(in.remaining());
  switch (selector % 6) {
    case 0: DecodeAndCheck<Carrier>(payload, fd_count, handle_count); break;
    case 1: DecodeAndCheck<Rich>(payload, fd_count, handle_count); break;
    case 2: DecodeAndCheck<Envelope>(payload, fd_count, handle_count); break;
    case 3: DecodeAndCheck<Node>(payload, fd_count, handle_count); break;
    case 4: DecodeAndCheck<std::map<std::string, std::vector<Choice>>>(payload, fd_count, handle_count); break;
    default: DecodeAndCheck<std::vector<std::optional<Choice>>>(payload, fd_count, handle_count); break;
  }
  return 0;
}
