#include "model/v4/v4_validation.h"

#include <algorithm>
#include <map>
#include <sstream>

#include "model/gguf/gguf_reader.h"
#include "model/v4/v4_dtype_rules.h"

namespace v4 {
namespace {

std::string dims_text(const std::vector<uint64_t>& dims) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < dims.size(); ++i) out << (i ? ", " : "") << dims[i];
  out << ']';
  return out.str();
}

std::string types_text(const std::vector<GgmlType>& types) {
  std::string out;
  for (size_t i = 0; i < types.size(); ++i) {
    out += (i ? i + 1 == types.size() ? " or " : ", " : "");
    out += ggml_type_name(types[i]);
  }
  return out;
}

// The hash table's ne0 is the file's own top-k (ds4 writes 6, llama.cpp expert_used_count;
// spec §5.7), so only its vocabulary dimension is fixed.
bool dims_match(const TensorSpec& spec, const GgufTensorInfo& info) {
  if (spec.role == TensorRole::kHashTable) {
    return info.dims.size() == 2 && info.dims[0] > 0 && info.dims[1] == spec.dims[1];
  }
  return info.dims == spec.dims;
}

void check_tensor(const TensorSpec& spec, const GgufTensorInfo& info, bool mtp,
                  V4ValidationReport& report) {
  if (!dims_match(spec, info)) {
    report.errors.push_back(spec.name + ": shape " + dims_text(info.dims) + ", expected " +
                            dims_text(spec.dims));
  }
  if (!loader_accepts_dtype(spec.role, info.type)) {
    report.errors.push_back(spec.name + ": type " + std::string(ggml_type_name(info.type)) +
                            " is not supported for a " + tensor_role_name(spec.role));
  }
  const std::vector<GgmlType> ds4 = ds4_accepted_dtypes(spec.role, mtp);
  if (std::find(ds4.begin(), ds4.end(), info.type) == ds4.end()) {
    report.ds4_refusals.push_back(spec.name + ": " + std::string(ggml_type_name(info.type)) +
                                  ", ds4 requires " + types_text(ds4));
  }
}

// ds4 quantizes a layer's gate and up experts identically (spec §5.4).
void check_gate_up_match(const GgufFile& file, const V4Config& c, V4ValidationReport& report) {
  for (uint32_t il = 0; il < c.n_layer; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    const GgufTensorInfo* gate = file.find_tensor(p + "ffn_gate_exps.weight");
    const GgufTensorInfo* up = file.find_tensor(p + "ffn_up_exps.weight");
    if (gate && up && gate->type != up->type) {
      report.ds4_refusals.push_back(p + "ffn_gate_exps/ffn_up_exps: types differ (" +
                                    std::string(ggml_type_name(gate->type)) + " vs " +
                                    std::string(ggml_type_name(up->type)) + ")");
    }
  }
}

void check_against(const GgufFile& file, const std::vector<TensorSpec>& expected, bool mtp_file,
                   V4ValidationReport& report) {
  std::map<std::string, const TensorSpec*> by_name;
  for (const TensorSpec& spec : expected) by_name[spec.name] = &spec;
  for (const TensorSpec& spec : expected) {
    const GgufTensorInfo* info = file.find_tensor(spec.name);
    if (!info) {
      report.errors.push_back(spec.name + ": missing (" + tensor_role_name(spec.role) + ", " +
                              dims_text(spec.dims) + ")");
      continue;
    }
    const bool mtp =
        mtp_file || spec.name.starts_with("blk." + std::to_string(report.config.n_layer) + ".");
    check_tensor(spec, *info, mtp, report);
  }
  for (const GgufTensorInfo& info : file.tensors()) {
    if (!by_name.count(info.name)) {
      report.warnings.push_back(info.name + ": unexpected tensor " + dims_text(info.dims) + " " +
                                std::string(ggml_type_name(info.type)));
    }
  }
}

}  // namespace

V4ValidationReport validate_v4_file(const GgufFile& file) {
  V4ValidationReport report;
  Result<V4Config> config = read_v4_config(file);
  if (!config) {
    report.errors.push_back(config.message());
    report.layout = "unknown";
    report.mtp = "unknown";
    return report;
  }
  report.has_config = true;
  report.config = *config;
  const V4Config& c = report.config;

  const bool ds4_mtp_file =
      !file.find_tensor("token_embd.weight") && file.find_tensor("mtp.0.e_proj.weight") != nullptr;
  if (ds4_mtp_file) {
    report.mtp = "ds4 file";
    check_against(file, v4_ds4_mtp_tensors(c), true, report);
  } else {
    const bool in_file_mtp =
        c.n_mtp_layers > 0 &&
        file.find_tensor("blk." + std::to_string(c.n_layer) + ".nextn.eh_proj.weight");
    report.mtp = in_file_mtp ? "in-file (llama.cpp layout)" : "none";
    check_against(file, v4_main_tensors(c, in_file_mtp ? MtpLayout::kLlamaCpp : MtpLayout::kNone),
                  false, report);
    check_gate_up_match(file, c, report);
  }
  if (report.mtp == "in-file (llama.cpp layout)") {
    report.ds4_refusals.push_back(
        "MTP block inside the main file: ds4 loads MTP from its own file");
  }
  report.layout = !report.ok()                  ? "unknown"
                  : report.ds4_refusals.empty() ? "ds4"
                                                : "llama.cpp family";
  return report;
}

}  // namespace v4
