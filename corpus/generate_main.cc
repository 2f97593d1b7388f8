// Writes every registered seed to OUT_DIR/<target>/seed-<name>.
//   bazel run //corpus:generate -- $PWD/corpus
// With --list, prints "<target>/seed-<name>" lines instead (used by the
// freshness test to find stale files).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "corpus/seed_registry.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: generate OUT_DIR | --list\n");
    return 2;
  }
  const std::string arg = argv[1];
  size_t written = 0;
  for (const auto& [target, functions] : moat::corpus::SeedRegistry()) {
    moat::corpus::SeedSink sink;
    for (const auto& fn : functions) fn(sink);
    for (const auto& [name, bytes] : sink.seeds()) {
      if (arg == "--list") {
        std::printf("%s/seed-%s\n", target.c_str(), name.c_str());
        continue;
      }
      std::filesystem::path dir = std::filesystem::path(arg) / target;
      std::filesystem::create_directories(dir);
      std::ofstream out(dir / ("seed-" + name), std::ios::binary | std::ios::trunc);
      out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
      ++written;
    }
  }
  if (arg != "--list") std::fprintf(stderr, "wrote %zu seeds under %s\n", written, arg.c_str());
  return 0;
}
