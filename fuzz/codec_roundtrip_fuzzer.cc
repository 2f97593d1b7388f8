// Property: any value of the rich schema built from fuzzer choices encodes,
// decodes back to an equal value (doubles compared bit-for-bit), and
// re-encodes to the same bytes; every strict prefix of the encoding is
// rejected as kIncomplete. Differential by construction: the value built
// here is the oracle.
#include <cstdint>
#include <string>
#include <vector>

#include "core/codec/codec.h"
#include "core/codec/testing/test_schema.h"
#include "fuzz/fuzz_harness.h"

namespace {

using namespace moat;  // NOLINT
using namespace moat::codec_testing;  // NOLINT
using moat::fuzz::Input;

// Appends one valid code point as UTF-8, from every length class.
void AppendCodePoint(Input& in, std::string& out) {
  uint32_t cp;
  switch (in.InRange<uint8_t>(0, 3)) {
    case 0: cp = in.InRange<uint32_t>(0, 0x7F); break;
    case 1: cp = in.InRange<uint32_t>(0x80, 0x7FF); break;
    case 2:
      cp = in.InRange<uint32_t>(0x800, 0xFFFF - 0x800);
      if (cp >= 0xD800) cp += 0x800;  // skip surrogates
      break;
    default: cp = in.InRange<uint32_t>(0x10000, 0x10FFFF); break;
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

std::string Text(Input& in) {
  std::string s;
  for (size_t n = in.InRange<size_t>(0, 12); n > 0 && !in.empty(); --n) AppendCodePoint(in, s);
  return s;
}

Item MakeItem(Input& in) { return Item{in.Integral<uint16_t>(), Text(in)}; }

Node MakeNode(Input& in, int depth) {
  Node n{in.Integral<uint32_t>(), {}};
  if (depth > 0) {
    for (size_t k = in.InRange<size_t>(0, 3); k > 0 && !in.empty(); --k) n.children.push_back(MakeNode(in, depth - 1));
  }
  return n;
}

Choice MakeChoice(Input& in) {
  switch (in.InRange<uint8_t>(0, 3)) {
    case 0: return Choice(in.Integral<uint32_t>());
    case 1: return Choice(Text(in));
    case 2: return Choice(MakeItem(in));
    default: {
      std::vector<Node> nodes;
      for (size_t k = in.InRange<size_t>(0, 2); k > 0; --k) nodes.push_back(MakeNode(in, 2));
      return Choice(std::move(nodes));
    }
  }
}

Rich MakeRich(Input& in) {
  Rich r;
  r.u8 = in.Integral<uint8_t>();
  r.u16 = in.Integral<uint16_t>();
  r.u32 = in.Integral<uint32_t>();
  r.u64 = in.Integral<uint64_t>();
  r.i8 = in.Integral<int8_t>();
  r.i16 = in.Integral<int16_t>();
  r.i32 = in.Integral<int32_t>();
  r.i64 = in.Integral<int64_t>();
  r.flag = in.Bool();
  r.f64_bits = in.Integral<uint64_t>();
  r.f64 = std::bit_cast<double>(in.Integral<uint64_t>());
  constexpr Color kColors[] = {Color::kRed, Color::kGreen, Color::kBlue};
  r.color = kColors[in.InRange<uint8_t>(0, 2)];
  constexpr Wide kWides[] = {Wide::kNegative, Wide::kZero, Wide::kLarge};
  r.wide = kWides[in.InRange<uint8_t>(0, 2)];
  r.text = Text(in);
  r.blob = in.Bytes(in.InRange<size_t>(0, 16));
  for (size_t n = in.InRange<size_t>(0, 6); n > 0; --n) r.numbers.push_back(in.Integral<int32_t>());
  for (size_t n = in.InRange<size_t>(0, 4); n > 0; --n) r.items.push_back(MakeItem(in));
  for (size_t n = in.InRange<size_t>(0, 4); n > 0; --n) r.attributes[Text(in)] = in.Integral<uint32_t>();
  for (size_t n = in.InRange<size_t>(0, 3); n > 0; --n) {
    Envelope& e = r.envelopes[in.Integral<uint16_t>()];
    for (size_t k = in.InRange<size_t>(0, 2); k > 0; --k) e.items.push_back(MakeItem(in));
  }
  if (in.Bool()) r.maybe_item = MakeItem(in);
  switch (in.InRange<uint8_t>(0, 2)) {
    case 0: break;
    case 1: r.maybe_maybe = std::optional<bool>(); break;
    default: r.maybe_maybe = std::optional<bool>(in.Bool()); break;
  }
  r.choice = MakeChoice(in);
  for (size_t n = in.InRange<size_t>(0, 3); n > 0; --n) r.choices.push_back(MakeChoice(in));
  r.tree = MakeNode(in, 4);
  return r;
}

}  // namespace

MOAT_FUZZ_COVERS("codec_value")
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(data, size);
  const Rich value = MakeRich(in);
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
