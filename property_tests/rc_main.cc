// Test main for the property tests: gives every model a fixed, modest default
// rapidcheck configuration so `bazel test //property_tests/...` is fast and
// deterministic, while RC_PARAMS (passed with --test_env=RC_PARAMS) overrides it
// for long runs and for replaying a shrunk counterexample:
//
//   RC_PARAMS="max_success=100000 seed=42" bazel test --test_env=RC_PARAMS //property_tests/...
//   RC_PARAMS="reproduce=<string printed by the failure>" bazel test --test_env=RC_PARAMS ...
//
// rapidcheck reads RC_PARAMS once, lazily, on the first property: setting it
// here before RUN_ALL_TESTS is early enough.
#include <cstdlib>

#include <gtest/gtest.h>

namespace {
// Fixed seed: the default run is reproducible; a long run picks its own seed.
constexpr const char* kDefaultParams = "max_success=300 max_size=80 seed=20240601";
}  // namespace

int main(int argc, char** argv) {
  const char* params = std::getenv("RC_PARAMS");
  if (params == nullptr || params[0] == '\0') ::setenv("RC_PARAMS", kDefaultParams, 1);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
