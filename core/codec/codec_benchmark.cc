// Codec throughput, measured against memcpy in the same binary:
//   bazel run -c opt //core/codec:codec_benchmark
// Target (MISSION): typed decode of a 1 MiB byte vector >= 0.5x memcpy.
#include <benchmark/benchmark.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/codec/codec.h"

namespace moat {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

struct Typical {
  uint32_t id;
  uint64_t sequence;
  int32_t delta;
  bool urgent;
  std::string name;
  std::vector<uint32_t> values;
};
MOAT_CODEC_STRUCT(Typical, id, sequence, delta, urgent, name, values)

void BM_Memcpy1MiB(benchmark::State& state) {
  std::vector<uint8_t> src(kMiB, 0x5A), dst(kMiB);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), kMiB);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kMiB));
}
BENCHMARK(BM_Memcpy1MiB);

// memcpy into a freshly allocated vector: what any owning decode must do.
void BM_AllocAndMemcpy1MiB(benchmark::State& state) {
  std::vector<uint8_t> src(kMiB, 0x5A);
  for (auto _ : state) {
    std::vector<uint8_t> dst(src.begin(), src.end());
    benchmark::DoNotOptimize(dst.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kMiB));
}
BENCHMARK(BM_AllocAndMemcpy1MiB);

void BM_DecodeBytes1MiB(benchmark::State& state) {
  Result<EncodedMessage> msg = EncodeMessage(std::vector<uint8_t>(kMiB, 0x5A));
  for (auto _ : state) {
    Result<std::vector<uint8_t>> v = DecodeMessage<std::vector<uint8_t>>(msg->bytes);
    benchmark::DoNotOptimize(v->data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kMiB));
}
BENCHMARK(BM_DecodeBytes1MiB);

void BM_DecodeString1MiB(benchmark::State& state) {  // includes UTF-8 validation
  Result<EncodedMessage> msg = EncodeMessage(std::string(kMiB, 'a'));
  for (auto _ : state) {
    Result<std::string> v = DecodeMessage<std::string>(msg->bytes);
    benchmark::DoNotOptimize(v->data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kMiB));
}
BENCHMARK(BM_DecodeString1MiB);

Typical MakeTypical() { return Typical{7, 123456789, -42, true, "window.resize", {1, 2, 3, 4, 5, 6, 7, 8}}; }

void BM_DecodeTypical(benchmark::State& state) {
  Result<EncodedMessage> msg = EncodeMessage(MakeTypical());
  for (auto _ : state) {
    Result<Typical> v = DecodeMessage<Typical>(msg->bytes);
    benchmark::DoNotOptimize(v->id);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * msg->bytes.size()));
}
BENCHMARK(BM_DecodeTypical);

void BM_EncodeTypical(benchmark::State& state) {
  const Typical t = MakeTypical();
  for (auto _ : state) {
    Encoder e;
    e.Encode(t);
    benchmark::DoNotOptimize(e.bytes().data());
  }
}
BENCHMARK(BM_EncodeTypical);

}  // namespace
}  // namespace moat

BENCHMARK_MAIN();
