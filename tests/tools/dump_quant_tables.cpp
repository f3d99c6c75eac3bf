// Exposes kernels/cpu's quant tables and row codecs to tests/python/test_quant_tables.py, which
// checks them against ggml's gguf package (spec §6).
//
//   dump_quant_tables tables OUT_DIR          writes <table>.bin (raw little-endian) per table
//   dump_quant_tables dequantize TYPE IN OUT  IN: whole blocks of TYPE; OUT: float32 values
//   dump_quant_tables quantize TYPE IN OUT    IN: float32 values; OUT: blocks of TYPE
//
// TYPE is a ggml type name (Q4_K, IQ2_XXS, ...). Exit status 0 on success, 1 with a message
// naming the input otherwise.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "core/ggml_type.h"
#include "kernels/cpu/quant.h"
#include "kernels/cpu/quant_tables.h"

namespace {

using v4::GgmlType;

bool read_file(const std::string& path, std::vector<char>* bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  bytes->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return true;
}

bool write_file(const std::filesystem::path& path, const void* data, size_t size) {
  std::ofstream out(path, std::ios::binary);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  return static_cast<bool>(out);
}

int fail(const std::string& message) {
  std::fprintf(stderr, "dump_quant_tables: %s\n", message.c_str());
  return 1;
}

int dump_tables(const std::filesystem::path& dir) {
  using namespace v4::kernels;
  struct Table {
    const char* name;
    const void* data;
    size_t size;
  };
  const Table tables[] = {
      {"iq2xxs_grid", iq2xxs_grid, sizeof(iq2xxs_grid)},
      {"iq2xs_grid", iq2xs_grid, sizeof(iq2xs_grid)},
      {"iq1s_grid", iq1s_grid, sizeof(iq1s_grid)},
      {"ksigns_iq2xs", ksigns_iq2xs, sizeof(ksigns_iq2xs)},
      {"kmask_iq2xs", kmask_iq2xs, sizeof(kmask_iq2xs)},
      {"kvalues_mxfp4", kvalues_mxfp4, sizeof(kvalues_mxfp4)},
  };
  for (const Table& t : tables) {
    if (!write_file(dir / (std::string(t.name) + ".bin"), t.data, t.size)) {
      return fail("cannot write " + (dir / t.name).string() + ".bin");
    }
  }
  return 0;
}

int convert(bool dequantize, std::string_view type_name, const std::string& in_path,
            const std::string& out_path) {
  const std::optional<GgmlType> type = v4::ggml_type_from_name(type_name);
  if (!type) return fail("unknown type name '" + std::string(type_name) + "'");
  if (dequantize ? !v4::kernels::can_dequantize(*type) : !v4::kernels::can_quantize(*type)) {
    return fail("type " + std::string(type_name) + " is not supported");
  }
  const v4::GgmlTypeTraits traits = v4::ggml_type_traits(*type);
  std::vector<char> input;
  if (!read_file(in_path, &input)) return fail("cannot read " + in_path);
  const size_t unit = dequantize ? traits.type_size : traits.block_size * sizeof(float);
  if (input.size() % unit != 0) {
    return fail(in_path + ": " + std::to_string(input.size()) + " bytes is not a whole number of " +
                std::string(type_name) + (dequantize ? " blocks" : " float32 blocks"));
  }
  const int64_t n = static_cast<int64_t>(input.size() / unit * traits.block_size);
  std::vector<char> output(dequantize ? n * sizeof(float)
                                      : n / traits.block_size * traits.type_size);
  if (dequantize) {
    v4::kernels::dequantize_row(*type, input.data(), reinterpret_cast<float*>(output.data()), n);
  } else {
    v4::kernels::quantize_row(*type, reinterpret_cast<const float*>(input.data()), output.data(),
                              n);
  }
  if (!write_file(out_path, output.data(), output.size())) return fail("cannot write " + out_path);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 2 && args[0] == "tables") return dump_tables(args[1]);
  if (args.size() == 4 && (args[0] == "dequantize" || args[0] == "quantize")) {
    return convert(args[0] == "dequantize", args[1], args[2], args[3]);
  }
  return fail(
      "usage: dump_quant_tables tables OUT_DIR | dequantize TYPE IN OUT | quantize TYPE IN OUT");
}
