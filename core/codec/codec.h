// moat::Codec<T>: the typed values of moat messages (R5, R6, R7), and the
// one-shot EncodeMessage / DecodeMessage.
//
// Built in: every integer width, bool (0/1 only), double, std::string (valid
// UTF-8), std::vector<uint8_t> (bytes), std::vector<T>, std::map<K, V> (keys
// strictly increasing on the wire), std::optional<T>, std::variant<Ts...>,
// UniqueFd, MessagePipeHandleSlot, SharedMemoryRegion (core/codec/shared_memory.h),
// plus your enums and structs:
//
//   namespace app {
//   enum class Color : uint8_t { kRed = 1, kGreen = 2 };
//   MOAT_CODEC_ENUM(Color, kRed, kGreen)          // only these values decode
//   struct Item { uint16_t id; std::string name; Color color; };
//   MOAT_CODEC_STRUCT(Item, id, name, color)      // every field, in order
//   struct Envelope { std::vector<Item> items; };
//   MOAT_CODEC_STRUCT(Envelope, items)
//   }  // namespace app
//
//   Result<EncodedMessage> msg = EncodeMessage(envelope);
//   Result<app::Envelope> back = DecodeMessage<app::Envelope>(msg->bytes, msg->fds);
//
// Both macros go in the namespace of the type (found by argument-dependent
// lookup), after its definition. MOAT_CODEC_STRUCT must list every
// non-static data member (checked at compile time by a structured binding);
// the list order is the wire order. The exact byte layout is in
// docs/wire-format-codec.md.
//
// A custom Codec is an explicit specialization `template <> struct
// moat::Codec<T>` with Encode, Decode and kMinEncodedSize (the fewest bytes
// any encoding of T occupies; containers rely on it to bound reservations).
#ifndef MOAT_CORE_CODEC_CODEC_H_
#define MOAT_CORE_CODEC_CODEC_H_

#include <algorithm>
#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "core/check.h"
#include "core/checked.h"
#include "core/codec/decoder.h"
#include "core/codec/encoder.h"
#include "core/codec/internal/for_each.h"
#include "core/decoder_registry.h"
#include "core/error.h"
#include "core/unique_fd.h"
#include "limits/limits.h"

namespace moat {

// A message-pipe handle carried by a message. The codec treats `handle` as
// opaque: it is attached out of band (Encoder::AttachHandle) and the payload
// carries only its u32 slot. The ports layer gives it meaning.
struct MessagePipeHandleSlot {
  uint64_t handle = 0;
  bool operator==(const MessagePipeHandleSlot&) const = default;
};

// ---------------------------------------------------------------------------
// Reflection plumbing for MOAT_CODEC_STRUCT / MOAT_CODEC_ENUM.
namespace codec_internal {

template <typename S, typename M>
struct Field {
  using Type = M;
  const char* name;
  M S::*member;
};

template <typename S, typename... Fs>
struct StructInfo {
  const char* name;
  std::tuple<Fs...> fields;
};

template <typename S, typename... Fs>
constexpr StructInfo<S, Fs...> MakeStructInfo(const char* name, Fs... fields) {
  return StructInfo<S, Fs...>{name, std::tuple<Fs...>(fields...)};
}

template <typename E, size_t N>
struct EnumInfo {
  const char* name;
  std::array<E, N> values;
};

template <typename E, size_t N>
constexpr EnumInfo<E, N> MakeEnumInfo(const char* name, std::array<E, N> values) {
  return EnumInfo<E, N>{name, values};
}

// Poison overloads: found when no MOAT_CODEC_STRUCT/ENUM exists for a type,
// so the concepts below are false instead of ill-formed.
void MoatCodecStructInfo(...) = delete;
void MoatCodecEnumInfo(...) = delete;

template <typename T>
concept DescribedStruct = requires { MoatCodecStructInfo(static_cast<const T*>(nullptr)); };
template <typename T>
concept DescribedEnum =
    std::is_enum_v<T> && requires { MoatCodecEnumInfo(static_cast<const T*>(nullptr)); };

template <typename T>
constexpr auto StructInfoOf() {
  return MoatCodecStructInfo(static_cast<const T*>(nullptr));
}
template <typename T>
constexpr auto EnumInfoOf() {
  return MoatCodecEnumInfo(static_cast<const T*>(nullptr));
}

template <typename T>
concept PlainInteger = std::integral<T> && !std::same_as<T, bool>;

std::string IndexField(size_t index);  // "[index]"

}  // namespace codec_internal

// ---------------------------------------------------------------------------
// Scalars.

template <codec_internal::PlainInteger T>
struct Codec<T> {
  static constexpr size_t kMinEncodedSize = sizeof(T);
  static void Encode(Encoder& e, const T& v) {
    if constexpr (sizeof(T) == 1) e.WriteU8(static_cast<uint8_t>(v));
    else if constexpr (sizeof(T) == 2) e.WriteU16(static_cast<uint16_t>(v));
    else if constexpr (sizeof(T) == 4) e.WriteU32(static_cast<uint32_t>(v));
    else e.WriteU64(static_cast<uint64_t>(v));
  }
  static Result<T> Decode(Decoder& d) {
    using U = std::make_unsigned_t<T>;
    Result<U> r = [&] {
      if constexpr (sizeof(T) == 1) return d.ReadU8();
      else if constexpr (sizeof(T) == 2) return d.ReadU16();
      else if constexpr (sizeof(T) == 4) return d.ReadU32();
      else return d.ReadU64();
    }();
    if (!r.ok()) return std::move(r).error();
    return static_cast<T>(*r);
  }
};

template <>
struct Codec<bool> {
  static constexpr size_t kMinEncodedSize = 1;
  static void Encode(Encoder& e, bool v) { e.WriteBool(v); }
  static Result<bool> Decode(Decoder& d) { return d.ReadBool(); }
};

template <>
struct Codec<double> {
  static constexpr size_t kMinEncodedSize = 8;
  static void Encode(Encoder& e, double v) { e.WriteF64(v); }
  static Result<double> Decode(Decoder& d) { return d.ReadF64(); }
};

template <codec_internal::DescribedEnum E>
struct Codec<E> {
  using Underlying = std::underlying_type_t<E>;
  static constexpr auto kInfo = codec_internal::EnumInfoOf<E>();
  static constexpr size_t kMinEncodedSize = sizeof(Underlying);

  static constexpr bool IsDeclared(E v) {
    for (E declared : kInfo.values) {
      if (declared == v) return true;
    }
    return false;
  }
  static void Encode(Encoder& e, const E& v) {
    MOAT_ASSERT(IsDeclared(v), "encoding undeclared ", kInfo.name, " value ",
                +static_cast<Underlying>(v));
    Codec<Underlying>::Encode(e, static_cast<Underlying>(v));
  }
  static Result<E> Decode(Decoder& d) {
    Result<Underlying> raw = Codec<Underlying>::Decode(d);
    if (!raw.ok()) return std::move(raw).error();
    const E v = static_cast<E>(*raw);
    // Attack: an undeclared enum value steering a switch into a default or
    // unreachable branch, or indexing a table by it.
    MOAT_REQUIRE(IsDeclared(v), ErrorCode::kMalformed, "value ", +*raw, " is not a declared ",
                 kInfo.name);
    return v;
  }
};

// ---------------------------------------------------------------------------
// Strings and bytes.

template <>
struct Codec<std::string> {
  static constexpr size_t kMinEncodedSize = 4;
  static void Encode(Encoder& e, const std::string& v) { e.WriteString(v); }
  static Result<std::string> Decode(Decoder& d) { return d.ReadString(); }
};

// vector<uint8_t> is "bytes": same wire form as a vector of u8, bulk-copied.
template <>
struct Codec<std::vector<uint8_t>> {
  static constexpr size_t kMinEncodedSize = 4;
  static void Encode(Encoder& e, const std::vector<uint8_t>& v) { e.WriteBytes(v); }
  static Result<std::vector<uint8_t>> Decode(Decoder& d) { return d.ReadBytes(); }
};

// ---------------------------------------------------------------------------
// Containers.

namespace codec_internal {

// The shared bound of every counted container: `count` elements of at least
// `min_element_size` bytes each must fit in what is left of the input, so
// reserving `count` elements is justified by bytes the peer really sent.
Status CheckElementsFit(Decoder& d, uint32_t count, size_t min_element_size, std::string_view what);

// Heap bytes per element that both sides charge against max_decoded_memory
// (Encoder::ChargeMemory, Decoder::ChargeMemory): a vector's buffer slot, or
// a map entry plus its red-black tree node header (colour and three links).
template <typename T>
inline constexpr size_t kVectorElementMemory = sizeof(T);
template <typename K, typename V>
inline constexpr size_t kMapEntryMemory = sizeof(std::pair<const K, V>) + 4 * sizeof(void*);

}  // namespace codec_internal

template <typename T>
struct Codec<std::vector<T>> {
  static constexpr size_t kMinEncodedSize = 4;

  static void Encode(Encoder& e, const std::vector<T>& v) {
    e.WriteSize(v.size());
    e.ChargeMemory(v.size(), codec_internal::kVectorElementMemory<T>);
    if constexpr (codec_internal::PlainInteger<T>) {
      e.WriteRaw(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(v.data()),
                                          v.size() * sizeof(T)));
    } else {
      for (const T& x : v) e.Encode(x);
    }
  }

  static Result<std::vector<T>> Decode(Decoder& d) {
    static_assert(Codec<T>::kMinEncodedSize > 0,
                  "vector elements must occupy at least one byte on the wire, or a 4-byte "
                  "message could make us build 64M elements");
    Result<uint32_t> n = d.DecodeSize("vector");
    if (!n.ok()) return std::move(n).error();
    MOAT_TRY(codec_internal::CheckElementsFit(d, *n, Codec<T>::kMinEncodedSize, "vector"));
    MOAT_TRY(d.ChargeMemory(*n, codec_internal::kVectorElementMemory<T>, "vector"));
    std::vector<T> out;
    if constexpr (codec_internal::PlainInteger<T>) {
      // Little-endian host (static_assert in encoder.h): the wire is the array.
      Result<std::span<const uint8_t>> raw = d.ReadRaw(size_t{*n} * sizeof(T));
      if (!raw.ok()) return std::move(raw).error();
      out.resize(*n);
      if (*n != 0) std::memcpy(out.data(), raw->data(), raw->size());
    } else {
      out.reserve(*n);  // bounded by CheckElementsFit
      for (uint32_t i = 0; i < *n; ++i) {
        Result<T> x = d.template Decode<T>();
        if (!x.ok()) return std::move(x).error().WithField(codec_internal::IndexField(i));
        out.push_back(std::move(*x));
      }
    }
    return out;
  }
};

template <typename K, typename V>
struct Codec<std::map<K, V>> {
  static constexpr size_t kMinEncodedSize = 4;

  // std::map iterates in key order, so the encoding is canonical.
  static void Encode(Encoder& e, const std::map<K, V>& m) {
    e.WriteSize(m.size());
    e.ChargeMemory(m.size(), codec_internal::kMapEntryMemory<K, V>);
    for (const auto& [k, v] : m) {
      e.Encode(k);
      e.Encode(v);
    }
  }

  static Result<std::map<K, V>> Decode(Decoder& d) {
    constexpr size_t kEntry = Codec<K>::kMinEncodedSize + Codec<V>::kMinEncodedSize;
    static_assert(kEntry > 0, "map entries must occupy at least one byte on the wire");
    Result<uint32_t> n = d.DecodeSize("map");
    if (!n.ok()) return std::move(n).error();
    MOAT_TRY(codec_internal::CheckElementsFit(d, *n, kEntry, "map"));
    MOAT_TRY(d.ChargeMemory(*n, codec_internal::kMapEntryMemory<K, V>, "map"));
    std::map<K, V> out;
    for (uint32_t i = 0; i < *n; ++i) {
      const size_t key_at = d.offset();
      Result<K> k = d.template Decode<K>();
      if (!k.ok()) {
        return std::move(k).error().WithField("key").WithField(codec_internal::IndexField(i));
      }
      // Attack: duplicate or unsorted keys give one message two meanings (which
      // duplicate wins?) and defeat byte-level comparison of messages.
      if (__builtin_expect(i > 0 && !(std::prev(out.end())->first < *k), 0)) {
        return Error(ErrorCode::kMalformed,
                     "key is not greater than the previous key (map keys must be sorted and unique)")
            .WithField("key")
            .WithField(codec_internal::IndexField(i))
            .AtOffset(key_at);
      }
      Result<V> v = d.template Decode<V>();
      if (!v.ok()) {
        return std::move(v).error().WithField("value").WithField(codec_internal::IndexField(i));
      }
      out.emplace_hint(out.end(), std::move(*k), std::move(*v));
    }
    return out;
  }
};

template <typename T>
struct Codec<std::optional<T>> {
  static constexpr size_t kMinEncodedSize = 1;
  static void Encode(Encoder& e, const std::optional<T>& v) {
    e.WriteU8(v.has_value() ? 1 : 0);
    if (v) e.Encode(*v);
  }
  static Result<std::optional<T>> Decode(Decoder& d) {
    Result<uint8_t> tag = d.ReadU8();
    if (!tag.ok()) return std::move(tag).error();
    // Attack: a tag byte other than 0/1 (a second encoding of the same value).
    MOAT_REQUIRE(*tag <= 1, ErrorCode::kMalformed, "optional tag ", +*tag, " is not 0 or 1");
    if (*tag == 0) return std::optional<T>();
    Result<T> v = d.template Decode<T>();
    if (!v.ok()) return std::move(v).error();
    return std::optional<T>(std::move(*v));
  }
};

template <typename... Ts>
struct Codec<std::variant<Ts...>> {
  using Variant = std::variant<Ts...>;
  static constexpr size_t kMinEncodedSize = 4 + std::min({Codec<Ts>::kMinEncodedSize...});

  static void Encode(Encoder& e, const Variant& v) {
    MOAT_ASSERT(!v.valueless_by_exception(), "encoding a valueless variant");
    e.WriteU32(static_cast<uint32_t>(v.index()));
    std::visit([&e](const auto& alt) { e.Encode(alt); }, v);
  }

  static Result<Variant> Decode(Decoder& d) {
    Result<uint32_t> index = d.ReadU32();
    if (!index.ok()) return std::move(index).error();
    // Attack: an out-of-range index dispatching through a table past its end.
    MOAT_REQUIRE(*index < sizeof...(Ts), ErrorCode::kMalformed, "variant index ", *index,
                 " out of range (", sizeof...(Ts), " alternatives)");
    return kDecoders[*index](d);
  }

 private:
  template <size_t I>
  static Result<Variant> DecodeAlternative(Decoder& d) {
    using Alt = std::variant_alternative_t<I, Variant>;
    Result<Alt> alt = d.template Decode<Alt>();
    if (!alt.ok()) return std::move(alt).error();
    return Variant(std::in_place_index<I>, std::move(*alt));
  }
  template <size_t... Is>
  static constexpr auto MakeDecoders(std::index_sequence<Is...>) {
    return std::array<Result<Variant> (*)(Decoder&), sizeof...(Is)>{&DecodeAlternative<Is>...};
  }
  static constexpr auto kDecoders = MakeDecoders(std::index_sequence_for<Ts...>{});
};

// ---------------------------------------------------------------------------
// Out-of-band values: descriptors and message-pipe handles.

template <>
struct Codec<UniqueFd> {
  static constexpr size_t kMinEncodedSize = 4;
  // Encoding by const reference shares the descriptor: it is dup()ed. To hand
  // over the original, write enc.WriteU32(enc.AttachFd(std::move(fd))).
  static void Encode(Encoder& e, const UniqueFd& fd);
  static Result<UniqueFd> Decode(Decoder& d) { return d.TakeFd(); }
};

template <>
struct Codec<MessagePipeHandleSlot> {
  static constexpr size_t kMinEncodedSize = 4;
  static void Encode(Encoder& e, const MessagePipeHandleSlot& h) { e.WriteU32(e.AttachHandle(h.handle)); }
  static Result<MessagePipeHandleSlot> Decode(Decoder& d) {
    Result<uint64_t> h = d.TakeHandle();
    if (!h.ok()) return std::move(h).error();
    return MessagePipeHandleSlot{*h};
  }
};

// ---------------------------------------------------------------------------
// Structs.

template <codec_internal::DescribedStruct S>
struct Codec<S> {
  static constexpr auto kInfo = codec_internal::StructInfoOf<S>();
  static constexpr size_t kMinEncodedSize = std::apply(
      [](const auto&... f) {
        return (size_t{0} + ... + Codec<typename std::decay_t<decltype(f)>::Type>::kMinEncodedSize);
      },
      kInfo.fields);

  static void Encode(Encoder& e, const S& v) {
    std::apply([&](const auto&... f) { (e.Encode(v.*(f.member)), ...); }, kInfo.fields);
  }

  static Result<S> Decode(Decoder& d) {
    S out{};
    std::optional<Error> error;
    std::apply([&](const auto&... f) { (DecodeField(d, out, f, error) && ...); }, kInfo.fields);
    if (__builtin_expect(error.has_value(), 0)) {
      // The outermost struct names itself: "Envelope.items[3].name".
      if (d.depth() == 1) error->WithField(kInfo.name);
      return std::move(*error);
    }
    return out;
  }

 private:
  template <typename M>
  static bool DecodeField(Decoder& d, S& out, const codec_internal::Field<S, M>& f,
                          std::optional<Error>& error) {
    Result<M> r = d.template Decode<M>();
    if (__builtin_expect(!r.ok(), 0)) {
      error.emplace(std::move(r).error().WithField(f.name));
      return false;
    }
    out.*(f.member) = std::move(*r);
    return true;
  }
};

// ---------------------------------------------------------------------------
// One-shot use.

struct EncodedMessage {
  std::vector<uint8_t> bytes;
  std::vector<UniqueFd> fds;
  std::vector<uint64_t> handles;
};

// Encodes one value as a whole message (asserts the payload limit). An error
// only if the OS failed (dup() of a shared descriptor).
template <typename T>
Result<EncodedMessage> EncodeMessage(
    const T& value, const limits::ConnectionLimits& limits = limits::ConnectionLimits::Defaults()) {
  Encoder e(limits);
  e.Encode(value);
  MOAT_TRY(e.Finish());
  EncodedMessage out;
  out.bytes = e.TakeBytes();
  out.fds = e.TakeFds();
  out.handles = e.TakeHandles();
  return out;
}

// Decodes one value that must be the whole message: every byte, descriptor
// and handle consumed (Decoder::Finish), else an error.
MOAT_DECODER(codec_value)
template <typename T>
Result<T> DecodeMessage(std::span<const uint8_t> bytes, std::span<UniqueFd> fds = {},
                        std::span<const uint64_t> handles = {},
                        const limits::ConnectionLimits& limits = limits::ConnectionLimits::Defaults()) {
  Decoder d(bytes, fds, handles, limits);
  Result<T> value = d.Decode<T>();
  if (!value.ok()) return value;
  MOAT_TRY(d.Finish());
  return value;
}

}  // namespace moat

// Describes an enum to the codec: only the listed enumerators decode.
#define MOAT_CODEC_ENUM(Type, ...)                                                           \
  [[maybe_unused]] constexpr auto MoatCodecEnumInfo(const Type*) {                           \
    using enum Type;                                                                         \
    return ::moat::codec_internal::MakeEnumInfo(#Type, std::to_array<Type>({__VA_ARGS__})); \
  }

#define MOAT_CODEC_INTERNAL_FIELD(Type, f) \
  ::moat::codec_internal::Field<Type, decltype(Type::f)> { #f, &Type::f }

// Describes a struct to the codec. Lists every data member in wire order; the
// structured binding fails to compile if a member is missing from the list.
#define MOAT_CODEC_STRUCT(Type, ...)                                                         \
  [[maybe_unused]] constexpr auto MoatCodecStructInfo(const Type*) {                         \
    return ::moat::codec_internal::MakeStructInfo<Type>(                                     \
        #Type, MOAT_CODEC_FOR_EACH(MOAT_CODEC_INTERNAL_FIELD, Type, __VA_ARGS__));            \
  }                                                                                          \
  [[maybe_unused]] inline void MoatCodecStructFieldCountCheck(Type& moat_codec_value) {      \
    [[maybe_unused]] auto& [__VA_ARGS__] = moat_codec_value;                                 \
  }

#endif  // MOAT_CORE_CODEC_CODEC_H_
