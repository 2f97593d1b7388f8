// A rich nested schema exercising every codec type, shared by the codec
// tests, fuzz targets (fuzz/codec_*_fuzzer.cc), seeds and benchmark.
//
//   moat::codec_testing::Rich r = moat::codec_testing::SampleRich();
//   auto msg = moat::EncodeMessage(r);
#ifndef MOAT_CORE_CODEC_TESTING_TEST_SCHEMA_H_
#define MOAT_CORE_CODEC_TESTING_TEST_SCHEMA_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/codec/codec.h"

namespace moat::codec_testing {

enum class Color : uint8_t { kRed = 1, kGreen = 2, kBlue = 7 };
MOAT_CODEC_ENUM(Color, kRed, kGreen, kBlue)

enum class Wide : int32_t { kNegative = -5, kZero = 0, kLarge = 1 << 30 };
MOAT_CODEC_ENUM(Wide, kNegative, kZero, kLarge)

struct Item {
  uint16_t id = 0;
  std::string name;
  bool operator==(const Item&) const = default;
};
MOAT_CODEC_STRUCT(Item, id, name)

struct Envelope {
  std::vector<Item> items;
  bool operator==(const Envelope&) const = default;
};
MOAT_CODEC_STRUCT(Envelope, items)

// Recursive: depth is bounded only by MAX_DECODE_DEPTH.
struct Node {
  uint32_t value = 0;
  std::vector<Node> children;
  bool operator==(const Node&) const = default;
};
MOAT_CODEC_STRUCT(Node, value, children)

using Choice = std::variant<uint32_t, std::string, Item, std::vector<Node>>;

struct Rich {
  uint8_t u8 = 0;
  uint16_t u16 = 0;
  uint32_t u32 = 0;
  uint64_t u64 = 0;
  int8_t i8 = 0;
  int16_t i16 = 0;
  int32_t i32 = 0;
  int64_t i64 = 0;
  bool flag = false;
  uint64_t f64_bits = 0;  // doubles compared by bit pattern (NaN != NaN)
  double f64 = 0;
  Color color = Color::kRed;
  Wide wide = Wide::kZero;
  std::string text;
  std::vector<uint8_t> blob;
  std::vector<int32_t> numbers;
  std::vector<Item> items;
  std::map<std::string, uint32_t> attributes;
  std::map<uint16_t, Envelope> envelopes;
  std::optional<Item> maybe_item;
  std::optional<std::optional<bool>> maybe_maybe;
  Choice choice;
  std::vector<Choice> choices;
  Node tree;
};
MOAT_CODEC_STRUCT(Rich, u8, u16, u32, u64, i8, i16, i32, i64, flag, f64_bits, f64, color, wide,
                  text, blob, numbers, items, attributes, envelopes, maybe_item, maybe_maybe,
                  choice, choices, tree)

// Equality with doubles compared bit-for-bit.
bool RichEquals(const Rich& a, const Rich& b);

// Out-of-band values ride along with a Rich.
struct Carrier {
  Rich rich;
  std::vector<UniqueFd> fds;
  std::vector<MessagePipeHandleSlot> handles;
  std::optional<UniqueFd> maybe_fd;
};
MOAT_CODEC_STRUCT(Carrier, rich, fds, handles, maybe_fd)

// A deterministic, fully populated Rich (every field non-default).
Rich SampleRich();
// A chain of `depth` nested Nodes (depth 1 = a leaf).
Node Chain(uint32_t depth);

}  // namespace moat::codec_testing

#endif  // MOAT_CORE_CODEC_TESTING_TEST_SCHEMA_H_
