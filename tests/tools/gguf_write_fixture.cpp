// Writes a GGUF file with our writer and quantizers from a JSON description, for the Python
// tests that read it back with ggml's gguf package:
//   {"alignment": 32, "split_bytes": 0,
//    "metadata": [{"key": K, "type": "U32", "value": V}, {"key": K, "type": "ARRAY",
//                  "element_type": "F32", "value": [..]}, ...],
//    "tensors": [{"name": N, "type": "Q4_K", "dims": [ne0, ne1, ...], "f32_file": PATH}]}
// Each tensor's float32 values (ne0 fastest) are quantized row by row with kernels::quantize_row.
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kernels/cpu/quant.h"
#include "model/gguf/gguf_writer.h"

namespace {

using nlohmann::json;

std::optional<v4::GgufValueType> value_type(const std::string& name) {
  for (uint32_t t = 0; t <= 12; ++t) {
    if (name == v4::gguf_value_type_name(static_cast<v4::GgufValueType>(t))) {
      return static_cast<v4::GgufValueType>(t);
    }
  }
  return std::nullopt;
}

v4::GgufValue make_value(v4::GgufValueType type, const json& j, const json& spec) {
  using v4::GgufValue;
  using T = v4::GgufValueType;
  switch (type) {
    case T::U8:
      return GgufValue::u8(j.get<uint8_t>());
    case T::I8:
      return GgufValue::i8(j.get<int8_t>());
    case T::U16:
      return GgufValue::u16(j.get<uint16_t>());
    case T::I16:
      return GgufValue::i16(j.get<int16_t>());
    case T::U32:
      return GgufValue::u32(j.get<uint32_t>());
    case T::I32:
      return GgufValue::i32(j.get<int32_t>());
    case T::U64:
      return GgufValue::u64(j.get<uint64_t>());
    case T::I64:
      return GgufValue::i64(j.get<int64_t>());
    case T::F32:
      return GgufValue::f32(j.get<float>());
    case T::F64:
      return GgufValue::f64(j.get<double>());
    case T::BOOL:
      return GgufValue::boolean(j.get<bool>());
    case T::STRING:
      return GgufValue::string(j.get<std::string>());
    case T::ARRAY: {
      const v4::GgufValueType element = *value_type(spec.at("element_type").get<std::string>());
      std::vector<GgufValue> elements;
      for (const json& e : j) {
        elements.push_back(make_value(element, e, spec.contains("inner") ? spec["inner"] : json()));
      }
      return GgufValue::array(element, std::move(elements));
    }
  }
  return GgufValue();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: gguf_write_fixture SPEC.json OUT.gguf\n");
    return 2;
  }
  std::ifstream in(argv[1]);
  const json spec = json::parse(in);
  v4::GgufWriterOptions options;
  options.alignment = spec.value("alignment", uint64_t{32});
  options.max_split_bytes = spec.value("split_bytes", uint64_t{0});
  v4::GgufWriter writer(options);
  for (const json& m : spec["metadata"]) {
    writer.set(m["key"], make_value(*value_type(m["type"]), m["value"], m));
  }
  for (const json& t : spec["tensors"]) {
    const std::string type_name = t["type"];
    const v4::GgmlType type = *v4::ggml_type_from_name(type_name);
    const std::vector<uint64_t> dims = t["dims"];
    const std::string f32_file = t["f32_file"];
    auto source = [type, dims, f32_file](v4::GgufByteSink& sink) -> v4::Status {
      std::ifstream data(f32_file, std::ios::binary);
      std::vector<float> row(dims[0]);
      std::vector<uint8_t> out(*v4::ggml_row_size(type, dims[0]));
      uint64_t rows = 1;
      for (size_t i = 1; i < dims.size(); ++i) rows *= dims[i];
      for (uint64_t r = 0; r < rows; ++r) {
        if (!data.read(reinterpret_cast<char*>(row.data()), row.size() * 4)) {
          return v4::Status::error(f32_file + ": too short");
        }
        v4::kernels::quantize_row(type, row.data(), out.data(), static_cast<int64_t>(row.size()));
        if (v4::Status s = sink.write(out); !s) return s;
      }
      return v4::Status::ok();
    };
    if (v4::Status s = writer.add_tensor(t["name"], type, dims, source); !s) {
      std::fprintf(stderr, "%s\n", s.message().c_str());
      return 1;
    }
  }
  v4::Result<std::vector<std::string>> paths = writer.write(argv[2]);
  if (!paths) {
    std::fprintf(stderr, "%s\n", paths.message().c_str());
    return 1;
  }
  for (const std::string& p : *paths) std::puts(p.c_str());
  return 0;
}
