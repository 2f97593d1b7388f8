// Seed-corpus registry: each unit registers functions that produce seed
// inputs for its fuzz targets from REAL encoder output, so seeds start deep
// inside the decoders instead of at random bytes.
//
//   MOAT_REGISTER_SEEDS(frame_header_fuzzer, [](moat::corpus::SeedSink& sink) {
//     sink.Add("message_with_2_fds", EncodeSomething());
//   });
//
// `bazel run //corpus:generate -- $PWD/corpus` rewrites corpus/<target>/seed-*;
// //corpus:corpus_fresh_test fails if the checked-in seeds differ from what the
// generator produces now (so they cannot go stale). Fixed-crash inputs are
// named crash-* and are never touched by the generator.
#ifndef MOAT_CORPUS_SEED_REGISTRY_H_
#define MOAT_CORPUS_SEED_REGISTRY_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace moat::corpus {

class SeedSink {
 public:
  void Add(std::string name, std::vector<uint8_t> bytes) { seeds_[std::move(name)] = std::move(bytes); }
  void Add(std::string name, std::string_view bytes) {
    seeds_[std::move(name)] = std::vector<uint8_t>(bytes.begin(), bytes.end());
  }
  const std::map<std::string, std::vector<uint8_t>>& seeds() const { return seeds_; }

 private:
  std::map<std::string, std::vector<uint8_t>> seeds_;
};

using SeedFunction = std::function<void(SeedSink&)>;

// target name -> generators (several units may seed one target).
std::map<std::string, std::vector<SeedFunction>>& SeedRegistry();

struct SeedRegistration {
  SeedRegistration(const char* target, SeedFunction fn) {
    SeedRegistry()[target].push_back(std::move(fn));
  }
};

}  // namespace moat::corpus

#define MOAT_SEED_CONCAT2(a, b) a##b
#define MOAT_SEED_CONCAT(a, b) MOAT_SEED_CONCAT2(a, b)
#define MOAT_REGISTER_SEEDS(target, fn)                                                  \
  static ::moat::corpus::SeedRegistration MOAT_SEED_CONCAT(moat_seed_registration_, \
                                                           __COUNTER__)(#target, fn)

#endif  // MOAT_CORPUS_SEED_REGISTRY_H_
