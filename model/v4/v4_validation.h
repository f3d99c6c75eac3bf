// Checks a GGUF file against the DeepSeek-V4 schema: metadata, missing/extra tensors, shapes,
// dtypes our loader reads, and the dtypes ds4's strict loader would refuse (spec §5.4–§5.6).
#pragma once

#include <string>
#include <vector>

#include "model/v4/v4_config.h"
#include "model/v4/v4_schema.h"

namespace v4 {

class GgufFile;

struct V4ValidationReport {
  std::vector<std::string> errors;        // the file cannot be served as a V4 model
  std::vector<std::string> warnings;      // unexpected but harmless (extra tensors, ...)
  std::vector<std::string> ds4_refusals;  // dtypes or layout ds4's loader would refuse
  std::string layout;                     // "ds4", "llama.cpp family" or "unknown"
  std::string mtp;                        // "none", "ds4 file", "in-file (llama.cpp layout)"
  bool has_config = false;
  V4Config config;

  bool ok() const { return errors.empty(); }
};

V4ValidationReport validate_v4_file(const GgufFile& file);

}  // namespace v4
