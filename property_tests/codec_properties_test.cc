// R29/R5/R7: properties of the typed codec (core/codec).
//
//   * Round trip: for random values of a nested schema (vectors, maps,
//     optionals, variants, recursive structs, enums, valid UTF-8 strings,
//     bytes, doubles by bit pattern), DecodeMessage(EncodeMessage(v)) == v.
//   * Canonical and total decoding: for any byte string (random, or a valid
//     encoding mutated by flips/truncations/insertions/deletions), decoding
//     either fails with an Error of a decode kind, or succeeds and re-encoding
//     gives back exactly the input bytes (one value, one encoding: no second
//     meaning can hide in a message). It never crashes (run under ASan/UBSan).
//     Every single-byte edit of a small valid encoding is swept too.
//   * Self-delimiting: every strict prefix of a valid encoding is rejected.
//   * Out-of-band values: descriptors and handles round-trip in slot order
//     and no descriptor leaks on any path (counted in /proc/self/fd).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <bit>
#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <variant>
#include <vector>

#include "core/codec/codec.h"
#include "core/codec/utf8.h"
#include "core/error.h"
#include "core/testing/fd_count.h"
#include "core/unique_fd.h"
#include "limits/limits.h"

namespace moat::proptest {

enum class Shade : uint8_t { kDark = 1, kLight = 2, kNeon = 200 };
MOAT_CODEC_ENUM(Shade, kDark, kLight, kNeon)

struct Leaf {
  uint16_t id = 0;
  std::string name;
  Shade shade = Shade::kDark;
  bool flag = false;
  bool operator==(const Leaf&) const = default;
};
MOAT_CODEC_STRUCT(Leaf, id, name, shade, flag)

struct Tree {
  int32_t value = 0;
  std::vector<Tree> kids;
  bool operator==(const Tree&) const = default;
};
MOAT_CODEC_STRUCT(Tree, value, kids)

using Alt = std::variant<uint32_t, std::string, Leaf, std::vector<uint8_t>, std::optional<int8_t>>;

struct Value {
  uint8_t u8 = 0;
  int64_t i64 = 0;
  uint64_t f64_bits = 0;  // a double, carried as its bit pattern for comparison
  std::string text;
  std::vector<uint8_t> blob;
  std::vector<int32_t> numbers;
  std::vector<Leaf> leaves;
  std::map<std::string, Leaf> by_name;
  std::map<uint32_t, std::vector<std::string>> index;
  std::optional<Leaf> maybe_leaf;
  std::optional<std::optional<bool>> maybe_maybe;
  Alt alt;
  std::vector<Alt> alts;
  Tree tree;
  bool operator==(const Value&) const = default;
};
MOAT_CODEC_STRUCT(Value, u8, i64, f64_bits, text, blob, numbers, leaves, by_name, index, maybe_leaf,
                  maybe_maybe, alt, alts, tree)

// The double travels as a real double field too, so its codec is exercised;
// equality is by bit pattern (NaN payloads must survive).
struct WithDouble {
  double d = 0;
  Value v;
};
MOAT_CODEC_STRUCT(WithDouble, d, v)

struct WithOutOfBand {
  std::vector<UniqueFd> fds;
  std::optional<UniqueFd> maybe_fd;
  std::vector<MessagePipeHandleSlot> handles;
  std::string tag;
};
MOAT_CODEC_STRUCT(WithOutOfBand, fds, maybe_fd, handles, tag)

std::ostream& operator<<(std::ostream& os, const Leaf& l) {
  return os << "Leaf{" << l.id << ",\"" << l.name << "\"," << +static_cast<uint8_t>(l.shade) << ","
            << l.flag << "}";
}
std::ostream& operator<<(std::ostream& os, const Tree& t) {
  os << "Tree{" << t.value;
  for (const Tree& k : t.kids) os << " " << k;
  return os << "}";
}
std::ostream& operator<<(std::ostream& os, const Value& v) {
  os << "Value{u8=" << +v.u8 << " i64=" << v.i64 << " f64_bits=" << v.f64_bits << " text=\""
     << v.text << "\" blob=" << v.blob.size() << "B numbers=" << v.numbers.size()
     << " leaves=" << v.leaves.size() << " by_name=" << v.by_name.size()
     << " index=" << v.index.size() << " maybe_leaf=" << v.maybe_leaf.has_value()
     << " maybe_maybe=" << (v.maybe_maybe ? (*v.maybe_maybe ? (**v.maybe_maybe ? "T" : "F") : "{}") : "-")
     << " alt#" << v.alt.index() << " alts=" << v.alts.size() << " " << v.tree << "}";
  return os;
}

// ---------------------------------------------------------------------------
// Generators.

using moat::AppendUtf8;

rc::Gen<uint32_t> GenCodePoint() {
  return rc::gen::weightedOneOf<uint32_t>({
      {6, rc::gen::inRange<uint32_t>(0, 0x80)},
      {2, rc::gen::inRange<uint32_t>(0x80, 0x800)},
      {2, rc::gen::inRange<uint32_t>(0x800, 0xD800)},
      {1, rc::gen::inRange<uint32_t>(0xE000, 0x10000)},
      {1, rc::gen::inRange<uint32_t>(0x10000, 0x110000)},
      {1, rc::gen::element<uint32_t>(0, 0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFF, 0x10000,
                                     0x10FFFF)},
  });
}

rc::Gen<std::string> GenUtf8() {
  return rc::gen::map(rc::gen::container<std::vector<uint32_t>>(GenCodePoint()),
                      [](const std::vector<uint32_t>& cps) {
                        std::string s;
                        for (uint32_t cp : cps) AppendUtf8(s, cp);
                        return s;
                      });
}

template <typename T>
rc::Gen<std::optional<T>> GenOptional(rc::Gen<T> gen) {
  return rc::gen::oneOf(rc::gen::just(std::optional<T>()),
                        rc::gen::map(std::move(gen), [](T v) { return std::optional<T>(std::move(v)); }));
}

rc::Gen<Leaf> GenLeaf() {
  return rc::gen::build<Leaf>(
      rc::gen::set(&Leaf::id), rc::gen::set(&Leaf::name, GenUtf8()),
      rc::gen::set(&Leaf::shade, rc::gen::element(Shade::kDark, Shade::kLight, Shade::kNeon)),
      rc::gen::set(&Leaf::flag));
}

rc::Gen<Tree> GenTree(int depth) {
  if (depth <= 0) {
    return rc::gen::build<Tree>(rc::gen::set(&Tree::value));
  }
  return rc::gen::build<Tree>(
      rc::gen::set(&Tree::value),
      rc::gen::set(&Tree::kids,
                   rc::gen::resize(3, rc::gen::container<std::vector<Tree>>(
                                          rc::gen::lazy([depth] { return GenTree(depth - 1); })))));
}

rc::Gen<Alt> GenAlt() {
  return rc::gen::oneOf(
      rc::gen::map(rc::gen::arbitrary<uint32_t>(), [](uint32_t x) { return Alt(std::in_place_index<0>, x); }),
      rc::gen::map(GenUtf8(), [](std::string s) { return Alt(std::in_place_index<1>, std::move(s)); }),
      rc::gen::map(GenLeaf(), [](Leaf l) { return Alt(std::in_place_index<2>, std::move(l)); }),
      rc::gen::map(rc::gen::arbitrary<std::vector<uint8_t>>(),
                   [](std::vector<uint8_t> b) { return Alt(std::in_place_index<3>, std::move(b)); }),
      rc::gen::map(GenOptional(rc::gen::arbitrary<int8_t>()),
                   [](std::optional<int8_t> o) { return Alt(std::in_place_index<4>, o); }));
}

// Inner containers get a fraction of the size budget so nested values stay
// small (a few KiB) and each property runs in well under a second.
template <typename T>
rc::Gen<T> Small(rc::Gen<T> g) {
  return rc::gen::scale(0.15, std::move(g));
}

rc::Gen<Value> GenValue() {
  return rc::gen::build<Value>(
      rc::gen::set(&Value::u8), rc::gen::set(&Value::i64), rc::gen::set(&Value::f64_bits),
      rc::gen::set(&Value::text, GenUtf8()), rc::gen::set(&Value::blob),
      rc::gen::set(&Value::numbers),
      rc::gen::set(&Value::leaves, rc::gen::container<std::vector<Leaf>>(Small(GenLeaf()))),
      rc::gen::set(&Value::by_name, Small(rc::gen::container<std::map<std::string, Leaf>>(
                                        GenUtf8(), GenLeaf()))),
      rc::gen::set(&Value::index,
                   Small(rc::gen::container<std::map<uint32_t, std::vector<std::string>>>(
                       rc::gen::arbitrary<uint32_t>(),
                       rc::gen::container<std::vector<std::string>>(GenUtf8())))),
      rc::gen::set(&Value::maybe_leaf, GenOptional(GenLeaf())),
      rc::gen::set(&Value::maybe_maybe, GenOptional(GenOptional(rc::gen::arbitrary<bool>()))), rc::gen::set(&Value::alt, GenAlt()),
      rc::gen::set(&Value::alts, rc::gen::resize(8, rc::gen::container<std::vector<Alt>>(GenAlt()))),
      // (resize(8) also bounds the strings inside the alternatives)
      rc::gen::set(&Value::tree, GenTree(4)));
}

std::vector<uint8_t> EncodeOk(const WithDouble& v) {
  Result<EncodedMessage> m = EncodeMessage(v);
  RC_ASSERT(m.ok());
  RC_ASSERT(m->fds.empty());
  return std::move(m->bytes);
}

bool IsDecodeError(ErrorCode c) {
  return c == ErrorCode::kIncomplete || c == ErrorCode::kLimitExceeded ||
         c == ErrorCode::kMalformed;
}

// Decodes `bytes`; on success the re-encoding must be byte-identical.
void CheckCanonicalOrError(const std::vector<uint8_t>& bytes) {
  Result<WithDouble> r = DecodeMessage<WithDouble>(bytes);
  if (!r.ok()) {
    RC_ASSERT(IsDecodeError(r.error().code()));
    RC_ASSERT(!r.error().ToString().empty());
    return;
  }
  RC_TAG("decoded");
  const std::vector<uint8_t> again = EncodeOk(*r);
  RC_ASSERT(again == bytes);
}

RC_GTEST_PROP(CodecProperties, EncodeThenDecodeIsIdentity, ()) {
  WithDouble v;
  v.v = *GenValue();
  v.d = std::bit_cast<double>(v.v.f64_bits);
  const std::vector<uint8_t> bytes = EncodeOk(v);
  Result<WithDouble> back = DecodeMessage<WithDouble>(bytes);
  if (!back.ok()) RC_FAIL("decode of a valid encoding failed: " + back.error().ToString());
  RC_ASSERT(back->v == v.v);
  RC_ASSERT(std::bit_cast<uint64_t>(back->d) == v.v.f64_bits);
  RC_ASSERT(EncodeOk(*back) == bytes);
}

RC_GTEST_PROP(CodecProperties, StrictPrefixesOfAValidEncodingAreRejected, ()) {
  WithDouble v;
  v.v = *GenValue();
  const std::vector<uint8_t> bytes = EncodeOk(v);
  const size_t cut = *rc::gen::inRange<size_t>(0, bytes.size());
  const std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(cut));
  Result<WithDouble> r = DecodeMessage<WithDouble>(prefix);
  RC_ASSERT(!r.ok());
  RC_ASSERT(r.error().code() == ErrorCode::kIncomplete);
}

RC_GTEST_PROP(CodecProperties, ArbitraryBytesDecodeCanonicallyOrFail, (std::vector<uint8_t> bytes)) {
  CheckCanonicalOrError(bytes);
}

enum class Mutation { kFlip, kSet, kTruncate, kInsert, kErase };

RC_GTEST_PROP(CodecProperties, MutatedEncodingsDecodeCanonicallyOrFail, ()) {
  WithDouble v;
  v.v = *GenValue();
  std::vector<uint8_t> bytes = EncodeOk(v);
  const int n = *rc::gen::inRange(1, 4);
  for (int i = 0; i < n; ++i) {
    const Mutation mut = *rc::gen::element(Mutation::kFlip, Mutation::kSet, Mutation::kTruncate,
                                           Mutation::kInsert, Mutation::kErase);
    const size_t at = *rc::gen::inRange<size_t>(0, bytes.size() + 1);
    switch (mut) {
      case Mutation::kFlip:
        if (at < bytes.size()) bytes[at] ^= static_cast<uint8_t>(1u << *rc::gen::inRange(0, 8));
        break;
      case Mutation::kSet:
        if (at < bytes.size()) {
          bytes[at] = *rc::gen::element<uint8_t>(0, 1, 2, 0x7F, 0x80, 0xC0, 0xED, 0xF4, 0xFF);
        }
        break;
      case Mutation::kTruncate: bytes.resize(at); break;
      case Mutation::kInsert: bytes.insert(bytes.begin() + static_cast<ptrdiff_t>(at), *rc::gen::arbitrary<uint8_t>()); break;
      case Mutation::kErase:
        if (at < bytes.size()) bytes.erase(bytes.begin() + static_cast<ptrdiff_t>(at));
        break;
    }
  }
  CheckCanonicalOrError(bytes);
}

// Every position of a (small) valid encoding, set to each boundary byte:
// random mutation alone rarely hits the one byte that matters (a tag, a bool,
// a length), the sweep hits them all.
RC_GTEST_PROP(CodecProperties, EverySingleByteEditDecodesCanonicallyOrFails, ()) {
  WithDouble v;
  v.v = *rc::gen::resize(6, GenValue());
  const std::vector<uint8_t> bytes = EncodeOk(v);
  // One boundary byte per position (rotating with a random offset) keeps the
  // default run fast; long runs cover every combination.
  static constexpr uint8_t kEdits[] = {0, 1, 2, 0x80, 0xFF};
  const size_t offset = *rc::gen::inRange<size_t>(0, std::size(kEdits));
  for (size_t at = 0; at < bytes.size(); ++at) {
    const uint8_t b = kEdits[(at + offset) % std::size(kEdits)];
    if (bytes[at] == b) continue;
    std::vector<uint8_t> edited = bytes;
    edited[at] = b;
    CheckCanonicalOrError(edited);
  }
}

RC_GTEST_PROP(CodecProperties, GeneratedStringsAreValidUtf8, ()) {
  const std::string s = *GenUtf8();
  RC_ASSERT(IsValidUtf8(s));
}

UniqueFd OpenDevNull() {
  UniqueFd fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  RC_ASSERT(fd.valid());
  return fd;
}

// Descriptors and handles round-trip in slot order; a tampered descriptor or
// handle count fails cleanly; nothing leaks.
RC_GTEST_PROP(CodecProperties, OutOfBandValuesRoundTripWithoutLeaks, ()) {
  const size_t before = moat::testing::OpenFdCount();
  {
    WithOutOfBand v;
    const size_t nfds = *rc::gen::inRange<size_t>(0, 6);
    for (size_t i = 0; i < nfds; ++i) v.fds.push_back(OpenDevNull());
    if (*rc::gen::arbitrary<bool>()) v.maybe_fd = OpenDevNull();
    v.handles = *rc::gen::resize(
        limits::MAX_MESSAGE_HANDLE_COUNT,
        rc::gen::container<std::vector<MessagePipeHandleSlot>>(
            rc::gen::build<MessagePipeHandleSlot>(rc::gen::set(&MessagePipeHandleSlot::handle))));
    v.tag = *GenUtf8();
    Result<EncodedMessage> m = EncodeMessage(v);  // shares (dups) the descriptors
    RC_ASSERT(m.ok());
    const size_t total_fds = nfds + (v.maybe_fd ? 1 : 0);
    RC_ASSERT(m->fds.size() == total_fds);
    RC_ASSERT(m->handles.size() == v.handles.size());
    const int tamper = *rc::gen::inRange(0, 4);  // 0: none, 1: drop fd, 2: extra fd, 3: drop handle
    std::vector<UniqueFd> fds = std::move(m->fds);
    std::vector<uint64_t> handles = m->handles;
    if (tamper == 1 && !fds.empty()) fds.pop_back();
    if (tamper == 2) fds.push_back(OpenDevNull());
    if (tamper == 3 && !handles.empty()) handles.pop_back();
    const bool tampered = (tamper == 1 && total_fds > 0) || tamper == 2 ||
                          (tamper == 3 && !v.handles.empty());
    std::vector<int> raw;
    for (const UniqueFd& fd : fds) raw.push_back(fd.get());
    Result<WithOutOfBand> back = DecodeMessage<WithOutOfBand>(m->bytes, fds, handles);
    RC_ASSERT(back.ok() == !tampered);
    if (back.ok()) {
      RC_ASSERT(back->fds.size() == nfds);
      for (size_t i = 0; i < nfds; ++i) RC_ASSERT(back->fds[i].get() == raw[i]);
      RC_ASSERT(back->maybe_fd.has_value() == v.maybe_fd.has_value());
      if (back->maybe_fd) RC_ASSERT(back->maybe_fd->get() == raw[nfds]);
      RC_ASSERT(back->handles == v.handles);
      RC_ASSERT(back->tag == v.tag);
    } else {
      RC_ASSERT(back.error().code() == ErrorCode::kMalformed ||
                back.error().code() == ErrorCode::kIncomplete);
    }
  }
  RC_ASSERT(moat::testing::OpenFdCount() == before);
}

}  // namespace moat::proptest
