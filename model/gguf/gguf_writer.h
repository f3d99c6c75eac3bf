// GGUF v3 writer that streams: the header is laid out from declared tensor sizes, then each
// tensor's bytes are produced on demand by its source and written straight to disk, so a model
// never has to fit in memory. Optional splitting at a byte limit into
// "<stem>-0000i-of-0000N.gguf" parts (llama.cpp gguf-split convention). Spec §5.1.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "core/ggml_type.h"
#include "core/status.h"
#include "model/gguf/gguf_value.h"

namespace v4 {

// Receives a tensor's bytes in order, in chunks of any size.
class GgufByteSink {
 public:
  virtual ~GgufByteSink() = default;
  virtual Status write(std::span<const uint8_t> bytes) = 0;
};

// Produces exactly the tensor's n_bytes into the sink (checked by the writer).
using GgufTensorSource = std::function<Status(GgufByteSink& sink)>;

// Reported after each tensor; byte counts are tensor data bytes (headers and padding excluded).
struct GgufWriteProgress {
  uint64_t bytes_written = 0;
  uint64_t bytes_total = 0;
  size_t tensors_written = 0;
  size_t tensors_total = 0;
  std::string_view current_tensor;
};

struct GgufWriterOptions {
  uint64_t alignment = 32;       // power of two; written as general.alignment when not 32
  uint64_t max_split_bytes = 0;  // 0: one file; else start a new part before a part's file
                                 // size would exceed this (a bigger tensor gets its own part)
  std::function<void(const GgufWriteProgress&)> progress;  // called after each tensor
};

class GgufWriter {
 public:
  explicit GgufWriter(GgufWriterOptions options = {});

  // Metadata keeps insertion order; setting an existing key replaces its value.
  void set(std::string key, GgufValue value);

  // Declares a tensor; dims are ne0 first. Fails on a duplicate name, a bad type or a row length
  // that is not a multiple of the type's block size.
  Status add_tensor(std::string name, GgmlType type, std::vector<uint64_t> dims,
                    GgufTensorSource source);

  // Writes the file (or the split parts) at `path`. With splitting, `path` is the unsplit name
  // "<stem>.gguf" and the parts are written beside it as "<stem>-0000i-of-0000N.gguf" (a plain
  // `path` when everything fits in one part, as gguf-py does). Each file is written under
  // "<name>.tmp" and renamed when all parts are complete, so a failure leaves no partial file.
  // Returns the paths written.
  Result<std::vector<std::string>> write(const std::string& path);

 private:
  struct PendingTensor {
    std::string name;
    GgmlType type;
    std::vector<uint64_t> dims;
    uint64_t n_bytes;
    GgufTensorSource source;
  };
  Status check(const std::string& path) const;
  std::vector<size_t> plan_parts() const;  // index of the first tensor of each part
  Status write_part(std::FILE* file, const std::string& path, size_t index, size_t count,
                    size_t begin, size_t end, GgufWriteProgress& progress);

  GgufWriterOptions options_;
  std::vector<GgufKeyValue> metadata_;
  std::vector<PendingTensor> tensors_;
};

// A source for tensors already in memory (small tensors, tests).
GgufTensorSource gguf_bytes_source(std::vector<uint8_t> bytes);

}  // namespace v4
