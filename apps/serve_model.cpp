#include "apps/serve_model.h"

#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "apps/progress_bar.h"
#include "apps/tokenizer_location.h"
#include "model/synthetic/synthetic_model.h"

namespace v4::apps {

namespace {

std::filesystem::path cache_dir() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    return std::filesystem::path(xdg) / "v4serve" / "models";
  if (const char* home = std::getenv("HOME"); home && *home)
    return std::filesystem::path(home) / ".cache" / "v4serve" / "models";
  return std::filesystem::temp_directory_path() / "v4serve" / "models";
}

}  // namespace

Result<std::string> default_model_path() {
  const std::filesystem::path path = cache_dir() / "tiny-ds4-q2.gguf";
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) return path.string();
  std::filesystem::create_directories(path.parent_path(), ec);
  if (ec)
    return Status::error("cannot create " + path.parent_path().string() + ": " + ec.message());
  Result<std::string> tokenizer = locate_tokenizer_json("");
  if (!tokenizer) return tokenizer.status();
  Result<V4Config> config = synthetic_preset("tiny");
  if (!config) return config.status();
  spdlog::info("no --model given: generating the tiny synthetic model into {}", path.string());
  SyntheticModelOptions o;
  o.config = *config;
  o.recipe = Recipe::kDs4Q2;
  o.out_path = path.string();
  o.tokenizer_json = *tokenizer;
  auto bar = std::make_shared<std::unique_ptr<ProgressBar>>();
  o.progress = [bar](const GgufWriteProgress& p) {
    if (!*bar) *bar = std::make_unique<ProgressBar>("generating tiny model", p.bytes_total);
    (*bar)->update(p.bytes_written);
  };
  Result<std::vector<std::string>> written = write_synthetic_model(o);
  if (*bar) (*bar)->finish();
  if (!written) return written.status();
  return path.string();
}

Result<std::string> model_path_or_default(const std::string& model_flag) {
  if (!model_flag.empty()) return model_flag;
  return default_model_path();
}

Result<std::unique_ptr<V4Model>> load_model_with_progress(const std::string& path,
                                                          const std::string& mtp_path) {
  spdlog::info("loading {}{}", path, mtp_path.empty() ? "" : " with MTP file " + mtp_path);
  Result<std::unique_ptr<V4Model>> model = load_v4_model(path, mtp_path);
  if (!model) return model;
  uint64_t total = 0;
  for (const GgufTensorInfo& t : (*model)->file.tensors()) total += t.n_bytes;
  ProgressBar bar("reading weights", total);
  const long page = sysconf(_SC_PAGESIZE);
  uint64_t done = 0;
  uint8_t acc = 0;
  for (const GgufTensorInfo& t : (*model)->file.tensors()) {
    if (!t.data || t.n_bytes == 0) continue;
    // Ask for read-ahead, then touch one byte per page: the data is mapped, so this is what
    // brings it into memory.
    const auto start = reinterpret_cast<uintptr_t>(t.data) & ~static_cast<uintptr_t>(page - 1);
    madvise(reinterpret_cast<void*>(start),
            t.n_bytes + (reinterpret_cast<uintptr_t>(t.data) - start), MADV_WILLNEED);
    for (uint64_t off = 0; off < t.n_bytes; off += static_cast<uint64_t>(page))
      acc = static_cast<uint8_t>(acc ^ t.data[off]);
    done += t.n_bytes;
    bar.update(done);
  }
  bar.finish();
  // Keeps the reads from being optimised away.
  volatile uint8_t sink = acc;
  (void)sink;
  return model;
}

}  // namespace v4::apps
