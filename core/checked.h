// moat::Checked<T>: integer arithmetic that records overflow instead of
// wrapping or invoking undefined behaviour.
//
// All size, index and count arithmetic on peer-controlled values goes through
// Checked (frame size = header + payload, read-index advance, descriptor
// counts, element count x element size). Overflow is sticky: once any
// operation overflows, the value stays overflowed through later operations,
// and reading it with value() is a programmer error (MOAT_ASSERT), so code
// must test has_overflow() first.
//
//   Checked<size_t> end = offset;
//   end += length;                       // length came from the peer
//   if (end.has_overflow() || end.value() > buffer.size()) return error;
//
// Works for every standard signed and unsigned integer width.
#ifndef MOAT_CORE_CHECKED_H_
#define MOAT_CORE_CHECKED_H_

#include <concepts>
#include <limits>
#include <optional>
#include <type_traits>

#include "core/check.h"

namespace moat {

template <typename T>
concept CheckedInteger = std::integral<T> && !std::same_as<T, bool>;

// True when `value` is representable as To.
template <CheckedInteger To, CheckedInteger From>
constexpr bool IsInRange(From value) {
  return std::in_range<To>(value);
}

template <CheckedInteger T>
class Checked {
 public:
  constexpr Checked() = default;
  constexpr Checked(T value) : value_(value) {}  // NOLINT: implicit by design

  // Converts with a range check: out-of-range values become overflowed.
  template <CheckedInteger U>
  static constexpr Checked From(U value) {
    Checked out;
    if (std::in_range<T>(value)) {
      out.value_ = static_cast<T>(value);
    } else {
      out.overflow_ = true;
    }
    return out;
  }
  template <CheckedInteger U>
  static constexpr Checked From(Checked<U> other) {
    if (other.has_overflow()) return Overflowed();
    return From(other.value_unchecked());
  }
  static constexpr Checked Overflowed() {
    Checked out;
    out.overflow_ = true;
    return out;
  }

  constexpr bool has_overflow() const { return overflow_; }

  // The value; calling this on an overflowed value is a bug in our code.
  constexpr T value() const {
    MOAT_ASSERT(!overflow_, "Checked<T>::value() on an overflowed value");
    return value_;
  }
  // The value if it did not overflow.
  constexpr std::optional<T> get() const {
    if (overflow_) return std::nullopt;
    return value_;
  }
  // For Checked<U>::From and tests; meaningless after overflow.
  constexpr T value_unchecked() const { return value_; }

  constexpr Checked& operator+=(Checked rhs) {
    overflow_ |= rhs.overflow_ || __builtin_add_overflow(value_, rhs.value_, &value_);
    return *this;
  }
  constexpr Checked& operator-=(Checked rhs) {
    overflow_ |= rhs.overflow_ || __builtin_sub_overflow(value_, rhs.value_, &value_);
    return *this;
  }
  constexpr Checked& operator*=(Checked rhs) {
    overflow_ |= rhs.overflow_ || __builtin_mul_overflow(value_, rhs.value_, &value_);
    return *this;
  }
  constexpr Checked& operator++() { return *this += T{1}; }
  constexpr Checked& operator--() { return *this -= T{1}; }

  friend constexpr Checked operator+(Checked a, Checked b) { return a += b; }
  friend constexpr Checked operator-(Checked a, Checked b) { return a -= b; }
  friend constexpr Checked operator*(Checked a, Checked b) { return a *= b; }

  // Comparisons: an overflowed value compares as larger than every in-range
  // value and equal only to another overflowed value, so a bound check
  // `x <= limit` is false for overflowed x. Prefer testing has_overflow()
  // explicitly; this ordering is the safe default when one forgets.
  friend constexpr bool operator==(Checked a, Checked b) {
    if (a.overflow_ || b.overflow_) return a.overflow_ == b.overflow_;
    return a.value_ == b.value_;
  }
  friend constexpr bool operator<(Checked a, Checked b) {
    if (a.overflow_) return false;
    if (b.overflow_) return true;
    return a.value_ < b.value_;
  }
  friend constexpr bool operator>(Checked a, Checked b) { return b < a; }
  friend constexpr bool operator<=(Checked a, Checked b) { return !(b < a); }
  friend constexpr bool operator>=(Checked a, Checked b) { return !(a < b); }

 private:
  T value_ = 0;
  bool overflow_ = false;
};

// Adds without wrapping; nullopt on overflow. Convenience for one-off sums.
template <CheckedInteger T>
constexpr std::optional<T> CheckedAdd(T a, T b) {
  return (Checked<T>(a) + Checked<T>(b)).get();
}
template <CheckedInteger T>
constexpr std::optional<T> CheckedMul(T a, T b) {
  return (Checked<T>(a) * Checked<T>(b)).get();
}

}  // namespace moat

#endif  // MOAT_CORE_CHECKED_H_
