#include "corpus/seed_registry.h"

namespace moat::corpus {

std::map<std::string, std::vector<SeedFunction>>& SeedRegistry() {
  static auto* registry = new std::map<std::string, std::vector<SeedFunction>>();
  return *registry;
}

}  // namespace moat::corpus
