// GGUF v3 reader: memory-maps a file (and the rest of its split set), validates every byte it
// interprets and exposes metadata, tensor infos and tensor bytes. Spec §5.1.
//
// Every malformed input is rejected with one line "<file>: <problem> at byte <offset>"; nothing
// in the file can make the parser crash, loop without bound or allocate more than the file size.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/ggml_type.h"
#include "core/status.h"
#include "model/gguf/gguf_value.h"

namespace v4 {

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" little-endian
constexpr uint64_t kGgufDefaultAlignment = 32;
constexpr uint32_t kGgufMaxDims = 4;

struct GgufTensorInfo {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<uint64_t> dims;  // ne0 (fastest) first
  uint64_t n_elements = 0;
  uint64_t n_bytes = 0;
  uint32_t split = 0;        // index into GgufFile::paths()
  uint64_t file_offset = 0;  // absolute byte offset of the data in its split file
  uint64_t info_offset = 0;  // byte offset of this tensor's info record (error messages)
  const uint8_t* data = nullptr;

  uint64_t rows() const { return dims.empty() ? 0 : n_elements / dims[0]; }
};

// One parsed GGUF container held in memory or mapped from disk (no split handling).
struct GgufContainer {
  uint32_t version = 0;
  uint64_t alignment = kGgufDefaultAlignment;
  uint64_t data_offset = 0;  // start of the data section
  std::vector<GgufKeyValue> metadata;
  // Byte offset of each entry's value, parallel to `metadata` (for error messages).
  std::vector<uint64_t> metadata_offsets;
  std::vector<GgufTensorInfo> tensors;  // data pointers refer to the parsed buffer

  const GgufKeyValue* find(std::string_view key) const;
  // Byte offset of the value of `entry`, which must point into `metadata`.
  uint64_t value_offset(const GgufKeyValue& entry) const {
    return metadata_offsets[static_cast<size_t>(&entry - metadata.data())];
  }
};

// Parses a whole GGUF image and validates every field and every tensor's data range. `name` is
// used in error messages only. Accepts versions 3 and 2 (same little-endian layout).
Result<GgufContainer> parse_gguf(std::string_view name, std::span<const uint8_t> bytes);

// How the file is stored on disk (v4serve inspect reports it).
enum class GgufLayout {
  kSingleFile,
  kSplitSet,    // gguf-split shards, each a complete GGUF with split.* keys
  kByteChunks,  // one GGUF cut into plain byte chunks, mapped back into one image
};

class GgufFile {
 public:
  // Opens `path`. When it is named "<stem>-00001-of-0000N.gguf" (or "<stem>.gguf-00001-of-0000N")
  // the other N-1 parts are found beside it. Parts that are GGUFs themselves are checked
  // (split.no / split.count) and merged: metadata comes from the first part, tensors from all
  // parts. Parts after the first that are not GGUFs are byte chunks of one file: they are mapped
  // one after the other into one image (each chunk but the last must be a whole number of
  // memory pages long) and parsed as one file.
  static Result<GgufFile> open(const std::string& path);

  GgufFile(GgufFile&&) noexcept;
  GgufFile& operator=(GgufFile&&) noexcept;
  ~GgufFile();

  uint32_t version() const;
  uint64_t alignment() const;
  const std::vector<std::string>& paths() const;
  uint64_t file_bytes() const;  // all parts together
  GgufLayout layout() const;

  const std::vector<GgufKeyValue>& metadata() const;
  const GgufValue* find(std::string_view key) const;

  // Typed getters: fail with "<file>: metadata key <key> ..." when missing or of another kind.
  Result<uint64_t> get_uint(std::string_view key) const;  // any integer type, value >= 0
  Result<int64_t> get_int(std::string_view key) const;    // any integer type that fits
  Result<double> get_float(std::string_view key) const;   // F32 or F64
  Result<bool> get_bool(std::string_view key) const;
  Result<std::string> get_string(std::string_view key) const;
  Result<std::vector<int64_t>> get_int_array(std::string_view key) const;
  Result<std::vector<double>> get_float_array(std::string_view key) const;
  Result<std::vector<std::string>> get_string_array(std::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const;
  const GgufTensorInfo* find_tensor(std::string_view name) const;

 private:
  struct Impl;
  explicit GgufFile(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace v4
