// `v4serve inspect FILE`: metadata, tensor table, bytes per type and a V4 schema validation
// report; `--dump NAME --rows A:B` prints rows of one tensor dequantized to float32 as JSON.
#include <CLI/CLI.hpp>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>

#include "apps/command.h"
#include "apps/value_format.h"
#include "kernels/cpu/quant.h"
#include "model/gguf/gguf_reader.h"
#include "model/v4/v4_validation.h"

namespace v4::apps {
namespace {

struct InspectFlags {
  std::string path;
  std::string dump;
  std::string rows;
  bool no_tensors = false;
};

void print_header(const GgufFile& file) {
  std::printf("file: %s", file.paths().front().c_str());
  switch (file.layout()) {
    case GgufLayout::kSingleFile:
      break;
    case GgufLayout::kSplitSet:
      std::printf(" (gguf-split set of %zu parts, each a GGUF)", file.paths().size());
      break;
    case GgufLayout::kByteChunks:
      std::printf(" (%zu byte chunks of one GGUF file, mapped as one)", file.paths().size());
      break;
  }
  std::printf("\nGGUF v%u, alignment %" PRIu64 ", %zu metadata keys, %zu tensors, %s\n",
              file.version(), file.alignment(), file.metadata().size(), file.tensors().size(),
              format_bytes(file.file_bytes()).c_str());
  std::printf("\nmetadata:\n");
  for (const GgufKeyValue& kv : file.metadata()) {
    std::printf("  %-56s %s\n", kv.key.c_str(), format_value_summary(kv.value).c_str());
  }
}

void print_tensors(const GgufFile& file, bool table) {
  std::map<std::string, std::pair<uint64_t, size_t>> per_type;
  if (table) std::printf("\ntensors:\n");
  for (const GgufTensorInfo& t : file.tensors()) {
    auto& [bytes, count] = per_type[std::string(ggml_type_name(t.type))];
    bytes += t.n_bytes;
    ++count;
    if (!table) continue;
    std::string dims;
    for (size_t i = 0; i < t.dims.size(); ++i) dims += (i ? " x " : "") + std::to_string(t.dims[i]);
    std::printf("  %-44s %-8s %-22s %12s\n", t.name.c_str(),
                std::string(ggml_type_name(t.type)).c_str(), dims.c_str(),
                format_bytes(t.n_bytes).c_str());
  }
  std::printf("\nbytes per type:\n");
  for (const auto& [type, entry] : per_type) {
    std::printf("  %-8s %12s in %zu tensors\n", type.c_str(), format_bytes(entry.first).c_str(),
                entry.second);
  }
}

void print_list(const char* title, const std::vector<std::string>& items) {
  if (items.empty()) return;
  std::printf("  %s (%zu):\n", title, items.size());
  for (const std::string& item : items) std::printf("    %s\n", item.c_str());
}

int print_validation(const GgufFile& file) {
  const V4ValidationReport report = validate_v4_file(file);
  std::printf("\nvalidation against the DeepSeek-V4 schema:\n");
  if (report.has_config) {
    const V4Config& c = report.config;
    std::printf("  config: %u layers, embd %u, %u heads x %u, %u experts (top %u), vocab %u\n",
                c.n_layer, c.n_embd, c.n_head, c.head_dim, c.n_expert, c.n_expert_used, c.n_vocab);
  }
  std::printf("  layout: %s\n  MTP: %s\n", report.layout.c_str(), report.mtp.c_str());
  print_list("errors", report.errors);
  print_list("warnings", report.warnings);
  print_list("ds4 would refuse", report.ds4_refusals);
  std::printf("result: %s\n", report.ok() ? "valid" : "INVALID");
  return report.ok() ? 0 : 1;
}

bool parse_rows(const std::string& text, uint64_t& first, uint64_t& last) {
  const size_t colon = text.find(':');
  if (colon == std::string::npos) return false;
  try {
    size_t used = 0;
    first = std::stoull(text.substr(0, colon), &used);
    if (used != colon) return false;
    const std::string tail = text.substr(colon + 1);
    last = std::stoull(tail, &used);
    return used == tail.size() && first <= last;
  } catch (const std::exception&) {
    return false;
  }
}

int dump_rows(const GgufFile& file, const InspectFlags& f) {
  const GgufTensorInfo* t = file.find_tensor(f.dump);
  if (!t) {
    std::fprintf(stderr, "inspect: %s: no tensor named \"%s\"\n", f.path.c_str(), f.dump.c_str());
    return 2;
  }
  uint64_t first = 0, last = t->rows();
  if (!f.rows.empty() && !parse_rows(f.rows, first, last)) {
    std::fprintf(stderr, "inspect: --rows \"%s\" is not A:B with A <= B\n", f.rows.c_str());
    return 2;
  }
  if (last > t->rows()) {
    std::fprintf(stderr, "inspect: --rows %s is outside %s, which has %" PRIu64 " rows\n",
                 f.rows.c_str(), t->name.c_str(), t->rows());
    return 2;
  }
  const bool integer = t->type == GgmlType::I32;
  if (!integer && !kernels::can_dequantize(t->type)) {
    std::fprintf(stderr, "inspect: %s: type %s cannot be dequantized\n", t->name.c_str(),
                 std::string(ggml_type_name(t->type)).c_str());
    return 2;
  }
  const uint64_t row_len = t->dims[0];
  const uint64_t row_bytes = t->n_bytes / t->rows();
  std::vector<float> row(row_len);
  std::string out = "[";
  bool any = false;
  for (uint64_t r = first; r < last; ++r) {
    const uint8_t* src = t->data + r * row_bytes;
    if (integer) {
      for (uint64_t j = 0; j < row_len; ++j) {
        int32_t v;
        std::memcpy(&v, src + 4 * j, 4);
        row[j] = static_cast<float>(v);
      }
    } else {
      kernels::dequantize_row(t->type, src, row.data(), static_cast<int64_t>(row_len));
    }
    for (uint64_t j = 0; j < row_len; ++j) {
      if (any) out += ", ";
      any = true;
      out += format_float_exact(row[j]);
    }
    if (out.size() > (1u << 20)) {
      std::fwrite(out.data(), 1, out.size(), stdout);
      out.clear();
    }
  }
  out += "]\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

int run_inspect(const InspectFlags& f) {
  Result<GgufFile> file = GgufFile::open(f.path);
  if (!file) {
    std::fprintf(stderr, "inspect: %s\n", file.message().c_str());
    return 1;
  }
  if (!f.dump.empty()) return dump_rows(*file, f);
  print_header(*file);
  print_tensors(*file, !f.no_tensors);
  return print_validation(*file);
}

CommandRegistration inspect_command(
    "inspect", "Show a GGUF file's metadata and tensors and validate it against the V4 schema",
    [](CLI::App& sub) {
      auto f = std::make_shared<InspectFlags>();
      sub.add_option("file", f->path, "GGUF file (the first part of a split set)")->required();
      sub.add_option("--dump", f->dump, "print rows of this tensor as a JSON array of float32");
      sub.add_option("--rows", f->rows,
                     "A:B, rows A..B-1 for --dump (3-D tensors count rows "
                     "across experts); default all");
      sub.add_flag("--no-tensors", f->no_tensors, "omit the per-tensor table");
      return [f] { return run_inspect(*f); };
    });

}  // namespace
}  // namespace v4::apps
