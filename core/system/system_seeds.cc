// Seeds for fuzz/system_endpoint_fuzzer.cc, from the real encoder. Layout of
// an input (choices are read from the end): payload, then num_fds, each
// port's kind (last port first), num_ports, mode.
#include <string>
#include <vector>

#include "core/system/endpoint_serialization.h"
#include "corpus/seed_registry.h"

namespace {

// The fuzzer's choices after `payload`.
std::vector<uint8_t> WithChoices(std::vector<uint8_t> out, uint8_t mode, std::vector<uint8_t> kinds,
                                 uint8_t num_fds) {
  out.push_back(num_fds);
  for (auto it = kinds.rbegin(); it != kinds.rend(); ++it) out.push_back(*it);
  out.push_back(static_cast<uint8_t>(kinds.size()));
  out.push_back(mode);
  return out;
}

// kinds: 0 fresh, 1 missing, 2 closed, 3 bound, 4 duplicate (see the fuzzer).
std::vector<uint8_t> Seed(uint8_t mode, size_t num_endpoints, std::vector<uint8_t> kinds,
                          uint8_t num_fds, std::string_view user) {
  std::vector<uint8_t> u(user.begin(), user.end());
  std::vector<uint8_t> out = moat::system::EncodeSystemMessage(u, num_endpoints);
  return WithChoices(std::move(out), mode, std::move(kinds), num_fds);
}

MOAT_REGISTER_SEEDS(system_endpoint_fuzzer, [](moat::corpus::SeedSink& sink) {
  sink.Add("decode_no_handles", Seed(0, 0, {}, 0, "hello"));
  sink.Add("decode_one_endpoint", Seed(0, 1, {0}, 0, "payload"));
  sink.Add("decode_two_endpoints_user_fds", Seed(0, 2, {0, 0}, 2, "xy"));
  sink.Add("decode_missing_port", Seed(0, 1, {1}, 0, ""));
  sink.Add("decode_closed_port", Seed(0, 1, {2}, 0, ""));
  sink.Add("decode_bound_port", Seed(0, 1, {3}, 0, ""));
  sink.Add("decode_duplicate_port", Seed(0, 2, {0, 4}, 0, ""));
  // A table of zero handles (an encoded header, count cleared) in a message
  // that carries a port.
  std::vector<uint8_t> zero_table = moat::system::EncodeSystemMessage({}, 1);
  zero_table.resize(moat::system::kSystemHeaderSize);
  zero_table[4] = 0;
  sink.Add("decode_unaccounted_port", WithChoices(std::move(zero_table), 0, {0}, 0));
  sink.Add("pipe_no_handles", Seed(1, 0, {}, 1, "through a pipe"));
  sink.Add("pipe_one_endpoint", Seed(1, 1, {0}, 0, "with an endpoint"));
  sink.Add("pipe_endpoint_without_port", Seed(1, 1, {}, 0, ""));
});

}  // namespace
