#include "tools/fuzz/sha1.h"

#include <gtest/gtest.h>

#include <string>

namespace moat::tools::fuzz {
namespace {

// FIPS 180 test vectors, plus the padding edge cases (55/56/64 bytes).
TEST(Sha1, KnownVectors) {
  EXPECT_EQ(Sha1Hex(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  EXPECT_EQ(Sha1Hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(Sha1Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  EXPECT_EQ(Sha1Hex(std::string(1000000, 'a')), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
  EXPECT_EQ(Sha1Hex(std::string(55, 'a')), "c1c8bbdc22796e28c0e15163d20899b65621d65a");
  EXPECT_EQ(Sha1Hex(std::string(56, 'a')), "c2db330f6083854c99d4b5bfb6e8f29f201be699");
  EXPECT_EQ(Sha1Hex(std::string(64, 'a')), "0098ba824b5c16427bd7a1122a5a442a25ec644d");
}

// The name libFuzzer gave a real crash artifact ("moa\0\0\0o").
TEST(Sha1, MatchesLibFuzzerArtifactName) {
  EXPECT_EQ(Sha1Hex(std::string("moa\0\0\0o", 7)), "c94720e80e8da5afd1861151f5693a19b65c2b03");
}

}  // namespace
}  // namespace moat::tools::fuzz
