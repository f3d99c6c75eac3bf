// Prints what our GGUF reader sees in a file as one JSON document (metadata with exact types,
// tensor infos), so Python tests can compare it with what ggml's gguf package wrote or reads.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "model/gguf/gguf_reader.h"

namespace {

using nlohmann::json;

json value_json(const v4::GgufValue& v) {
  if (v.is_array()) {
    json out = json::array();
    for (const v4::GgufValue& e : v.elements()) out.push_back(value_json(e));
    return out;
  }
  return std::visit(
      [](const auto& x) -> json {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::vector<v4::GgufValue>>) {
          return json();
        } else {
          return json(x);
        }
      },
      v.value);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: gguf_dump_json FILE\n");
    return 2;
  }
  v4::Result<v4::GgufFile> file = v4::GgufFile::open(argv[1]);
  if (!file) {
    std::fprintf(stderr, "%s\n", file.message().c_str());
    return 1;
  }
  json out;
  out["version"] = file->version();
  out["alignment"] = file->alignment();
  out["parts"] = file->paths().size();
  json metadata = json::array();
  for (const v4::GgufKeyValue& kv : file->metadata()) {
    json entry{{"key", kv.key},
               {"type", v4::gguf_value_type_name(kv.value.type)},
               {"value", value_json(kv.value)}};
    if (kv.value.is_array())
      entry["element_type"] = v4::gguf_value_type_name(kv.value.element_type);
    metadata.push_back(entry);
  }
  out["metadata"] = metadata;
  json tensors = json::array();
  for (const v4::GgufTensorInfo& t : file->tensors()) {
    tensors.push_back({{"name", t.name},
                       {"type", std::string(v4::ggml_type_name(t.type))},
                       {"dims", t.dims},
                       {"n_bytes", t.n_bytes},
                       {"split", t.split}});
  }
  out["tensors"] = tensors;
  std::puts(out.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
  return 0;
}
