// `v4serve`: one binary, one subcommand per task (gen-model, inspect, ...).
#include <malloc.h>

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

namespace {

// Each forward step allocates and frees the same few megabytes of activations. With glibc's
// defaults those blocks are returned to the kernel after every step (mmap threshold, arena
// trimming) and come back as freshly zeroed pages, which cost ~8% of a decode step on the small
// preset. Fixed thresholds keep them in the allocator; blocks above 32 MiB are still mapped.
void keep_step_buffers_in_the_allocator() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
}

}  // namespace

int main(int argc, char** argv) {
  keep_step_buffers_in_the_allocator();
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
