// moat: the command-line tool. `moat help` lists the subcommands.
#include <cstdio>
#include <cstring>
#include <string>

#include "tools/cli/command.h"

namespace moat::tools {

std::map<std::string, Command>& Commands() {
  static auto* commands = new std::map<std::string, Command>();
  return *commands;
}

}  // namespace moat::tools

namespace {

int Usage(FILE* out) {
  std::fprintf(out, "usage: moat <command> [args]\n\ncommands:\n");
  for (const auto& [name, command] : moat::tools::Commands()) {
    std::fprintf(out, "  %-10s %s\n", name.c_str(), command.summary.c_str());
  }
  return out == stdout ? 0 : 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "help") == 0 || std::strcmp(argv[1], "--help") == 0) {
    return Usage(argc < 2 ? stderr : stdout);
  }
  auto& commands = moat::tools::Commands();
  auto it = commands.find(argv[1]);
  if (it == commands.end()) {
    std::fprintf(stderr, "moat: unknown command '%s'\n", argv[1]);
    return Usage(stderr);
  }
  // Exit statuses, for every subcommand: 0 for --help/-h, 2 for a usage
  // error. A subcommand that does not know --help rejects it as a usage error
  // after printing its usage: that usage is the help asked for.
  bool help = false;
  for (int i = 2; i < argc; ++i) {
    help = help || std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0;
  }
  const int status = it->second.run(argc - 1, argv + 1);
  return help && status == 2 ? 0 : status;
}
