#include "core/codec/utf8.h"

#include <gtest/gtest.h>

#include <string>

namespace moat {
namespace {

std::optional<size_t> Bad(const std::string& s) {
  return FindInvalidUtf8(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
}

TEST(Utf8, ValidBoundaries) {
  for (const std::string& s :
       {std::string(""), std::string("plain ascii, longer than eight bytes"), std::string("\0", 1),
        std::string("\x7F"), std::string("\xC2\x80"), std::string("\xDF\xBF"), std::string("\xE0\xA0\x80"),
        std::string("\xED\x9F\xBF"), std::string("\xEE\x80\x80"), std::string("\xEF\xBF\xBF"),
        std::string("\xF0\x90\x80\x80"), std::string("\xF4\x8F\xBF\xBF"),
        std::string("12345678\xE2\x82\xAC" "abcdefgh")}) {
    EXPECT_FALSE(Bad(s).has_value()) << s;
  }
}

TEST(Utf8, InvalidClassesReportFirstBadByte) {
  EXPECT_EQ(Bad("\x80"), 0u);                        // lone continuation
  EXPECT_EQ(Bad("abc\xC0\x80"), 3u);                 // overlong NUL
  EXPECT_EQ(Bad("\xC1\xBF"), 0u);                    // overlong
  EXPECT_EQ(Bad("\xE0\x9F\xBF"), 0u);                // overlong 3-byte
  EXPECT_EQ(Bad("\xF0\x8F\xBF\xBF"), 0u);            // overlong 4-byte
  EXPECT_EQ(Bad("\xED\xA0\x80"), 0u);                // high surrogate
  EXPECT_EQ(Bad("\xED\xBF\xBF"), 0u);                // low surrogate
  EXPECT_EQ(Bad("\xF4\x90\x80\x80"), 0u);            // U+110000
  EXPECT_EQ(Bad("\xF5\x80\x80\x80"), 0u);            // lead F5
  EXPECT_EQ(Bad("\xFF"), 0u);
  EXPECT_EQ(Bad("0123456789\xE2\x82"), 10u);         // truncated after the ASCII fast path
  EXPECT_EQ(Bad("\xE2\x82\x41"), 0u);                // bad third byte
  EXPECT_EQ(Bad("\xF0\x9F\x98"), 0u);                // truncated 4-byte
}

TEST(Utf8, AppendUtf8EncodesEachLengthClass) {
  std::string s;
  for (uint32_t cp : {0x24u, 0x7FFu, 0x20ACu, 0xFFFFu, 0x1F600u, 0x10FFFFu}) AppendUtf8(s, cp);
  EXPECT_EQ(s, "\x24" "\xDF\xBF" "\xE2\x82\xAC" "\xEF\xBF\xBF" "\xF0\x9F\x98\x80"
               "\xF4\x8F\xBF\xBF");
  EXPECT_TRUE(IsValidUtf8(s));
}

TEST(Utf8DeathTest, AppendUtf8RejectsNonScalarValues) {
  std::string s;
  EXPECT_DEATH(AppendUtf8(s, 0xD800), "not a Unicode scalar value");
  EXPECT_DEATH(AppendUtf8(s, 0x110000), "not a Unicode scalar value");
}

}  // namespace
}  // namespace moat
