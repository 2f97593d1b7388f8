// Seeds for the codec fuzz targets, from real Encoder output.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/codec/codec.h"
#include "core/codec/testing/test_schema.h"
#include "corpus/seed_registry.h"

namespace {

using namespace moat;  // NOLINT
using namespace moat::codec_testing;  // NOLINT

// codec_decode_fuzzer input: payload, then handle count, fd count, selector
// (moat::fuzz::Input reads choices from the end).
template <typename T>
std::vector<uint8_t> DecodeSeed(const T& value, uint8_t selector) {
  Result<EncodedMessage> m = EncodeMessage(value);
  MOAT_ASSERT(m.ok(), "seed encoding failed");
  std::vector<uint8_t> out = std::move(m->bytes);
  out.push_back(static_cast<uint8_t>(m->handles.size()));
  out.push_back(static_cast<uint8_t>(m->fds.size()));
  out.push_back(selector);
  return out;
}

// Choices in the order the fuzzer consumes them, laid out back to front.
class Choices {
 public:
  Choices& U8(uint8_t v) {
    order_.push_back(v);
    return *this;
  }
  template <typename T>
  Choices& Int(T v) {  // most significant byte is consumed first
    for (int i = sizeof(T) - 1; i >= 0; --i) order_.push_back(static_cast<uint8_t>(static_cast<uint64_t>(v) >> (8 * i)));
    return *this;
  }
  std::vector<uint8_t> bytes() const { return {order_.rbegin(), order_.rend()}; }

 private:
  std::vector<uint8_t> order_;
};

void DecodeSeeds(moat::corpus::SeedSink& sink) {
  Carrier carrier;
  carrier.rich = SampleRich();
  carrier.fds.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  carrier.fds.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  carrier.handles.push_back(MessagePipeHandleSlot{42});
  sink.Add("carrier_2fds_1handle", DecodeSeed(carrier, 0));
  carrier.maybe_fd.emplace(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  sink.Add("carrier_3fds", DecodeSeed(carrier, 0));
  sink.Add("rich_sample", DecodeSeed(SampleRich(), 1));
  sink.Add("rich_default", DecodeSeed(Rich{}, 1));
  sink.Add("envelope", DecodeSeed(Envelope{{Item{1, "one"}, Item{2, "\xE2\x82\xAC"}, Item{3, ""}}}, 2));
  sink.Add("node_chain_32", DecodeSeed(Chain(32), 3));
  sink.Add("node_tree", DecodeSeed(SampleRich().tree, 3));
  std::map<std::string, std::vector<Choice>> m = {
      {"a", {Choice(uint32_t{1}), Choice(std::string("x"))}},
      {"b", {Choice(Item{7, "seven"}), Choice(std::vector<Node>{Chain(2)})}},
  };
  sink.Add("map_of_choices", DecodeSeed(m, 4));
  std::vector<std::optional<Choice>> v = {std::nullopt, Choice(uint32_t{5}), Choice(std::string("\xF0\x9F\x98\x80"))};
  sink.Add("optional_choices", DecodeSeed(v, 5));
}

// codec_<group>_roundtrip_fuzzer input: bulk bytes at the front (strings,
// bytes and, read from the back, the value's own choices), then the first
// choices: the kind of value to round-trip (see Kind in
// fuzz/codec_<group>_roundtrip_fuzzer.cc) and the prefix cut (u16). One seed
// per kind, so every type starts covered.
std::vector<uint8_t> RoundTripSeed(std::vector<uint8_t> bulk, uint8_t kind, uint16_t cut) {
  std::vector<uint8_t> choices = Choices().U8(kind).Int<uint16_t>(cut).bytes();
  bulk.insert(bulk.end(), choices.begin(), choices.end());
  return bulk;
}

void KindSeeds(moat::corpus::SeedSink& sink, uint8_t kinds, size_t bulk_size) {
  for (uint8_t kind = 0; kind < kinds; ++kind) {
    std::vector<uint8_t> ramp(bulk_size);
    for (size_t i = 0; i < ramp.size(); ++i) ramp[i] = static_cast<uint8_t>(i * 37 + kind);
    sink.Add("kind_" + std::to_string(kind), RoundTripSeed(std::move(ramp), kind, static_cast<uint16_t>(kind * 7 + 3)));
  }
  sink.Add("all_ff", std::vector<uint8_t>(256, 0xFF));
}

void ScalarRoundTripSeeds(moat::corpus::SeedSink& sink) { KindSeeds(sink, 14, 96); }
void ContainerRoundTripSeeds(moat::corpus::SeedSink& sink) { KindSeeds(sink, 10, 96); }
void StructRoundTripSeeds(moat::corpus::SeedSink& sink) {
  constexpr uint8_t kRich = 2;  // Kind::kRich in fuzz/codec_struct_roundtrip_fuzzer.cc
  KindSeeds(sink, 3, 512);
  Result<EncodedMessage> rich = EncodeMessage(SampleRich());
  MOAT_ASSERT(rich.ok(), "seed encoding failed");
  sink.Add("rich_from_sample_bytes", RoundTripSeed(rich->bytes, kRich, 1000));
}

void SharedMemorySeeds(moat::corpus::SeedSink& sink) {
  // kind, real size (u32), seal bits, declared mode [, delta u64], send fd, slot mode.
  sink.Add("valid_sealed", Choices().U8(0).Int<uint32_t>(4096).U8(0x0F).U8(0).U8(1).U8(1).bytes());
  sink.Add("valid_empty", Choices().U8(0).Int<uint32_t>(0).U8(0x01).U8(0).U8(1).U8(1).bytes());
  sink.Add("no_shrink_seal", Choices().U8(0).Int<uint32_t>(4096).U8(0x02).U8(0).U8(1).U8(1).bytes());
  sink.Add("not_sealable", Choices().U8(1).Int<uint32_t>(4096).U8(0x01).U8(0).U8(1).U8(1).bytes());
  sink.Add("declared_larger",
           Choices().U8(0).Int<uint32_t>(4096).U8(0x01).U8(1).Int<uint64_t>(4096).U8(1).U8(1).bytes());
  sink.Add("declared_smaller",
           Choices().U8(0).Int<uint32_t>(4096).U8(0x01).U8(2).Int<uint64_t>(1).U8(1).U8(1).bytes());
  sink.Add("declared_huge",
           Choices().U8(0).Int<uint32_t>(4096).U8(0x01).U8(3).Int<uint64_t>(~0ull).U8(1).U8(1).bytes());
  sink.Add("pipe", Choices().U8(2).Int<uint32_t>(0).U8(0).U8(0).U8(1).U8(1).bytes());
  sink.Add("dev_null", Choices().U8(3).Int<uint32_t>(0).U8(0).U8(0).U8(1).U8(1).bytes());
  sink.Add("no_fd", Choices().U8(0).Int<uint32_t>(4096).U8(0x01).U8(0).U8(0).U8(1).bytes());
  sink.Add("wrong_slot",
           Choices().U8(0).Int<uint32_t>(4096).U8(0x01).U8(0).U8(1).U8(0).Int<uint32_t>(3).bytes());
}

MOAT_REGISTER_SEEDS(codec_decode_fuzzer, DecodeSeeds);
MOAT_REGISTER_SEEDS(codec_scalar_roundtrip_fuzzer, ScalarRoundTripSeeds);
MOAT_REGISTER_SEEDS(codec_container_roundtrip_fuzzer, ContainerRoundTripSeeds);
MOAT_REGISTER_SEEDS(codec_struct_roundtrip_fuzzer, StructRoundTripSeeds);
MOAT_REGISTER_SEEDS(shared_memory_region_fuzzer, SharedMemorySeeds);

}  // namespace
