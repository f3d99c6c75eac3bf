// GgufFile: maps a GGUF file (and the other parts of its split set) and merges them. Spec §5.1.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <utility>

#include "model/gguf/gguf_cursor.h"
#include "model/gguf/gguf_reader.h"
#include "model/gguf/gguf_split.h"

namespace v4 {
namespace {

// A read-only private mapping of a whole file; empty files map to an empty span.
class MappedFile {
 public:
  MappedFile() = default;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& other) noexcept
      : address_(std::exchange(other.address_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  ~MappedFile() {
    if (address_ != nullptr) munmap(address_, size_);
  }

  static Result<MappedFile> map(const std::string& path) {
    const std::string name = gguf_path_text(path);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Status::error(name + ": cannot open: " + std::strerror(errno));
    struct stat info {};
    if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
      ::close(fd);
      return Status::error(name + ": not a regular file");
    }
    MappedFile mapped;
    mapped.size_ = static_cast<size_t>(info.st_size);
    if (mapped.size_ > 0) {
      void* address = mmap(nullptr, mapped.size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (address == MAP_FAILED) {
        const int error = errno;
        ::close(fd);
        return Status::error(name + ": cannot map: " + std::strerror(error));
      }
      mapped.address_ = address;
    }
    ::close(fd);  // the mapping keeps the file alive
    return mapped;
  }

  // The files one after the other in one contiguous read-only image: address space for the
  // whole is reserved, then each file is mapped at its offset. Every file but the last must be
  // a whole number of pages long, since mappings start on page boundaries.
  static Result<MappedFile> map_chunks(const std::vector<std::string>& paths) {
    const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    std::vector<uint64_t> sizes;
    uint64_t total = 0;
    for (size_t i = 0; i < paths.size(); ++i) {
      struct stat info {};
      if (stat(paths[i].c_str(), &info) != 0 || !S_ISREG(info.st_mode))
        return Status::error(gguf_path_text(paths[i]) + ": not a regular file");
      const uint64_t size = static_cast<uint64_t>(info.st_size);
      if (i + 1 < paths.size() && (size == 0 || size % page != 0)) {
        return Status::error(gguf_path_text(paths[i]) + ": a byte chunk of " +
                             std::to_string(size) + " bytes, not a multiple of the page size (" +
                             std::to_string(page) + "); join the chunks into one file (cat)");
      }
      sizes.push_back(size);
      total += size;
    }
    MappedFile mapped;
    if (total == 0) return mapped;
    void* base =
        mmap(nullptr, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED)
      return Status::error("cannot reserve " + std::to_string(total) + " bytes");
    mapped.address_ = base;
    mapped.size_ = total;
    uint64_t offset = 0;
    for (size_t i = 0; i < paths.size(); ++i) {
      if (sizes[i] == 0) continue;
      const int fd = ::open(paths[i].c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0)
        return Status::error(gguf_path_text(paths[i]) + ": cannot open: " + std::strerror(errno));
      void* at = mmap(static_cast<uint8_t*>(base) + offset, sizes[i], PROT_READ,
                      MAP_PRIVATE | MAP_FIXED, fd, 0);
      const int error = errno;
      ::close(fd);
      if (at == MAP_FAILED)
        return Status::error(gguf_path_text(paths[i]) + ": cannot map: " + std::strerror(error));
      offset += sizes[i];
    }
    return mapped;
  }

  std::span<const uint8_t> bytes() const { return {static_cast<const uint8_t*>(address_), size_}; }

 private:
  void* address_ = nullptr;
  size_t size_ = 0;
};

bool file_exists(const std::string& path) {
  struct stat info {};
  return stat(path.c_str(), &info) == 0;
}

// Whether the file starts with the GGUF magic; false when it cannot be read.
bool starts_with_magic(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char magic[4] = {};
  const bool ok =
      ::read(fd, magic, sizeof magic) == sizeof magic && std::memcmp(magic, "GGUF", 4) == 0;
  ::close(fd);
  return ok;
}

Status error_at(const std::string& path, uint64_t at, const std::string& problem) {
  return Status::error(gguf_path_text(path) + ": " + problem + " at byte " + std::to_string(at));
}

// The value of an integer entry if it is a non-negative integer.
std::optional<uint64_t> as_count(const GgufValue& value) {
  if (!gguf_value_type_is_integer(value.type)) return std::nullopt;
  if (const auto* u = std::get_if<uint64_t>(&value.value)) return *u;
  const int64_t i = std::get<int64_t>(value.value);
  if (i < 0) return std::nullopt;
  return static_cast<uint64_t>(i);
}

struct Part {
  std::string path;
  MappedFile mapping;
  GgufContainer container;
};

Result<Part> load_part(const std::string& path) {
  Result<MappedFile> mapping = MappedFile::map(path);
  if (!mapping) return mapping.status();
  Result<GgufContainer> container = parse_gguf(path, mapping->bytes());
  if (!container) return container.status();
  return Part{path, std::move(mapping).value(), std::move(container).value()};
}

// Checks that a split key holds `expected`. llama.cpp writes split.no / split.count as u16; any
// integer type is accepted here as long as the value is right.
Status expect_split_key(const Part& part, std::string_view key, uint64_t expected,
                        const std::string& why) {
  const GgufKeyValue* entry = part.container.find(key);
  // The metadata list starts after the 24-byte header: that is where the key is missing from.
  if (entry == nullptr) {
    return error_at(part.path, 24, std::string(key) + " is missing (" + why + ")");
  }
  const uint64_t at = part.container.value_offset(*entry);
  const std::optional<uint64_t> value = as_count(entry->value);
  if (!value) {
    return error_at(part.path, at,
                    std::string(key) + " has type " + gguf_value_type_name(entry->value.type) +
                        ", expected a non-negative integer");
  }
  if (*value != expected) {
    return error_at(part.path, at,
                    std::string(key) + " is " + std::to_string(*value) + ", expected " +
                        std::to_string(expected) + " (" + why + ")");
  }
  return Status::ok();
}

}  // namespace

struct GgufFile::Impl {
  std::vector<Part> parts;
  std::vector<std::string> paths;
  std::vector<GgufTensorInfo> tensors;
  std::map<std::string, size_t, std::less<>> tensor_index;
  uint64_t file_bytes = 0;
  GgufLayout layout = GgufLayout::kSingleFile;

  const GgufContainer& first() const { return parts.front().container; }
  Status load_split_set(const GgufSplitName& name);
  Status load_byte_chunks(const GgufSplitName& name);
  Status check_single_file() const;
  Status merge_tensors();
};

// A file whose metadata says it is one of several parts must be named like one.
Status GgufFile::Impl::check_single_file() const {
  const Part& part = parts.front();
  const GgufKeyValue* count = part.container.find(kGgufKeySplitCount);
  if (count == nullptr) return Status::ok();
  const std::optional<uint64_t> n = as_count(count->value);
  if (n && *n <= 1) return Status::ok();
  return error_at(part.path, part.container.value_offset(*count),
                  "split.count is " + (n ? std::to_string(*n) : std::string("not a count")) +
                      " but the file is not named <stem>-00001-of-<count>.gguf");
}

// Spec §5.1: every part is a complete GGUF with split.no / split.count; tensors come from all.
Status GgufFile::Impl::load_split_set(const GgufSplitName& name) {
  layout = GgufLayout::kSplitSet;
  const std::string first_path = gguf_split_path(name.stem, 1, name.count, name.style);
  if (name.part != 1) {
    return Status::error(gguf_path_text(parts.front().path) + ": is part " +
                         std::to_string(name.part) + " of a split set; open " +
                         gguf_path_text(first_path));
  }
  const std::string of_n = " of " + std::to_string(name.count);
  for (uint32_t k = 1; k <= name.count; ++k) {
    if (k > 1) {
      const std::string path = gguf_split_path(name.stem, k, name.count, name.style);
      if (!file_exists(path)) {
        const GgufKeyValue* count = first().find(kGgufKeySplitCount);
        return error_at(parts.front().path, first().value_offset(*count),
                        "split.count is " + std::to_string(name.count) + " but part " +
                            gguf_path_text(path) + " is missing");
      }
      Result<Part> part = load_part(path);
      if (!part) return part.status();
      parts.push_back(std::move(part).value());
    }
    const Part& part = parts.back();
    const std::string why = "the file name says part " + std::to_string(k) + of_n;
    if (Status s = expect_split_key(part, kGgufKeySplitCount, name.count, why); !s) return s;
    if (Status s = expect_split_key(part, kGgufKeySplitNo, k - 1, why); !s) return s;
  }
  return Status::ok();
}

Status GgufFile::Impl::load_byte_chunks(const GgufSplitName& name) {
  layout = GgufLayout::kByteChunks;
  std::vector<std::string> chunk_paths;
  for (uint32_t k = 1; k <= name.count; ++k)
    chunk_paths.push_back(gguf_split_path(name.stem, k, name.count, name.style));
  if (name.part != 1) {
    return Status::error(gguf_path_text(chunk_paths[name.part - 1]) + ": is byte chunk " +
                         std::to_string(name.part) + " of one file; open " +
                         gguf_path_text(chunk_paths.front()));
  }
  for (const std::string& path : chunk_paths) {
    if (!file_exists(path)) {
      return Status::error(gguf_path_text(chunk_paths.front()) + ": byte chunk " +
                           gguf_path_text(path) + " of " + std::to_string(name.count) +
                           " is missing");
    }
  }
  Result<MappedFile> mapping = MappedFile::map_chunks(chunk_paths);
  if (!mapping) return mapping.status();
  Result<GgufContainer> container = parse_gguf(chunk_paths.front(), mapping->bytes());
  if (!container) return container.status();
  parts.push_back(
      Part{chunk_paths.front(), std::move(mapping).value(), std::move(container).value()});
  paths = std::move(chunk_paths);
  return check_single_file();
}

Status GgufFile::Impl::merge_tensors() {
  for (uint32_t split = 0; split < parts.size(); ++split) {
    Part& part = parts[split];
    file_bytes += part.mapping.bytes().size();
    for (GgufTensorInfo& info : part.container.tensors) {
      const auto [it, inserted] = tensor_index.emplace(info.name, tensors.size());
      if (!inserted) {
        const std::string& other = paths[tensors[it->second].split];
        return error_at(part.path, info.info_offset,
                        "duplicate tensor name " + gguf_quoted(info.name) + " (also in " +
                            gguf_path_text(other) + ")");
      }
      info.split = split;
      tensors.push_back(info);
    }
  }
  // split.tensors.count (i32 in llama.cpp's files) must match what the parts hold.
  const GgufKeyValue* declared = first().find(kGgufKeySplitTensorsCount);
  if (declared != nullptr && parts.size() > 1) {
    const std::optional<uint64_t> n = as_count(declared->value);
    if (!n || *n != tensors.size()) {
      return error_at(parts.front().path, first().value_offset(*declared),
                      "split.tensors.count is " +
                          (n ? std::to_string(*n) : std::string("invalid")) + " but the " +
                          std::to_string(parts.size()) + " parts hold " +
                          std::to_string(tensors.size()) + " tensors");
    }
  }
  return Status::ok();
}

Result<GgufFile> GgufFile::open(const std::string& path) {
  auto impl = std::make_unique<Impl>();
  // Parts named as a set whose second part (or this one, past the first) is no GGUF: byte
  // chunks of one file.
  if (const std::optional<GgufSplitName> name = parse_gguf_split_path(path);
      name && name->count > 1) {
    const std::string second = gguf_split_path(name->stem, 2, name->count, name->style);
    if ((name->part != 1 && !starts_with_magic(path)) ||
        (name->part == 1 && file_exists(second) && !starts_with_magic(second))) {
      if (Status s = impl->load_byte_chunks(*name); !s) return s;
      if (Status s = impl->merge_tensors(); !s) return s;
      return GgufFile(std::move(impl));
    }
  }
  Result<Part> first = load_part(path);
  if (!first) return first.status();
  impl->parts.push_back(std::move(first).value());
  // A name "-00001-of-00001.gguf" without split keys is an ordinary file (llama.cpp decides by
  // split.count too); any other part name makes it a split set.
  const std::optional<GgufSplitName> name = parse_gguf_split_path(path);
  const bool split = name && (name->count > 1 || impl->first().find(kGgufKeySplitCount) != nullptr);
  Status status = split ? impl->load_split_set(*name) : impl->check_single_file();
  if (!status) return status;
  for (const Part& part : impl->parts) impl->paths.push_back(part.path);
  status = impl->merge_tensors();
  if (!status) return status;
  return GgufFile(std::move(impl));
}

GgufFile::GgufFile(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GgufFile::GgufFile(GgufFile&&) noexcept = default;
GgufFile& GgufFile::operator=(GgufFile&&) noexcept = default;
GgufFile::~GgufFile() = default;

uint32_t GgufFile::version() const { return impl_->first().version; }
uint64_t GgufFile::alignment() const { return impl_->first().alignment; }
const std::vector<std::string>& GgufFile::paths() const { return impl_->paths; }
uint64_t GgufFile::file_bytes() const { return impl_->file_bytes; }
GgufLayout GgufFile::layout() const { return impl_->layout; }
const std::vector<GgufKeyValue>& GgufFile::metadata() const { return impl_->first().metadata; }
const GgufValue* GgufFile::find(std::string_view key) const {
  const GgufKeyValue* entry = impl_->first().find(key);
  return entry == nullptr ? nullptr : &entry->value;
}
const std::vector<GgufTensorInfo>& GgufFile::tensors() const { return impl_->tensors; }
const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  const auto it = impl_->tensor_index.find(name);
  return it == impl_->tensor_index.end() ? nullptr : &impl_->tensors[it->second];
}

}  // namespace v4
