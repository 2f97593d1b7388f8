// SHA-1 of a byte string as 40 lowercase hex digits: the name libFuzzer gives
// corpus entries and artifacts, which `moat fuzz` reuses for min-<sha1> and
// crash-<sha1> files so names are stable and duplicates collapse.
//
//   std::string name = "crash-" + moat::tools::fuzz::Sha1Hex(bytes);
//
// Used for naming only, never for security.
#ifndef MOAT_TOOLS_FUZZ_SHA1_H_
#define MOAT_TOOLS_FUZZ_SHA1_H_

#include <string>
#include <string_view>

namespace moat::tools::fuzz {

std::string Sha1Hex(std::string_view bytes);

}  // namespace moat::tools::fuzz

#endif  // MOAT_TOOLS_FUZZ_SHA1_H_
