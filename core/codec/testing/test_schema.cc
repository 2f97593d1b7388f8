#include "core/codec/testing/test_schema.h"

#include <bit>

namespace moat::codec_testing {

bool RichEquals(const Rich& a, const Rich& b) {
  return a.u8 == b.u8 && a.u16 == b.u16 && a.u32 == b.u32 && a.u64 == b.u64 && a.i8 == b.i8 &&
         a.i16 == b.i16 && a.i32 == b.i32 && a.i64 == b.i64 && a.flag == b.flag &&
         a.f64_bits == b.f64_bits &&
         std::bit_cast<uint64_t>(a.f64) == std::bit_cast<uint64_t>(b.f64) && a.color == b.color &&
         a.wide == b.wide && a.text == b.text && a.blob == b.blob && a.numbers == b.numbers &&
         a.items == b.items && a.attributes == b.attributes && a.envelopes == b.envelopes &&
         a.maybe_item == b.maybe_item && a.maybe_maybe == b.maybe_maybe && a.choice == b.choice &&
         a.choices == b.choices && a.tree == b.tree;
}

Rich SampleRich() {
  Rich r;
  r.u8 = 0xAB;
  r.u16 = 0xBEEF;
  r.u32 = 0xDEADBEEF;
  r.u64 = 0x0123456789ABCDEFull;
  r.i8 = -8;
  r.i16 = -1600;
  r.i32 = -320000;
  r.i64 = -6400000000ll;
  r.flag = true;
  r.f64_bits = 0x7FF8000000000001ull;
  r.f64 = -2.5;
  r.color = Color::kBlue;
  r.wide = Wide::kNegative;
  r.text = "h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80";  // é, €, U+1F600
  r.blob = {0, 1, 2, 0xFF};
  r.numbers = {-1, 0, 1, 1 << 30};
  r.items = {{1, "one"}, {2, ""}, {3, "three"}};
  r.attributes = {{"alpha", 1}, {"beta", 2}, {"gamma", 3}};
  r.envelopes = {{7, Envelope{{{9, "nine"}}}}, {8, Envelope{}}};
  r.maybe_item = Item{4, "four"};
  r.maybe_maybe = std::optional<bool>(false);
  r.choice = Item{5, "five"};
  r.choices = {Choice(uint32_t{6}), Choice(std::string("six")), Choice(std::vector<Node>{Chain(2)})};
  r.tree = Node{1, {Chain(3), Node{2, {}}}};
  return r;
}

Node Chain(uint32_t depth) {
  Node root{depth, {}};
  Node* cur = &root;
  for (uint32_t i = 1; i < depth; ++i) {
    cur->children.push_back(Node{depth - i, {}});
    cur = &cur->children.back();
  }
  return root;
}

}  // namespace moat::codec_testing
