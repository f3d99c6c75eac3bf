// GgufWriter: lays out each part from declared tensor sizes, then streams tensor bytes from
// their sources to a temporary file renamed into place only when every part is complete.
// Spec §5.1 (container), llama.cpp gguf-split (split parts).
#include "model/gguf/gguf_writer.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "model/gguf/gguf_encoder.h"
#include "model/gguf/gguf_reader.h"
#include "model/gguf/gguf_split.h"

namespace v4 {
namespace {

constexpr uint64_t kHeaderBytes = 4 + 4 + 8 + 8;  // magic, version, tensor count, metadata count
constexpr uint32_t kWrittenVersion = 3;

uint64_t align_up(uint64_t offset, uint64_t alignment) {
  return (offset + alignment - 1) / alignment * alignment;
}

std::string problem_with_dims(GgmlType type, const std::vector<uint64_t>& dims, uint64_t& n_bytes) {
  const std::optional<GgmlTypeTraits> traits = ggml_type_traits(static_cast<uint32_t>(type));
  if (!traits) return "unknown ggml type " + std::to_string(static_cast<uint32_t>(type));
  if (dims.empty() || dims.size() > kGgufMaxDims) {
    return "has " + std::to_string(dims.size()) + " dimensions, expected 1.." +
           std::to_string(kGgufMaxDims);
  }
  uint64_t n_elements = 1;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == 0) return "dimension " + std::to_string(i) + " is 0";
    if (__builtin_mul_overflow(n_elements, dims[i], &n_elements)) {
      return "element count overflows u64";
    }
  }
  // Quant blocks run along ne0 (spec §5.1).
  if (dims[0] % traits->block_size != 0) {
    return "row length " + std::to_string(dims[0]) + " is not a multiple of the block size " +
           std::to_string(traits->block_size) + " of " + std::string(traits->name);
  }
  if (__builtin_mul_overflow(n_elements / traits->block_size, uint64_t{traits->type_size},
                             &n_bytes)) {
    return "byte size overflows u64";
  }
  return "";
}

// Bytes of one tensor info record: name, n_dims, dims, type, offset.
uint64_t tensor_info_bytes(const std::string& name, size_t n_dims) {
  return 8 + name.size() + 4 + 8 * n_dims + 4 + 8;
}

// Counts what a source writes and refuses bytes beyond the declared size.
class TensorSink final : public GgufByteSink {
 public:
  TensorSink(std::FILE* file, uint64_t expected) : file_(file), expected_(expected) {}

  Status write(std::span<const uint8_t> bytes) override {
    if (!failure_.is_ok()) return failure_;
    if (bytes.size() > expected_ - written_) {
      failure_ = Status::error("source produced more than the declared " +
                               std::to_string(expected_) + " bytes");
      return failure_;
    }
    if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size()) {
      failure_ = Status::error(std::string("write failed: ") + std::strerror(errno));
      return failure_;
    }
    written_ += bytes.size();
    return Status::ok();
  }

  // The sink's own failure wins over what the source returned: a source may ignore it.
  Status finish(Status source_status) const {
    if (!failure_.is_ok()) return failure_;
    if (!source_status.is_ok()) return source_status;
    if (written_ != expected_) {
      return Status::error("source produced " + std::to_string(written_) + " bytes, expected " +
                           std::to_string(expected_));
    }
    return Status::ok();
  }

 private:
  std::FILE* file_;
  uint64_t expected_;
  uint64_t written_ = 0;
  Status failure_;
};

// Temporary part files, removed unless every part was written and renamed.
class TemporaryFiles {
 public:
  TemporaryFiles() = default;
  TemporaryFiles(const TemporaryFiles&) = delete;
  TemporaryFiles& operator=(const TemporaryFiles&) = delete;
  ~TemporaryFiles() {
    for (const std::string& path : paths_) std::remove(path.c_str());
  }
  void add(std::string path) { paths_.push_back(std::move(path)); }
  void release() { paths_.clear(); }

 private:
  std::vector<std::string> paths_;
};

Status write_all(std::FILE* file, std::span<const uint8_t> bytes, const std::string& path) {
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), file) != bytes.size()) {
    return Status::error(path + ": write failed: " + std::strerror(errno));
  }
  return Status::ok();
}

Status write_padding(std::FILE* file, uint64_t n_bytes, uint64_t alignment,
                     const std::string& path) {
  static const std::vector<uint8_t> zeros(4096, 0);
  uint64_t left = align_up(n_bytes, alignment) - n_bytes;
  while (left > 0) {
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(left, zeros.size()));
    if (Status s = write_all(file, {zeros.data(), chunk}, path); !s) return s;
    left -= chunk;
  }
  return Status::ok();
}

// Flushes, syncs and closes `file`; the rename that follows must not publish unsynced data.
Status close_file(std::FILE* file, const std::string& path) {
  bool ok = std::fflush(file) == 0;
  ok = ok && fsync(fileno(file)) == 0;
  const int error = errno;
  ok = std::fclose(file) == 0 && ok;
  if (!ok) return Status::error(path + ": cannot finish writing: " + std::strerror(error));
  return Status::ok();
}

// Metadata of part `index` of `count`: the full metadata only in the first part (as gguf-split
// does), general.alignment in every part so each is a complete GGUF, split keys when count > 1.
GgufEncoder encode_metadata(const std::vector<GgufKeyValue>& metadata, uint64_t alignment,
                            size_t n_tensors, size_t index, size_t count, uint64_t& n_entries) {
  GgufEncoder encoder;
  n_entries = 0;
  bool has_alignment = false;
  if (index == 0) {
    for (const GgufKeyValue& entry : metadata) {
      encoder.put_key_value(entry.key, entry.value);
      has_alignment = has_alignment || entry.key == kGgufKeyAlignment;
      ++n_entries;
    }
  }
  if (!has_alignment && alignment != kGgufDefaultAlignment) {
    encoder.put_key_value(kGgufKeyAlignment, GgufValue::u32(static_cast<uint32_t>(alignment)));
    ++n_entries;
  }
  if (count > 1) {
    encoder.put_key_value(kGgufKeySplitNo, GgufValue::u16(static_cast<uint16_t>(index)));
    encoder.put_key_value(kGgufKeySplitCount, GgufValue::u16(static_cast<uint16_t>(count)));
    encoder.put_key_value(kGgufKeySplitTensorsCount,
                          GgufValue::i32(static_cast<int32_t>(n_tensors)));
    n_entries += 3;
  }
  return encoder;
}

}  // namespace

GgufWriter::GgufWriter(GgufWriterOptions options) : options_(std::move(options)) {}

void GgufWriter::set(std::string key, GgufValue value) {
  for (GgufKeyValue& entry : metadata_) {
    if (entry.key == key) {
      entry.value = std::move(value);
      return;
    }
  }
  metadata_.push_back({std::move(key), std::move(value)});
}

Status GgufWriter::add_tensor(std::string name, GgmlType type, std::vector<uint64_t> dims,
                              GgufTensorSource source) {
  for (const PendingTensor& tensor : tensors_) {
    if (tensor.name == name) return Status::error("tensor '" + name + "' is already declared");
  }
  uint64_t n_bytes = 0;
  const std::string problem = problem_with_dims(type, dims, n_bytes);
  if (!problem.empty()) return Status::error("tensor '" + name + "': " + problem);
  if (!source) return Status::error("tensor '" + name + "' has no source");
  tensors_.push_back({std::move(name), type, std::move(dims), n_bytes, std::move(source)});
  return Status::ok();
}

// Options and metadata are checked before any file is created.
Status GgufWriter::check(const std::string& path) const {
  const uint64_t a = options_.alignment;
  if (a == 0 || (a & (a - 1)) != 0 || a > UINT32_MAX) {
    return Status::error(path + ": alignment " + std::to_string(a) +
                         " is not a power of two that fits a u32");
  }
  for (const GgufKeyValue& entry : metadata_) {
    const std::string problem = gguf_value_problem(entry.value);
    if (!problem.empty()) {
      return Status::error(path + ": metadata key '" + entry.key + "': " + problem);
    }
    if (entry.key == kGgufKeyAlignment && entry.value != GgufValue::u32(static_cast<uint32_t>(a))) {
      return Status::error(path + ": metadata key 'general.alignment' must be the U32 " +
                           std::to_string(a) + " of the writer options");
    }
    const bool split_key = entry.key == kGgufKeySplitNo || entry.key == kGgufKeySplitCount ||
                           entry.key == kGgufKeySplitTensorsCount;
    if (split_key && options_.max_split_bytes != 0) {
      return Status::error(path + ": metadata key '" + entry.key +
                           "' is written by the writer when splitting");
    }
  }
  return Status::ok();
}

// Greedy split: a tensor starts a new part when adding it would push the part's file size
// (header, padding and data) past max_split_bytes. A part always takes at least one tensor, so
// a tensor larger than the limit gets a part of its own.
std::vector<size_t> GgufWriter::plan_parts() const {
  std::vector<size_t> starts{0};
  if (options_.max_split_bytes == 0) return starts;
  const uint64_t a = options_.alignment;
  uint64_t n_entries = 0;
  const uint64_t first_meta =
      encode_metadata(metadata_, a, tensors_.size(), 0, 2, n_entries).size();
  const uint64_t other_meta =
      encode_metadata(metadata_, a, tensors_.size(), 1, 2, n_entries).size();
  uint64_t header = kHeaderBytes + first_meta;
  uint64_t data = 0;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const PendingTensor& t = tensors_[i];
    const uint64_t info = tensor_info_bytes(t.name, t.dims.size());
    const uint64_t padded = align_up(t.n_bytes, a);
    const bool part_has_tensors = i > starts.back();
    if (part_has_tensors && align_up(header + info, a) + data + padded > options_.max_split_bytes) {
      starts.push_back(i);
      header = kHeaderBytes + other_meta;
      data = 0;
    }
    header += info;
    data += padded;
  }
  return starts;
}

Status GgufWriter::write_part(std::FILE* file, const std::string& path, size_t index, size_t count,
                              size_t begin, size_t end, GgufWriteProgress& progress) {
  uint64_t n_entries = 0;
  GgufEncoder header =
      encode_metadata(metadata_, options_.alignment, tensors_.size(), index, count, n_entries);
  GgufEncoder prefix;
  prefix.put(kGgufMagic);
  prefix.put(kWrittenVersion);
  prefix.put<uint64_t>(end - begin);
  prefix.put<uint64_t>(n_entries);
  // Spec §5.1: tensor offsets are relative to the data section and each is aligned.
  uint64_t offset = 0;
  for (size_t i = begin; i < end; ++i) {
    const PendingTensor& t = tensors_[i];
    header.put_string(t.name);
    header.put<uint32_t>(static_cast<uint32_t>(t.dims.size()));
    for (uint64_t dim : t.dims) header.put(dim);
    header.put(static_cast<uint32_t>(t.type));
    header.put(offset);
    offset += align_up(t.n_bytes, options_.alignment);
  }
  if (Status s = write_all(file, prefix.bytes(), path); !s) return s;
  if (Status s = write_all(file, header.bytes(), path); !s) return s;
  const uint64_t header_bytes = prefix.size() + header.size();
  if (Status s = write_padding(file, header_bytes, options_.alignment, path); !s) return s;
  for (size_t i = begin; i < end; ++i) {
    const PendingTensor& t = tensors_[i];
    TensorSink sink(file, t.n_bytes);
    const Status status = sink.finish(t.source(sink));
    if (!status) return Status::error(path + ": tensor '" + t.name + "': " + status.message());
    if (Status s = write_padding(file, t.n_bytes, options_.alignment, path); !s) return s;
    progress.bytes_written += t.n_bytes;
    progress.tensors_written += 1;
    progress.current_tensor = t.name;
    if (options_.progress) options_.progress(progress);
  }
  return Status::ok();
}

Result<std::vector<std::string>> GgufWriter::write(const std::string& path) {
  if (Status s = check(path); !s) return s;
  const std::vector<size_t> starts = plan_parts();
  const size_t count = starts.size();
  if (count > kGgufMaxSplitCount) {
    return Status::error(path + ": " + std::to_string(count) + " parts exceed the " +
                         std::to_string(kGgufMaxSplitCount) + " a split set can hold");
  }
  std::vector<std::string> paths;
  for (size_t i = 0; i < count; ++i) {
    paths.push_back(count == 1 ? path
                               : gguf_split_path(gguf_path_stem(path), static_cast<uint32_t>(i + 1),
                                                 static_cast<uint32_t>(count)));
  }
  GgufWriteProgress progress;
  progress.tensors_total = tensors_.size();
  for (const PendingTensor& t : tensors_) progress.bytes_total += t.n_bytes;

  TemporaryFiles temporaries;
  for (size_t i = 0; i < count; ++i) {
    const std::string temporary = paths[i] + ".tmp";
    std::FILE* file = std::fopen(temporary.c_str(), "wb");
    if (file == nullptr) {
      return Status::error(temporary + ": cannot create: " + std::strerror(errno));
    }
    temporaries.add(temporary);
    // Sources hand over chunks of any size; a large buffer keeps small chunks off the syscall path.
    std::setvbuf(file, nullptr, _IOFBF, size_t{1} << 20);
    const size_t end = i + 1 < count ? starts[i + 1] : tensors_.size();
    Status status = write_part(file, paths[i], i, count, starts[i], end, progress);
    if (!status) {
      std::fclose(file);
      return status;
    }
    if (Status s = close_file(file, temporary); !s) return s;
  }
  for (size_t i = 0; i < count; ++i) {
    if (std::rename((paths[i] + ".tmp").c_str(), paths[i].c_str()) != 0) {
      const int error = errno;
      // A split set missing a part is unusable: take back the parts already renamed.
      for (size_t k = 0; k < i; ++k) std::remove(paths[k].c_str());
      return Status::error(paths[i] +
                           ": cannot rename the finished file into place: " + std::strerror(error));
    }
  }
  temporaries.release();
  return paths;
}

GgufTensorSource gguf_bytes_source(std::vector<uint8_t> bytes) {
  auto shared = std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
  return [shared](GgufByteSink& sink) { return sink.write(*shared); };
}

}  // namespace v4
