#include "model/v4/v4_forward_model.h"

namespace v4 {

Result<std::unique_ptr<V4Model>> load_v4_model(const std::string& path, const std::string& mtp_path,
                                               const V4ConfigOverrides& overrides) {
  Result<GgufFile> file = GgufFile::open(path);
  if (!file) return file.status();
  Result<V4Config> config = read_v4_config(*file);
  if (!config) return Status::error(path + ": " + config.message());
  if (Status s = apply_config_overrides(*config, overrides); !s) {
    return Status::error(path + ": " + s.message());
  }
  auto model = std::unique_ptr<V4Model>(new V4Model{std::move(*file), std::nullopt, {}});
  if (!mtp_path.empty()) {
    Result<GgufFile> mtp = GgufFile::open(mtp_path);
    if (!mtp) return mtp.status();
    model->mtp_file.emplace(std::move(*mtp));
  }
  Result<V4Weights> weights =
      bind_v4_weights(model->file, *config, model->mtp_file ? &*model->mtp_file : nullptr);
  if (!weights) return weights.status();
  model->weights = std::move(*weights);
  return model;
}

}  // namespace v4
