// `v4serve`: one binary, one subcommand per task (gen-model, inspect, ...).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <map>

#include "apps/command.h"

namespace v4::apps {
std::vector<CommandSpec>& command_registry() {
  static std::vector<CommandSpec> registry;
  return registry;
}
}  // namespace v4::apps

int main(int argc, char** argv) {
  CLI::App app{"v4serve: a serving system for DeepSeek-V4-Flash"};
  app.require_subcommand(1);
  std::map<CLI::App*, std::function<int()>> runners;
  for (auto& spec : v4::apps::command_registry()) {
    CLI::App* sub = app.add_subcommand(spec.name, spec.description);
    runners[sub] = spec.setup(*sub);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  for (auto& [sub, run] : runners) {
    if (sub->parsed()) return run();
  }
  return 2;
}
