// Tests of the typed codec: layout, round trips, and every rejection rule.
#include "core/codec/codec.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/codec/testing/test_schema.h"
#include "core/codec/testing/wire_builder.h"
#include "limits/limits.h"

namespace moat {
namespace {

using codec_testing::Chain;
using codec_testing::Choice;
using codec_testing::Color;
using codec_testing::Envelope;
using codec_testing::Item;
using codec_testing::Node;
using codec_testing::Rich;
using codec_testing::WireBuilder;

constexpr uint32_t kMax = limits::MAX_DECODED_SIZE;

template <typename T>
std::vector<uint8_t> Encoded(const T& v, const limits::ConnectionLimits& l = limits::ConnectionLimits::Defaults()) {
  Result<EncodedMessage> m = EncodeMessage(v, l);
  EXPECT_TRUE(m.ok());
  return std::move(m->bytes);
}

template <typename T>
Error DecodeError(const std::vector<uint8_t>& bytes,
                  const limits::ConnectionLimits& l = limits::ConnectionLimits::Defaults()) {
  Result<T> r = DecodeMessage<T>(bytes, {}, {}, l);
  EXPECT_FALSE(r.ok()) << "decoding unexpectedly succeeded";
  if (r.ok()) return Error(ErrorCode::kInvalidArgument, "decoded");
  return std::move(r).error();
}

// ---------------------------------------------------------------------------
// Layout.

TEST(CodecLayout, IntegersAreLittleEndianFixedWidth) {
  EXPECT_EQ(Encoded(uint8_t{0xAB}), (std::vector<uint8_t>{0xAB}));
  EXPECT_EQ(Encoded(uint16_t{0x0102}), (std::vector<uint8_t>{0x02, 0x01}));
  EXPECT_EQ(Encoded(uint32_t{0x01020304}), (std::vector<uint8_t>{4, 3, 2, 1}));
  EXPECT_EQ(Encoded(uint64_t{0x0102030405060708}), (std::vector<uint8_t>{8, 7, 6, 5, 4, 3, 2, 1}));
  EXPECT_EQ(Encoded(int16_t{-2}), (std::vector<uint8_t>{0xFE, 0xFF}));
  EXPECT_EQ(Encoded(int64_t{-1}), std::vector<uint8_t>(8, 0xFF));
  EXPECT_EQ(Encoded(true), (std::vector<uint8_t>{1}));
  EXPECT_EQ(Encoded(1.0), (std::vector<uint8_t>{0, 0, 0, 0, 0, 0, 0xF0, 0x3F}));
}

TEST(CodecLayout, StructIsFieldsInOrder) {
  // The hex example of docs/wire-format-codec.md.
  EXPECT_EQ(Encoded(Item{0x0102, "ab"}), (std::vector<uint8_t>{0x02, 0x01, 0x02, 0, 0, 0, 'a', 'b'}));
  Envelope env{{Item{1, "x"}}};
  EXPECT_EQ(Encoded(env), (std::vector<uint8_t>{1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 'x'}));
}

TEST(CodecLayout, ContainersOptionalVariant) {
  EXPECT_EQ(Encoded(std::optional<uint8_t>()), (std::vector<uint8_t>{0}));
  EXPECT_EQ(Encoded(std::optional<uint8_t>(9)), (std::vector<uint8_t>{1, 9}));
  EXPECT_EQ(Encoded(std::variant<uint8_t, uint16_t>(uint16_t{5})),
            (std::vector<uint8_t>{1, 0, 0, 0, 5, 0}));
  EXPECT_EQ(Encoded(std::map<uint8_t, bool>{{2, true}, {1, false}}),
            (std::vector<uint8_t>{2, 0, 0, 0, 1, 0, 2, 1}));
  EXPECT_EQ(Encoded(std::vector<int16_t>{1, -1}), (std::vector<uint8_t>{2, 0, 0, 0, 1, 0, 0xFF, 0xFF}));
  EXPECT_EQ(Encoded(Color::kBlue), (std::vector<uint8_t>{7}));
  EXPECT_EQ(Encoded(MessagePipeHandleSlot{77}), (std::vector<uint8_t>{0, 0, 0, 0}));
}

TEST(CodecLayout, MinEncodedSizes) {
  EXPECT_EQ(Codec<Item>::kMinEncodedSize, 6u);
  EXPECT_EQ(Codec<Node>::kMinEncodedSize, 8u);
  EXPECT_EQ(Codec<Choice>::kMinEncodedSize, 8u);
  EXPECT_EQ(Codec<std::optional<Item>>::kMinEncodedSize, 1u);
}

// ---------------------------------------------------------------------------
// Round trips.

TEST(CodecRoundTrip, BigNestedStruct) {
  const Rich in = codec_testing::SampleRich();
  const std::vector<uint8_t> bytes = Encoded(in);
  Result<Rich> out = DecodeMessage<Rich>(bytes);
  ASSERT_TRUE(out.ok()) << out.error().ToString();
  EXPECT_TRUE(codec_testing::RichEquals(in, *out));
  EXPECT_EQ(Encoded(*out), bytes);  // canonical: re-encoding is byte-identical
}

TEST(CodecRoundTrip, ExtremeScalars) {
  for (double d : {0.0, -0.0, std::numeric_limits<double>::infinity(),
                   std::numeric_limits<double>::denorm_min(), std::nan("")}) {
    Result<double> r = DecodeMessage<double>(Encoded(d));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(std::bit_cast<uint64_t>(*r), std::bit_cast<uint64_t>(d));
  }
  Result<int64_t> i = DecodeMessage<int64_t>(Encoded(std::numeric_limits<int64_t>::min()));
  ASSERT_TRUE(i.ok());
  EXPECT_EQ(*i, std::numeric_limits<int64_t>::min());
  Result<codec_testing::Wide> w = DecodeMessage<codec_testing::Wide>(Encoded(codec_testing::Wide::kNegative));
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(*w, codec_testing::Wide::kNegative);
}

TEST(CodecRoundTrip, HandlesAndManualReads) {
  Encoder e;
  e.Encode(MessagePipeHandleSlot{0xAAAA});
  e.WriteString("z");
  e.Encode(MessagePipeHandleSlot{0xBBBB});
  e.WriteRaw(std::vector<uint8_t>{1, 2, 3});
  ASSERT_TRUE(e.Finish().ok());
  std::vector<uint64_t> handles = e.handles();
  EXPECT_EQ(handles, (std::vector<uint64_t>{0xAAAA, 0xBBBB}));
  std::vector<uint8_t> bytes = e.TakeBytes();
  Decoder d(bytes, {}, handles);
  EXPECT_EQ(*d.Decode<MessagePipeHandleSlot>(), MessagePipeHandleSlot{0xAAAA});
  EXPECT_EQ(*d.ReadString(), "z");
  EXPECT_EQ(*d.TakeHandle(), 0xBBBBu);
  Result<std::span<const uint8_t>> raw = d.ReadRaw(3);
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(std::vector<uint8_t>(raw->begin(), raw->end()), (std::vector<uint8_t>{1, 2, 3}));
  EXPECT_EQ(d.remaining(), 0u);
  EXPECT_TRUE(d.Finish().ok());
}

// ---------------------------------------------------------------------------
// Error paths, with exact strings.

TEST(CodecErrors, FieldPathNamesOutermostStructAndIndex) {
  // Envelope{items: 4 x Item{id u16, name}}; items[0..2] have empty names, so
  // items[3].name's length prefix starts at 4 + 3*6 + 2 = 24.
  WireBuilder w;
  w.U32(4);
  for (int i = 0; i < 3; ++i) w.U16(static_cast<uint16_t>(i)).Str("");
  w.U16(3).U32(80000000);
  Error e = DecodeError<Envelope>(w.bytes());
  EXPECT_EQ(e.code(), ErrorCode::kLimitExceeded);
  EXPECT_EQ(e.ToString(),
            "Envelope.items[3].name: length 80000000 exceeds MAX_DECODED_SIZE 67108864 (at byte 24)");
}

TEST(CodecErrors, BoolOnlyZeroOrOne) {
  EXPECT_TRUE(*DecodeMessage<bool>(std::vector<uint8_t>{1}));
  EXPECT_FALSE(*DecodeMessage<bool>(std::vector<uint8_t>{0}));
  Error e = DecodeError<bool>({2});
  EXPECT_EQ(e.code(), ErrorCode::kMalformed);
  EXPECT_EQ(e.ToString(), "bool byte 2 is not 0 or 1 (at byte 0)");
  EXPECT_EQ(DecodeError<bool>({0xFF}).reason(), "bool byte 255 is not 0 or 1");
}

TEST(CodecErrors, EnumOnlyDeclaredValues) {
  EXPECT_EQ(*DecodeMessage<Color>(std::vector<uint8_t>{2}), Color::kGreen);
  for (uint8_t bad : {0, 3, 6, 8, 255}) {
    Error e = DecodeError<Color>({bad});
    EXPECT_EQ(e.code(), ErrorCode::kMalformed);
    EXPECT_EQ(e.reason(), "value " + std::to_string(bad) + " is not a declared Color");
  }
  EXPECT_EQ(DecodeError<codec_testing::Wide>(WireBuilder().U32(static_cast<uint32_t>(-4)).bytes()).reason(),
            "value -4 is not a declared Wide");
  // In a struct field, the path names it.
  {
    Rich r = codec_testing::SampleRich();
    std::vector<uint8_t> bytes = Encoded(r);
    // color follows u8,u16,u32,u64,i8,i16,i32,i64,bool,u64,f64 = 1+2+4+8+1+2+4+8+1+8+8 = 47.
    ASSERT_EQ(bytes[47], 7);
    bytes[47] = 4;
    EXPECT_EQ(DecodeError<Rich>(bytes).ToString(), "Rich.color: value 4 is not a declared Color (at byte 47)");
  }
}

TEST(CodecErrors, VariantIndexBoundsCheckedBeforeDispatch) {
  using V = std::variant<uint8_t, std::string>;
  EXPECT_EQ(std::get<1>(*DecodeMessage<V>(WireBuilder().U32(1).Str("ok").bytes())), "ok");
  for (uint32_t bad : {2u, 3u, 0xFFFFFFFFu}) {
    Error e = DecodeError<V>(WireBuilder().U32(bad).U8(0).bytes());
    EXPECT_EQ(e.code(), ErrorCode::kMalformed);
    EXPECT_EQ(e.ToString(), "variant index " + std::to_string(bad) + " out of range (2 alternatives) (at byte 0)");
  }
}

TEST(CodecErrors, OptionalTag) {
  Error e = DecodeError<std::optional<uint8_t>>({2, 0});
  EXPECT_EQ(e.code(), ErrorCode::kMalformed);
  EXPECT_EQ(e.reason(), "optional tag 2 is not 0 or 1");
}

TEST(CodecErrors, InvalidUtf8Classes) {
  const std::pair<const char*, std::string> cases[] = {
      {"overlong slash", "a\xC0\xAF"},
      {"overlong 3-byte", "a\xE0\x80\xAF"},
      {"overlong 4-byte", "a\xF0\x80\x80\xAF"},
      {"surrogate", "a\xED\xA0\x80"},
      {"above U+10FFFF", "a\xF4\x90\x80\x80"},
      {"lead F5", "a\xF5\x80\x80\x80"},
      {"stray continuation", "a\x80"},
      {"truncated", "a\xE2\x82"},
      {"bad continuation", "a\xE2\x28\xA1"},
  };
  for (const auto& [what, text] : cases) {
    Error e = DecodeError<std::string>(WireBuilder().Str(text).bytes());
    EXPECT_EQ(e.code(), ErrorCode::kMalformed) << what;
    EXPECT_EQ(e.ToString(), "invalid UTF-8 at string byte 1 (at byte 5)") << what;
  }
  for (const std::string& ok : {std::string("\0", 1), std::string("\xF4\x8F\xBF\xBF"),
                               std::string("\xED\x9F\xBF"), std::string("\xEE\x80\x80")}) {
    Result<std::string> r = DecodeMessage<std::string>(WireBuilder().Str(ok).bytes());
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    EXPECT_EQ(*r, ok);
  }
}

TEST(CodecErrors, MaxDecodedSizeOnePastIsRejectedBeforeAllocation) {
  // Each message is 4 bytes claiming MAX_DECODED_SIZE + 1: rejected by the
  // length prefix alone, whatever follows.
  const std::vector<uint8_t> claim = WireBuilder().U32(kMax + 1).bytes();
  const std::string expect = "length 67108865 exceeds MAX_DECODED_SIZE 67108864 (at byte 0)";
  EXPECT_EQ(DecodeError<std::string>(claim).ToString(), expect);
  EXPECT_EQ(DecodeError<std::vector<uint8_t>>(claim).ToString(), expect);
  EXPECT_EQ(DecodeError<std::vector<uint32_t>>(claim).ToString(), expect);
  EXPECT_EQ(DecodeError<std::vector<Item>>(claim).ToString(), expect);
  EXPECT_EQ((DecodeError<std::map<uint8_t, uint8_t>>(claim).ToString()), expect);
  EXPECT_EQ(DecodeError<std::string>(claim).code(), ErrorCode::kLimitExceeded);
  EXPECT_EQ(DecodeError<std::vector<uint8_t>>(WireBuilder().U32(0xFFFFFFFF).bytes()).reason(),
            "length 4294967295 exceeds MAX_DECODED_SIZE 67108864");
}

TEST(CodecErrors, MaxDecodedSizeExactlyPassesTheLimitCheck) {
  // Claiming exactly the limit passes decode_size; with only 4 bytes sent it
  // then fails as incomplete (not as over the limit, and without allocating).
  const std::vector<uint8_t> claim = WireBuilder().U32(kMax).bytes();
  EXPECT_EQ(DecodeError<std::string>(claim).code(), ErrorCode::kIncomplete);
  EXPECT_EQ(DecodeError<std::vector<uint8_t>>(claim).reason(), "bytes: need 67108864 bytes, have 0");
  EXPECT_EQ(DecodeError<std::vector<uint32_t>>(claim).reason(),
            "vector of 67108864 elements needs at least 268435456 bytes, have 0");
  EXPECT_EQ((DecodeError<std::map<uint16_t, uint8_t>>(claim).reason()),
            "map of 67108864 elements needs at least 201326592 bytes, have 0");
  // And a real MAX_DECODED_SIZE byte buffer is accepted (the one 64 MiB test).
  std::vector<uint8_t> big(4 + size_t{kMax}, 0x5A);
  std::memcpy(big.data(), &kMax, 4);
  Result<std::vector<uint8_t>> r = DecodeMessage<std::vector<uint8_t>>(big);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->size(), kMax);
  EXPECT_EQ(r->back(), 0x5A);
}

TEST(CodecErrors, TightenedLimitAtAndOnePast) {
  const limits::ConnectionLimits tight =
      limits::ConnectionLimits::Defaults().Tightened({.max_decoded_size = 3});
  // At the limit: accepted.
  EXPECT_EQ(*DecodeMessage<std::string>(WireBuilder().Str("abc").bytes(), {}, {}, tight), "abc");
  EXPECT_EQ(DecodeMessage<std::vector<uint8_t>>(WireBuilder().Str("abc").bytes(), {}, {}, tight)->size(), 3u);
  EXPECT_EQ(DecodeMessage<std::vector<uint16_t>>(WireBuilder().U32(3).U16(1).U16(2).U16(3).bytes(), {}, {}, tight)
                ->size(),
            3u);
  EXPECT_EQ((DecodeMessage<std::map<uint8_t, uint8_t>>(WireBuilder().U32(3).U16(1).U16(2).U16(3).bytes(), {}, {},
                                                      tight)
                 ->size()),
            3u);
  // One past: rejected, naming the connection's limit.
  const std::string expect = "length 4 exceeds MAX_DECODED_SIZE 3 (at byte 0)";
  EXPECT_EQ(DecodeError<std::string>(WireBuilder().Str("abcd").bytes(), tight).ToString(), expect);
  EXPECT_EQ(DecodeError<std::vector<uint8_t>>(WireBuilder().Str("abcd").bytes(), tight).ToString(), expect);
  EXPECT_EQ(DecodeError<std::vector<uint16_t>>(WireBuilder().U32(4).U64(0).bytes(), tight).ToString(), expect);
  EXPECT_EQ((DecodeError<std::map<uint8_t, uint8_t>>(WireBuilder().U32(4).U64(0x0807060504030201).bytes(), tight)
                 .ToString()),
            expect);
}

TEST(CodecErrors, HugeClaimInTinyMessageFailsWithoutReserving) {
  // 20 bytes claiming a 64M-element vector of structs.
  std::vector<uint8_t> msg = WireBuilder().U32(kMax).U64(0).U64(0).bytes();
  ASSERT_EQ(msg.size(), 20u);
  Error e = DecodeError<std::vector<Node>>(msg);
  EXPECT_EQ(e.code(), ErrorCode::kIncomplete);
  EXPECT_EQ(e.ToString(), "vector of 67108864 elements needs at least 536870912 bytes, have 16 (at byte 0)");
}

// A type whose minimum wire size makes count x size overflow size_t.
struct Huge {};
}  // namespace
template <>
struct Codec<Huge> {
  static constexpr size_t kMinEncodedSize = std::numeric_limits<size_t>::max() / 2 + 1;
  static void Encode(Encoder&, const Huge&) {}
  static Result<Huge> Decode(Decoder&) { return Huge{}; }
};
namespace {

TEST(CodecErrors, ElementCountTimesSizeOverflow) {
  Error e = DecodeError<std::vector<Huge>>(WireBuilder().U32(2).bytes());
  EXPECT_EQ(e.code(), ErrorCode::kLimitExceeded);
  EXPECT_EQ(e.reason(), "vector of 2 elements of at least 9223372036854775808 bytes overflows size_t");
  // One element does not overflow (but is incomplete).
  EXPECT_EQ(DecodeError<std::vector<Huge>>(WireBuilder().U32(1).bytes()).code(), ErrorCode::kIncomplete);
}

TEST(CodecErrors, NestedLengthLongerThanItsParent) {
  // An outer vector of 1 string whose inner length points past the end.
  Error e = DecodeError<std::vector<std::string>>(WireBuilder().U32(1).U32(1000).Raw("abc").bytes());
  EXPECT_EQ(e.code(), ErrorCode::kIncomplete);
  EXPECT_EQ(e.ToString(), "[0]: string: need 1000 bytes, have 3 (at byte 8)");
}

TEST(CodecErrors, MapKeysSortedAndUnique) {
  using M = std::map<uint16_t, uint8_t>;
  EXPECT_EQ(DecodeMessage<M>(WireBuilder().U32(2).U16(3).U8(0).U16(5).U8(1).bytes())->size(), 2u);
  Error unsorted = DecodeError<M>(WireBuilder().U32(2).U16(5).U8(0).U16(3).U8(1).bytes());
  EXPECT_EQ(unsorted.code(), ErrorCode::kMalformed);
  EXPECT_EQ(unsorted.ToString(),
            "[1].key: key is not greater than the previous key (map keys must be sorted and unique) (at byte 7)");
  Error dup = DecodeError<M>(WireBuilder().U32(2).U16(5).U8(0).U16(5).U8(1).bytes());
  EXPECT_EQ(dup.code(), ErrorCode::kMalformed);
  EXPECT_EQ(dup.field(), "[1].key");
  // Inside a struct: Rich.attributes.
  Rich r;
  r.attributes = {{"a", 1}, {"b", 2}};
  std::vector<uint8_t> bytes = Encoded(r);
  auto it = std::search(bytes.begin(), bytes.end(), std::begin("\1\0\0\0b"), std::begin("\1\0\0\0b") + 5);
  ASSERT_NE(it, bytes.end());
  it[4] = 'a';  // second key becomes "a": duplicate
  EXPECT_EQ(DecodeError<Rich>(bytes).field(), "Rich.attributes[1].key");
}

TEST(CodecErrors, TrailingBytes) {
  Error e = DecodeError<uint32_t>({1, 0, 0, 0, 9});
  EXPECT_EQ(e.code(), ErrorCode::kMalformed);
  EXPECT_EQ(e.ToString(), "1 trailing bytes after the value (at byte 4)");
}

TEST(CodecErrors, DepthLimitAtAndPast) {
  // Node k of a chain sits at depth 2k-1 and its u32 at 2k: 32 nodes reach
  // depth 64 exactly; 33 go past.
  Result<Node> ok = DecodeMessage<Node>(Encoded(Chain(32)));
  ASSERT_TRUE(ok.ok()) << ok.error().ToString();
  EXPECT_EQ(*ok, Chain(32));
  WireBuilder deep;
  for (int i = 0; i < 32; ++i) deep.U32(static_cast<uint32_t>(i)).U32(1);
  deep.U32(32).U32(0);
  Error e = DecodeError<Node>(deep.bytes());
  EXPECT_EQ(e.code(), ErrorCode::kLimitExceeded);
  EXPECT_EQ(e.reason(), "nesting depth exceeds MAX_DECODE_DEPTH 64");
  EXPECT_EQ(e.offset(), 32u * 8);
}

TEST(CodecErrors, VeryDeepInputIsAnErrorNotAStackOverflow) {
  WireBuilder deep;
  for (int i = 0; i < 100000; ++i) deep.U32(0).U32(1);
  EXPECT_EQ(DecodeError<Node>(deep.bytes()).code(), ErrorCode::kLimitExceeded);
}

TEST(CodecErrors, EveryPrefixIsIncomplete) {
  std::vector<std::vector<uint8_t>> valid = {
      Encoded(codec_testing::SampleRich()),
      Encoded(Envelope{{Item{1, "abc"}, Item{2, "\xE2\x82\xAC"}}}),
      Encoded(Chain(10)),
      Encoded(std::map<std::string, std::vector<int64_t>>{{"k", {1, 2}}, {"l", {}}}),
      Encoded(Choice(std::vector<Node>{Chain(3)})),
  };
  size_t checked = 0;
  for (size_t v = 0; v < valid.size(); ++v) {
    for (size_t n = 0; n < valid[v].size(); ++n) {
      std::vector<uint8_t> prefix(valid[v].begin(), valid[v].begin() + static_cast<ptrdiff_t>(n));
      Status s = [&]() -> Status {
        switch (v) {
          case 0: return DecodeMessage<Rich>(prefix).ok() ? OkStatus() : DecodeMessage<Rich>(prefix).error();
          case 1: {
            auto r = DecodeMessage<Envelope>(prefix);
            return r.ok() ? OkStatus() : Status(r.error());
          }
          case 2: {
            auto r = DecodeMessage<Node>(prefix);
            return r.ok() ? OkStatus() : Status(r.error());
          }
          case 3: {
            auto r = DecodeMessage<std::map<std::string, std::vector<int64_t>>>(prefix);
            return r.ok() ? OkStatus() : Status(r.error());
          }
          default: {
            auto r = DecodeMessage<Choice>(prefix);
            return r.ok() ? OkStatus() : Status(r.error());
          }
        }
      }();
      ASSERT_FALSE(s.ok()) << "value " << v << " prefix " << n;
      ASSERT_EQ(s.error().code(), ErrorCode::kIncomplete) << "value " << v << " prefix " << n << ": "
                                                          << s.error().ToString();
      ++checked;
    }
  }
  EXPECT_GT(checked, 200u);
}

TEST(CodecErrors, DecodeSizeDirectly) {
  std::vector<uint8_t> b = WireBuilder().U32(5).U32(kMax + 1).U16(0).bytes();
  Decoder d(b);
  EXPECT_EQ(*d.DecodeSize("thing"), 5u);
  Result<uint32_t> over = d.DecodeSize("thing");
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.error().ToString(), "length 67108865 exceeds MAX_DECODED_SIZE 67108864 (at byte 4)");
  Decoder short_input(std::span<const uint8_t>(b.data(), 2));
  Result<uint32_t> incomplete = short_input.DecodeSize("thing");
  ASSERT_FALSE(incomplete.ok());
  EXPECT_EQ(incomplete.error().ToString(), "thing length prefix: need 4 bytes, have 2 (at byte 0)");
}

}  // namespace
}  // namespace moat
