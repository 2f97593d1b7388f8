// Property: any value of the rich schema built from fuzzer choices encodes,
// decodes back to an equal value (doubles compared bit-for-bit), and
// re-encodes to the same bytes; every strict prefix of the encoding is
// rejected as kIncomplete. Differential by construction: the value built
// here is the oracle.
//
// Bounded work per input (R25 speed). Every container element
// (node, item, map entry, choice, number) and code point is paid for from a
// budget that grows with the input length and is capped, so a value never
// outgrows its input and the work per input is bounded; the schema's shape
// (every field type, depth 4 trees, every variant alternative, per-container
// sizes) is unchanged.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/codec/codec.h"
#include "core/codec/testing/test_schema.h"
#include "fuzz/fuzz_harness.h"

namespace {

using namespace moat;  // NOLINT
using namespace moat::codec_testing;  // NOLINT
using moat::fuzz::Input;

// Elements (container elements and code points) per value: at most one per 4
// input bytes, and never more than kMaxElements, so the cost of one run stays
// flat as libFuzzer grows inputs towards 4 KiB (unbounded, such an input built
// a 121-node tree plus dozens of strings and items).
constexpr size_t kBytesPerElement = 4;
constexpr size_t kMaxElements = 24;
// Code points per string; each also costs one element.
constexpr size_t kMaxCodePoints = 12;

class Builder {
 public:
  explicit Builder(Input& in) : in_(in), budget_(std::min(kMaxElements, in.remaining() / kBytesPerElement)) {}

  Rich MakeRich() {
    Rich r;
    r.u8 = in_.Integral<uint8_t>();
    r.u16 = in_.Integral<uint16_t>();
    r.u32 = in_.Integral<uint32_t>();
    r.u64 = in_.Integral<uint64_t>();
    r.i8 = in_.Integral<int8_t>();
    r.i16 = in_.Integral<int16_t>();
    r.i32 = in_.Integral<int32_t>();
    r.i64 = in_.Integral<int64_t>();
    r.flag = in_.Bool();
    r.f64_bits = in_.Integral<uint64_t>();
    r.f64 = std::bit_cast<double>(in_.Integral<uint64_t>());
    constexpr Color kColors[] = {Color::kRed, Color::kGreen, Color::kBlue};
    r.color = kColors[in_.InRange<uint8_t>(0, 2)];
    constexpr Wide kWides[] = {Wide::kNegative, Wide::kZero, Wide::kLarge};
    r.wide = kWides[in_.InRange<uint8_t>(0, 2)];
    r.text = Text();
    r.blob = in_.Bytes(in_.InRange<size_t>(0, 16));
    for (size_t n = in_.InRange<size_t>(0, 6); n > 0 && More(); --n) r.numbers.push_back(in_.Integral<int32_t>());
    for (size_t n = in_.InRange<size_t>(0, 4); n > 0 && More(); --n) r.items.push_back(MakeItem());
    for (size_t n = in_.InRange<size_t>(0, 4); n > 0 && More(); --n) r.attributes[Text()] = in_.Integral<uint32_t>();
    for (size_t n = in_.InRange<size_t>(0, 3); n > 0 && More(); --n) {
      Envelope& e = r.envelopes[in_.Integral<uint16_t>()];
      for (size_t k = in_.InRange<size_t>(0, 2); k > 0 && More(); --k) e.items.push_back(MakeItem());
    }
    if (in_.Bool()) r.maybe_item = MakeItem();
    switch (in_.InRange<uint8_t>(0, 2)) {
      case 0: break;
      case 1: r.maybe_maybe = std::optional<bool>(); break;
      default: r.maybe_maybe = std::optional<bool>(in_.Bool()); break;
    }
    r.choice = MakeChoice();
    for (size_t n = in_.InRange<size_t>(0, 3); n > 0 && More(); --n) r.choices.push_back(MakeChoice());
    r.tree = MakeNode(4);
    return r;
  }

 private:
  // Pays for one more container element; false once the budget or the input is spent.
  bool More() {
    if (budget_ == 0 || in_.empty()) return false;
    --budget_;
    return true;
  }

  // Appends one valid code point as UTF-8, from every length class.
  void AppendCodePoint(std::string& out) {
    uint32_t cp;
    switch (in_.InRange<uint8_t>(0, 3)) {
      case 0: cp = in_.InRange<uint32_t>(0, 0x7F); break;
      case 1: cp = in_.InRange<uint32_t>(0x80, 0x7FF); break;
      case 2:
        cp = in_.InRange<uint32_t>(0x800, 0xFFFF - 0x800);
        if (cp >= 0xD800) cp += 0x800;  // skip surrogates
        break;
      default: cp = in_.InRange<uint32_t>(0x10000, 0x10FFFF); break;
    }
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  std::string Text() {
    std::string s;
    for (size_t n = in_.InRange<size_t>(0, kMaxCodePoints); n > 0 && More(); --n) AppendCodePoint(s);
    return s;
  }

  Item MakeItem() { return Item{in_.Integral<uint16_t>(), Text()}; }

  Node MakeNode(int depth) {
    Node n{in_.Integral<uint32_t>(), {}};
    if (depth > 0) {
      for (size_t k = in_.InRange<size_t>(0, 3); k > 0 && More(); --k) n.children.push_back(MakeNode(depth - 1));
    }
    return n;
  }

  Choice MakeChoice() {
    switch (in_.InRange<uint8_t>(0, 3)) {
      case 0: return Choice(in_.Integral<uint32_t>());
      case 1: return Choice(Text());
      case 2: return Choice(MakeItem());
      default: {
        std::vector<Node> nodes;
        for (size_t k = in_.InRange<size_t>(0, 2); k > 0 && More(); --k) nodes.push_back(MakeNode(2));
        return Choice(std::move(nodes));
      }
    }
  }

  Input& in_;
  size_t budget_;
};

}  // namespace

MOAT_FUZZ_COVERS("codec_value")
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(data, size);
  const Rich value = Builder(in).MakeRich();
  Result<EncodedMessage> msg = EncodeMessage(value);
  MOAT_FUZZ_CHECK(msg.ok(), "encoding failed");
  Result<Rich> back = DecodeMessage<Rich>(msg->bytes);
  MOAT_FUZZ_CHECK(back.ok(), back.ok() ? "" : back.error().ToString().c_str());
  MOAT_FUZZ_CHECK(RichEquals(value, *back), "decoded value differs from the encoded one");
  Result<EncodedMessage> again = EncodeMessage(*back);
  MOAT_FUZZ_CHECK(again.ok() && again->bytes == msg->bytes, "re-encoding changed the bytes");
  // A prefix chosen by the fuzzer must be rejected as incomplete.
  const size_t cut = static_cast<size_t>(value.u64 % msg->bytes.size());
  Result<Rich> prefix = DecodeMessage<Rich>(std::span<const uint8_t>(msg->bytes.data(), cut));
  MOAT_FUZZ_CHECK(!prefix.ok() && prefix.error().code() == ErrorCode::kIncomplete,
                  "a strict prefix was not rejected as incomplete");
  return 0;
}
