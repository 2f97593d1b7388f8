#include "core/codec/codec.h"

#include <string>

namespace moat {
namespace codec_internal {

std::string IndexField(size_t index) { return "[" + std::to_string(index) + "]"; }

Status CheckElementsFit(Decoder& d, uint32_t count, size_t min_element_size, std::string_view what) {
  const Checked<size_t> need = Checked<size_t>(count) * Checked<size_t>(min_element_size);
  // Attack: element count x element size chosen to wrap around size_t so a
  // bound check passes on the wrapped value.
  MOAT_REQUIRE(!need.has_overflow(), ErrorCode::kLimitExceeded, what, " of ", count,
               " elements of at least ", min_element_size, " bytes overflows size_t");
  // Attack: a 20-byte message claiming 64M elements, to make us reserve
  // gigabytes before the first element fails to decode.
  MOAT_REQUIRE(need.value() <= d.remaining(), ErrorCode::kIncomplete, what, " of ", count,
               " elements needs at least ", need.value(), " bytes, have ", d.remaining());
  return OkStatus();
}

}  // namespace codec_internal

void Codec<UniqueFd>::Encode(Encoder& e, const UniqueFd& fd) {
  MOAT_ASSERT(fd.valid(), "encoding an invalid descriptor (", fd.get(), ")");
  Result<UniqueFd> dup = fd.Duplicate();
  if (!dup.ok()) {
    e.SetOsError(std::move(dup).error());
    e.WriteU32(0);
    return;
  }
  e.WriteU32(e.AttachFd(std::move(*dup)));
}

}  // namespace moat
