// ValueBuilder and CheckRoundTrip: the shared half of the codec round-trip
// fuzzers (codec_scalar_, codec_container_ and codec_struct_roundtrip_fuzzer).
//
// Each target round-trips one group of the rich test schema's types. The
// split is for speed (R25): a run of one target touches only its group's
// template code, so libFuzzer's per-run feature bookkeeping (entropic
// scheduling, which cost 65-78% of the cycles when one target held all 27
// types) stays small.
//
//   extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
//     return moat::fuzz::RunRoundTrip(data, size, kKindCount,
//         [](Kind kind, uint16_t cut, moat::fuzz::ValueBuilder& b) {
//           if (kind == kItems) moat::fuzz::CheckRoundTrip(b.Items(), cut);
//         });
//   }
//
// The property checked (the same in every target): a value built from fuzzer
// choices encodes, decodes back to an equal value (doubles compared
// bit-for-bit), and re-encodes to the same bytes; the strict prefix of the
// encoding that the fuzzer picks is rejected as kIncomplete. Differential by
// construction: the value built here is the oracle.
//
// Bounded work per input (R25 speed): every container element (node, item,
// map entry, choice, number) and code point is paid for from a budget that
// grows with the input length and is capped, so a value never outgrows its
// input; the schema's shape (every field type, depth 4 trees, every variant
// alternative, per-container sizes) is unchanged.
#ifndef MOAT_FUZZ_INTERNAL_CODEC_VALUE_BUILDER_H_
#define MOAT_FUZZ_INTERNAL_CODEC_VALUE_BUILDER_H_

#include <algorithm>
#include <bit>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "core/codec/codec.h"
#include "core/codec/testing/test_schema.h"
#include "core/codec/utf8.h"
#include "fuzz/fuzz_harness.h"

namespace moat::fuzz {

using codec_testing::Choice;
using codec_testing::Color;
using codec_testing::Envelope;
using codec_testing::Item;
using codec_testing::Node;
using codec_testing::Rich;
using codec_testing::RichEquals;
using codec_testing::Wide;

// A descriptor-free subset of Rich: one field of each scalar kind plus a
// string, a nested optional and the variant, in one struct. Only the struct
// target uses it, so it lives here rather than in the codec's test schema.
struct Subset {
  uint64_t u64 = 0;
  int16_t i16 = 0;
  bool flag = false;
  double f64 = 0;
  Wide wide = Wide::kZero;
  std::string text;
  std::optional<std::optional<bool>> maybe_maybe;
  Choice choice;
};
MOAT_CODEC_STRUCT(Subset, u64, i16, flag, f64, wide, text, maybe_maybe, choice)

// Elements (container elements and code points) per value: at most one per 4
// input bytes, and never more than kMaxElements, so the cost of one run stays
// flat as libFuzzer grows inputs towards 4 KiB (unbounded, such an input built
// a 121-node tree plus dozens of strings and items).
constexpr size_t kBytesPerElement = 4;
constexpr size_t kMaxElements = 24;
// Code points per string; each also costs one element.
constexpr size_t kMaxCodePoints = 12;

// The value generator is the oracle, not the code under test: its own
// branches and loop counts would only add coverage features that every run
// pays for in libFuzzer's feature bookkeeping, without guiding it anywhere the
// codec's coverage does not.
#define MOAT_FUZZ_NO_COVERAGE __attribute__((no_sanitize("coverage")))

class ValueBuilder {
 public:
  explicit ValueBuilder(Input& in) : in_(in), budget_(std::min(kMaxElements, in.remaining() / kBytesPerElement)) {}

  template <typename T>
  MOAT_FUZZ_NO_COVERAGE T Integer() {
    return in_.Integral<T>();
  }
  MOAT_FUZZ_NO_COVERAGE bool Bool() { return in_.Bool(); }
  MOAT_FUZZ_NO_COVERAGE double Double() { return std::bit_cast<double>(in_.Integral<uint64_t>()); }
  MOAT_FUZZ_NO_COVERAGE Color MakeColor() {
    constexpr Color kColors[] = {Color::kRed, Color::kGreen, Color::kBlue};
    return kColors[in_.InRange<uint8_t>(0, 2)];
  }
  MOAT_FUZZ_NO_COVERAGE Wide MakeWide() {
    constexpr Wide kWides[] = {Wide::kNegative, Wide::kZero, Wide::kLarge};
    return kWides[in_.InRange<uint8_t>(0, 2)];
  }
  MOAT_FUZZ_NO_COVERAGE std::vector<uint8_t> Blob() { return in_.Bytes(in_.InRange<size_t>(0, 16)); }
  MOAT_FUZZ_NO_COVERAGE std::vector<int32_t> Numbers() {
    std::vector<int32_t> v;
    for (size_t n = in_.InRange<size_t>(0, 6); n > 0 && More(); --n) v.push_back(in_.Integral<int32_t>());
    return v;
  }
  MOAT_FUZZ_NO_COVERAGE std::vector<Item> Items() {
    std::vector<Item> v;
    for (size_t n = in_.InRange<size_t>(0, 4); n > 0 && More(); --n) v.push_back(MakeItem());
    return v;
  }
  MOAT_FUZZ_NO_COVERAGE std::map<std::string, uint32_t> Attributes() {
    std::map<std::string, uint32_t> m;
    for (size_t n = in_.InRange<size_t>(0, 4); n > 0 && More(); --n) m[Text()] = in_.Integral<uint32_t>();
    return m;
  }
  MOAT_FUZZ_NO_COVERAGE std::map<uint16_t, Envelope> Envelopes() {
    std::map<uint16_t, Envelope> m;
    for (size_t n = in_.InRange<size_t>(0, 3); n > 0 && More(); --n) {
      Envelope& e = m[in_.Integral<uint16_t>()];
      for (size_t k = in_.InRange<size_t>(0, 2); k > 0 && More(); --k) e.items.push_back(MakeItem());
    }
    return m;
  }
  MOAT_FUZZ_NO_COVERAGE Envelope MakeEnvelope() {
    Envelope e;
    for (size_t k = in_.InRange<size_t>(0, 4); k > 0 && More(); --k) e.items.push_back(MakeItem());
    return e;
  }
  MOAT_FUZZ_NO_COVERAGE std::optional<Item> MaybeItem() {
    if (in_.Bool()) return MakeItem();
    return std::nullopt;
  }
  MOAT_FUZZ_NO_COVERAGE std::optional<std::optional<bool>> MaybeMaybe() {
    switch (in_.InRange<uint8_t>(0, 2)) {
      case 0: return std::nullopt;
      case 1: return std::optional<bool>();
      default: return std::optional<bool>(in_.Bool());
    }
  }
  MOAT_FUZZ_NO_COVERAGE std::vector<Choice> Choices() {
    std::vector<Choice> v;
    for (size_t n = in_.InRange<size_t>(0, 3); n > 0 && More(); --n) v.push_back(MakeChoice());
    return v;
  }

  MOAT_FUZZ_NO_COVERAGE Subset MakeSubset() {
    Subset v;
    v.u64 = in_.Integral<uint64_t>();
    v.i16 = in_.Integral<int16_t>();
    v.flag = in_.Bool();
    v.f64 = Double();
    v.wide = MakeWide();
    v.text = Text();
    v.maybe_maybe = MaybeMaybe();
    v.choice = MakeChoice();
    return v;
  }

  MOAT_FUZZ_NO_COVERAGE Rich MakeRich() {
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
    r.f64 = Double();
    r.color = MakeColor();
    r.wide = MakeWide();
    r.text = Text();
    r.blob = Blob();
    r.numbers = Numbers();
    r.items = Items();
    r.attributes = Attributes();
    r.envelopes = Envelopes();
    r.maybe_item = MaybeItem();
    r.maybe_maybe = MaybeMaybe();
    r.choice = MakeChoice();
    r.choices = Choices();
    r.tree = MakeNode(4);
    return r;
  }

  MOAT_FUZZ_NO_COVERAGE std::string Text() {
    std::string s;
    for (size_t n = in_.InRange<size_t>(0, kMaxCodePoints); n > 0 && More(); --n) AppendCodePoint(s);
    return s;
  }

  MOAT_FUZZ_NO_COVERAGE Item MakeItem() { return Item{in_.Integral<uint16_t>(), Text()}; }

  MOAT_FUZZ_NO_COVERAGE Node MakeNode(int depth) {
    Node n{in_.Integral<uint32_t>(), {}};
    if (depth > 0) {
      for (size_t k = in_.InRange<size_t>(0, 3); k > 0 && More(); --k) n.children.push_back(MakeNode(depth - 1));
    }
    return n;
  }

  MOAT_FUZZ_NO_COVERAGE Choice MakeChoice() {
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

 private:
  // Pays for one more container element; false once the budget or the input is spent.
  MOAT_FUZZ_NO_COVERAGE bool More() {
    if (budget_ == 0 || in_.empty()) return false;
    --budget_;
    return true;
  }

  // Appends one valid code point as UTF-8, from every length class.
  MOAT_FUZZ_NO_COVERAGE void AppendCodePoint(std::string& out) {
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
    AppendUtf8(out, cp);
  }

  Input& in_;
  size_t budget_;
};

// Equality as the property means it: doubles by bit pattern (NaN payloads and
// -0.0 must survive), everything else by operator==.
template <typename T>
bool Same(const T& a, const T& b) {
  return a == b;
}
inline bool Same(const double& a, const double& b) { return std::bit_cast<uint64_t>(a) == std::bit_cast<uint64_t>(b); }
inline bool Same(const Rich& a, const Rich& b) { return RichEquals(a, b); }
inline bool Same(const Subset& a, const Subset& b) {
  return a.u64 == b.u64 && a.i16 == b.i16 && a.flag == b.flag && Same(a.f64, b.f64) && a.wide == b.wide &&
         a.text == b.text && a.maybe_maybe == b.maybe_maybe && a.choice == b.choice;
}

// The whole property for one value of any codec type. `cut_choice` picks the
// strict prefix that must be rejected as incomplete.
template <typename T>
void CheckRoundTrip(const T& value, uint16_t cut_choice) {
  Result<EncodedMessage> msg = EncodeMessage(value);
  MOAT_FUZZ_CHECK(msg.ok(), "encoding failed");
  MOAT_FUZZ_CHECK(!msg->bytes.empty(), "a value encoded to no bytes");
  Result<T> back = DecodeMessage<T>(msg->bytes);
  MOAT_FUZZ_CHECK(back.ok(), back.ok() ? "" : back.error().ToString().c_str());
  MOAT_FUZZ_CHECK(Same(value, *back), "decoded value differs from the encoded one");
  Result<EncodedMessage> again = EncodeMessage(*back);
  MOAT_FUZZ_CHECK(again.ok() && again->bytes == msg->bytes, "re-encoding changed the bytes");
  const size_t cut = cut_choice % msg->bytes.size();
  Result<T> prefix = DecodeMessage<T>(std::span<const uint8_t>(msg->bytes.data(), cut));
  MOAT_FUZZ_CHECK(!prefix.ok() && prefix.error().code() == ErrorCode::kIncomplete,
                  "a strict prefix was not rejected as incomplete");
}

// One run of a round-trip target: reads the run's first choices (which kind
// of value, modulo kind_count, and which prefix cut), then calls
// round_trip(kind, cut, builder) to build that value and check it.
template <typename Kind, typename RoundTrip>
int RunRoundTrip(const uint8_t* data, size_t size, Kind kind_count, RoundTrip&& round_trip) {
  Input in(data, size);
  const auto kind = static_cast<Kind>(in.Integral<uint8_t>() % kind_count);
  const uint16_t cut = in.Integral<uint16_t>();
  ValueBuilder builder(in);
  round_trip(kind, cut, builder);
  return 0;
}

}  // namespace moat::fuzz

#endif  // MOAT_FUZZ_INTERNAL_CODEC_VALUE_BUILDER_H_
