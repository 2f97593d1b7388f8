// A plain main() for libFuzzer-API targets: feeds every file under the given
// paths (files or directories, recursively, in sorted order) to
// LLVMFuzzerTestOneInput once. This is how `bazel test` replays corpora as
// regression tests and how a crash input is reproduced without any engine:
//
//   bazel-bin/fuzz/frame_header_fuzzer corpus/frame_header_fuzzer/crash-1234
//
// Fails if no input was found, so an empty or misnamed corpus is noticed.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);

namespace {

std::vector<std::filesystem::path> CollectInputs(const char* arg) {
  namespace fs = std::filesystem;
  std::vector<fs::path> out;
  fs::path root(arg);
  if (fs::is_directory(root)) {
    for (const auto& entry : fs::recursive_directory_iterator(root)) {
      if (entry.is_regular_file()) out.push_back(entry.path());
    }
  } else if (fs::is_regular_file(root)) {
    out.push_back(root);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  size_t replayed = 0;
  for (int i = 1; i < argc; ++i) {
    if (argv[i][0] == '-') continue;  // tolerate engine flags
    for (const auto& path : CollectInputs(argv[i])) {
      std::ifstream file(path, std::ios::binary);
      std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(file)),
                                 std::istreambuf_iterator<char>());
      // Copy into an exact-size heap block so ASan catches reads past the end.
      auto* exact = new uint8_t[bytes.size() ? bytes.size() : 1];
      std::copy(bytes.begin(), bytes.end(), exact);
      LLVMFuzzerTestOneInput(exact, bytes.size());
      delete[] exact;
      ++replayed;
    }
  }
  std::fprintf(stderr, "replayed %zu inputs\n", replayed);
  if (replayed == 0) {
    std::fprintf(stderr, "error: no inputs found (empty or missing corpus)\n");
    return 1;
  }
  return 0;
}
