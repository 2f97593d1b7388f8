// Property: any value built from fuzzer choices, of any type of the rich test
// schema, encodes, decodes back to an equal value (doubles compared
// bit-for-bit), and re-encodes to the same bytes; every strict prefix of the
// encoding is rejected as kIncomplete (one prefix per run, chosen by the
// fuzzer). Differential by construction: the value built here is the oracle.
//
// The first choice selects WHICH type is round-tripped: each leaf and
// composite type of the schema on its own (every integer width, bool, double,
// both enums, string, bytes, vectors, maps, optionals, the variant, a small
// struct, a nested struct, a recursive tree, a descriptor-free subset of
// Rich) and, now and then, the full Rich. One run then touches a slice of the
// codec's template code rather than all of it, which keeps libFuzzer's
// per-run feature bookkeeping (entropic scheduling) small: R25 speed.
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
#include <map>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "core/codec/utf8.h"
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

}  // namespace

// A descriptor-free subset of Rich: one field of each scalar kind plus a
// string, a nested optional and the variant, in one struct.
namespace moat::codec_roundtrip_fuzzer {

struct Subset {
  uint64_t u64 = 0;
  int16_t i16 = 0;
  bool flag = false;
  double f64 = 0;
  codec_testing::Wide wide = codec_testing::Wide::kZero;
  std::string text;
  std::optional<std::optional<bool>> maybe_maybe;
  codec_testing::Choice choice;
};
MOAT_CODEC_STRUCT(Subset, u64, i16, flag, f64, wide, text, maybe_maybe, choice)

}  // namespace moat::codec_roundtrip_fuzzer

namespace {

using moat::codec_roundtrip_fuzzer::Subset;

// The value generator is the oracle, not the code under test: its own
// branches and loop counts would only add coverage features that every run
// pays for in libFuzzer's feature bookkeeping, without guiding it anywhere the
// codec's coverage does not.
#define NO_COV __attribute__((no_sanitize("coverage")))

class Builder {
 public:
  explicit Builder(Input& in) : in_(in), budget_(std::min(kMaxElements, in.remaining() / kBytesPerElement)) {}

  template <typename T>
  NO_COV T Integer() {
    return in_.Integral<T>();
  }
  NO_COV bool Bool() { return in_.Bool(); }
  NO_COV double Double() { return std::bit_cast<double>(in_.Integral<uint64_t>()); }
  NO_COV Color MakeColor() {
    constexpr Color kColors[] = {Color::kRed, Color::kGreen, Color::kBlue};
    return kColors[in_.InRange<uint8_t>(0, 2)];
  }
  NO_COV Wide MakeWide() {
    constexpr Wide kWides[] = {Wide::kNegative, Wide::kZero, Wide::kLarge};
    return kWides[in_.InRange<uint8_t>(0, 2)];
  }
  NO_COV std::vector<uint8_t> Blob() { return in_.Bytes(in_.InRange<size_t>(0, 16)); }
  NO_COV std::vector<int32_t> Numbers() {
    std::vector<int32_t> v;
    for (size_t n = in_.InRange<size_t>(0, 6); n > 0 && More(); --n) v.push_back(in_.Integral<int32_t>());
    return v;
  }
  NO_COV std::vector<Item> Items() {
    std::vector<Item> v;
    for (size_t n = in_.InRange<size_t>(0, 4); n > 0 && More(); --n) v.push_back(MakeItem());
    return v;
  }
  NO_COV std::map<std::string, uint32_t> Attributes() {
    std::map<std::string, uint32_t> m;
    for (size_t n = in_.InRange<size_t>(0, 4); n > 0 && More(); --n) m[Text()] = in_.Integral<uint32_t>();
    return m;
  }
  NO_COV std::map<uint16_t, Envelope> Envelopes() {
    std::map<uint16_t, Envelope> m;
    for (size_t n = in_.InRange<size_t>(0, 3); n > 0 && More(); --n) {
      Envelope& e = m[in_.Integral<uint16_t>()];
      for (size_t k = in_.InRange<size_t>(0, 2); k > 0 && More(); --k) e.items.push_back(MakeItem());
    }
    return m;
  }
  NO_COV Envelope MakeEnvelope() {
    Envelope e;
    for (size_t k = in_.InRange<size_t>(0, 4); k > 0 && More(); --k) e.items.push_back(MakeItem());
    return e;
  }
  NO_COV std::optional<Item> MaybeItem() {
    if (in_.Bool()) return MakeItem();
    return std::nullopt;
  }
  NO_COV std::optional<std::optional<bool>> MaybeMaybe() {
    switch (in_.InRange<uint8_t>(0, 2)) {
      case 0: return std::nullopt;
      case 1: return std::optional<bool>();
      default: return std::optional<bool>(in_.Bool());
    }
  }
  NO_COV std::vector<Choice> Choices() {
    std::vector<Choice> v;
    for (size_t n = in_.InRange<size_t>(0, 3); n > 0 && More(); --n) v.push_back(MakeChoice());
    return v;
  }

  NO_COV Subset MakeSubset() {
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

  NO_COV Rich MakeRich() {
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

  NO_COV std::string Text() {
    std::string s;
    for (size_t n = in_.InRange<size_t>(0, kMaxCodePoints); n > 0 && More(); --n) AppendCodePoint(s);
    return s;
  }

  NO_COV Item MakeItem() { return Item{in_.Integral<uint16_t>(), Text()}; }

  NO_COV Node MakeNode(int depth) {
    Node n{in_.Integral<uint32_t>(), {}};
    if (depth > 0) {
      for (size_t k = in_.InRange<size_t>(0, 3); k > 0 && More(); --k) n.children.push_back(MakeNode(depth - 1));
    }
    return n;
  }

  NO_COV Choice MakeChoice() {
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
  NO_COV bool More() {
    if (budget_ == 0 || in_.empty()) return false;
    --budget_;
    return true;
  }

  // Appends one valid code point as UTF-8, from every length class.
  NO_COV void AppendCodePoint(std::string& out) {
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
bool Same(const double& a, const double& b) { return std::bit_cast<uint64_t>(a) == std::bit_cast<uint64_t>(b); }
bool Same(const Rich& a, const Rich& b) { return RichEquals(a, b); }
bool Same(const Subset& a, const Subset& b) {
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

// Which type a run round-trips (the input's first choice, modulo kKindCount).
// core/codec/codec_seeds.cc writes one seed per kind; keep it in step.
enum Kind : uint8_t {
  kU8, kU16, kU32, kU64, kI8, kI16, kI32, kI64, kBool, kDouble, kColor, kWide,
  kString, kBytes, kNumbers, kItems, kAttributes, kEnvelopes, kMaybeItem, kMaybeMaybe,
  kChoice, kChoices, kItem, kEnvelope, kTree, kSubset, kRich,
  kKindCount
};

}  // namespace

MOAT_FUZZ_COVERS("codec_value")
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(data, size);
  const auto kind = static_cast<Kind>(in.Integral<uint8_t>() % kKindCount);
  const uint16_t cut = in.Integral<uint16_t>();
  Builder b(in);
  switch (kind) {
    case kU8: CheckRoundTrip(b.Integer<uint8_t>(), cut); break;
    case kU16: CheckRoundTrip(b.Integer<uint16_t>(), cut); break;
    case kU32: CheckRoundTrip(b.Integer<uint32_t>(), cut); break;
    case kU64: CheckRoundTrip(b.Integer<uint64_t>(), cut); break;
    case kI8: CheckRoundTrip(b.Integer<int8_t>(), cut); break;
    case kI16: CheckRoundTrip(b.Integer<int16_t>(), cut); break;
    case kI32: CheckRoundTrip(b.Integer<int32_t>(), cut); break;
    case kI64: CheckRoundTrip(b.Integer<int64_t>(), cut); break;
    case kBool: CheckRoundTrip(b.Bool(), cut); break;
    case kDouble: CheckRoundTrip(b.Double(), cut); break;
    case kColor: CheckRoundTrip(b.MakeColor(), cut); break;
    case kWide: CheckRoundTrip(b.MakeWide(), cut); break;
    case kString: CheckRoundTrip(b.Text(), cut); break;
    case kBytes: CheckRoundTrip(b.Blob(), cut); break;
    case kNumbers: CheckRoundTrip(b.Numbers(), cut); break;
    case kItems: CheckRoundTrip(b.Items(), cut); break;
    case kAttributes: CheckRoundTrip(b.Attributes(), cut); break;
    case kEnvelopes: CheckRoundTrip(b.Envelopes(), cut); break;
    case kMaybeItem: CheckRoundTrip(b.MaybeItem(), cut); break;
    case kMaybeMaybe: CheckRoundTrip(b.MaybeMaybe(), cut); break;
    case kChoice: CheckRoundTrip(b.MakeChoice(), cut); break;
    case kChoices: CheckRoundTrip(b.Choices(), cut); break;
    case kItem: CheckRoundTrip(b.MakeItem(), cut); break;
    case kEnvelope: CheckRoundTrip(b.MakeEnvelope(), cut); break;
    case kTree: CheckRoundTrip(b.MakeNode(4), cut); break;
    case kSubset: CheckRoundTrip(b.MakeSubset(), cut); break;
    case kRich: CheckRoundTrip(b.MakeRich(), cut); break;
    case kKindCount: break;
  }
  return 0;
}
