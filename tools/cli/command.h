// The `moat` command-line tool's subcommand registry. Each subcommand lives in
// its own package (tools/inspect, tools/bench, tools/demo, tools/fuzz) and
// registers itself; //tools:moat links them all.
//
//   MOAT_COMMAND(inspect, "decode a captured frame or fuzzer input", RunInspect);
#ifndef MOAT_TOOLS_CLI_COMMAND_H_
#define MOAT_TOOLS_CLI_COMMAND_H_

#include <map>
#include <string>

namespace moat::tools {

struct Command {
  std::string summary;
  int (*run)(int argc, char** argv);  // argv[0] is the subcommand name
};

std::map<std::string, Command>& Commands();

struct CommandRegistration {
  CommandRegistration(const char* name, const char* summary, int (*run)(int, char**)) {
    Commands()[name] = Command{summary, run};
  }
};

}  // namespace moat::tools

#define MOAT_COMMAND(name, summary, fn) \
  static ::moat::tools::CommandRegistration moat_command_##name(#name, summary, fn)

#endif  // MOAT_TOOLS_CLI_COMMAND_H_
