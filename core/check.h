// The two kinds of check in moat, deliberately spelled differently.
//
//   MOAT_REQUIRE(cond, code, parts...)   -- INPUT check. The condition is about
//       data that came from a peer (or the OS). Failing it is expected under
//       attack: it returns moat::Error(code, "parts...") from the enclosing
//       function, which must return Status or Result<T>. The caller turns it
//       into a disconnect of that peer. Never aborts.
//
//   MOAT_ASSERT(cond, parts...)          -- BUG check. The condition is about
//       our own code or a local caller's arguments on the sending side
//       (over-limit payload, invalid descriptor, container over u32). Failing
//       it is a programmer error: print file:line and abort, in every build
//       mode. Never used on peer-controlled values.
//
// Example:
//   // Attack: a peer claims 4 GiB to make us allocate before reading.
//   MOAT_REQUIRE(n <= limits::MAX_DECODED_SIZE, ErrorCode::kLimitExceeded,
//                "length ", n, " exceeds MAX_DECODED_SIZE ", limits::MAX_DECODED_SIZE);
//   MOAT_ASSERT(fd >= 0, "encoding an invalid descriptor");
//
// MOAT_TRY(expr) propagates an error Status/Result; MOAT_ASSIGN_OR_RETURN(lhs,
// expr) unwraps a Result<T> into lhs or propagates.
#ifndef MOAT_CORE_CHECK_H_
#define MOAT_CORE_CHECK_H_

#include <sstream>
#include <string>
#include <utility>

#include "core/error.h"

namespace moat::internal {

template <typename... Parts>
std::string Concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}

[[noreturn]] void AssertionFailed(const char* file, int line, const char* condition,
                                  const std::string& message);

}  // namespace moat::internal

#define MOAT_REQUIRE(cond, code, ...)                                              \
  do {                                                                             \
    if (__builtin_expect(!(cond), 0)) {                                            \
      return ::moat::Error((code), ::moat::internal::Concat(__VA_ARGS__));         \
    }                                                                              \
  } while (0)

#define MOAT_ASSERT(cond, ...)                                                     \
  do {                                                                             \
    if (__builtin_expect(!(cond), 0)) {                                            \
      ::moat::internal::AssertionFailed(__FILE__, __LINE__, #cond,                 \
                                        ::moat::internal::Concat("" __VA_OPT__(, ) __VA_ARGS__)); \
    }                                                                              \
  } while (0)

#define MOAT_UNREACHABLE(...) \
  ::moat::internal::AssertionFailed(__FILE__, __LINE__, "unreachable", \
                                    ::moat::internal::Concat("" __VA_OPT__(, ) __VA_ARGS__))

#define MOAT_INTERNAL_CONCAT2(a, b) a##b
#define MOAT_INTERNAL_CONCAT(a, b) MOAT_INTERNAL_CONCAT2(a, b)

#define MOAT_TRY(expr)                                       \
  do {                                                       \
    auto&& moat_try_result_ = (expr);                        \
    if (!moat_try_result_.ok()) {                            \
      return std::move(moat_try_result_).error();            \
    }                                                        \
  } while (0)

#define MOAT_ASSIGN_OR_RETURN(lhs, expr) \
  MOAT_INTERNAL_ASSIGN_OR_RETURN(MOAT_INTERNAL_CONCAT(moat_result_, __LINE__), lhs, expr)

#define MOAT_INTERNAL_ASSIGN_OR_RETURN(tmp, lhs, expr) \
  auto tmp = (expr);                                   \
  if (!tmp.ok()) return std::move(tmp).error();        \
  lhs = std::move(tmp).value()

#endif  // MOAT_CORE_CHECK_H_
