// parse_gguf: the validating GGUF v3 parser over a byte span (mmap'd file or fuzzer input).
// Spec §5.1. Every field is bounds-checked by GgufCursor; every count is bounded by the bytes
// left before anything is reserved; tensor data ranges are checked against the image.
#include "model/gguf/gguf_reader.h"

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <optional>
#include <unordered_set>

#include "model/gguf/gguf_cursor.h"

#define GGUF_TRY(expr)                                           \
  do {                                                           \
    if (::v4::Status status_ = (expr); !status_) return status_; \
  } while (0)

namespace v4 {

std::string gguf_printable(std::string_view text, size_t max_shown) {
  std::string out;
  for (size_t i = 0; i < text.size() && i < max_shown; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > max_shown) out += "...";
  return out;
}

const GgufKeyValue* GgufContainer::find(std::string_view key) const {
  for (const GgufKeyValue& entry : metadata) {
    if (entry.key == key) return &entry;
  }
  return nullptr;
}

namespace {

// Fewest bytes a metadata entry can take: empty key (u64 length), value type, a one-byte value.
constexpr uint64_t kMinKeyValueBytes = 8 + 4 + 1;
// Fewest bytes a tensor info can take: empty name, n_dims, one dimension, type, offset.
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;
constexpr uint32_t kBigEndianVersion3 = 0x03000000;
constexpr uint32_t kBigEndianVersion2 = 0x02000000;

uint64_t align_up(uint64_t offset, uint64_t alignment) {
  const uint64_t rest = offset % alignment;
  return rest == 0 ? offset : offset + (alignment - rest);
}

class GgufParser {
 public:
  GgufParser(std::string_view name, std::span<const uint8_t> bytes) : cursor_(name, bytes) {}

  Result<GgufContainer> parse() {
    uint64_t n_tensors = 0;
    uint64_t n_entries = 0;
    GGUF_TRY(parse_header(n_tensors, n_entries));
    container_.metadata.reserve(n_entries);
    container_.metadata_offsets.reserve(n_entries);
    for (uint64_t i = 0; i < n_entries; ++i) GGUF_TRY(parse_key_value());
    // Re-bound by what is left now that the metadata is read (the header check was looser).
    GGUF_TRY(cursor_.check_count(n_tensors, kMinTensorInfoBytes, 8, "tensor count", ""));
    container_.tensors.reserve(n_tensors);
    offset_fields_.reserve(n_tensors);
    for (uint64_t i = 0; i < n_tensors; ++i) GGUF_TRY(parse_tensor_info());
    // Spec §5.1: the data section starts at the next multiple of general.alignment.
    container_.data_offset = align_up(cursor_.offset(), container_.alignment);
    GGUF_TRY(check_tensor_ranges());
    GGUF_TRY(check_no_overlap());
    return std::move(container_);
  }

 private:
  Status parse_header(uint64_t& n_tensors, uint64_t& n_entries) {
    uint32_t magic = 0;
    GGUF_TRY(cursor_.read(magic, "magic"));
    if (magic != kGgufMagic) {
      char text[64];
      std::snprintf(text, sizeof text, "bad magic 0x%08x (expected 0x%08x \"GGUF\")", magic,
                    kGgufMagic);
      return cursor_.error(0, text);
    }
    uint32_t version = 0;
    GGUF_TRY(cursor_.read(version, "version"));
    if (version == kBigEndianVersion3 || version == kBigEndianVersion2) {
      return cursor_.error(4, "big-endian GGUF is not supported");
    }
    if (version != 3 && version != 2) {
      // v1 used u32 counts and lengths; v2 and v3 share the little-endian layout read here.
      return cursor_.error(4,
                           "unsupported version " + std::to_string(version) + " (expected 2 or 3)");
    }
    container_.version = version;
    GGUF_TRY(cursor_.read(n_tensors, "tensor count"));
    GGUF_TRY(cursor_.read(n_entries, "metadata count"));
    GGUF_TRY(cursor_.check_count(n_tensors, kMinTensorInfoBytes, 8, "tensor count", ""));
    return cursor_.check_count(n_entries, kMinKeyValueBytes, 16, "metadata count", "");
  }

  Status parse_key_value() {
    const uint64_t key_at = cursor_.offset();
    GgufKeyValue entry;
    GGUF_TRY(cursor_.read_string(entry.key, "key", ""));
    if (!keys_.insert(entry.key).second) {
      return cursor_.error(key_at, "duplicate key " + gguf_quoted(entry.key));
    }
    const std::string context = " of key " + gguf_quoted(entry.key);
    const uint64_t type_at = cursor_.offset();
    uint32_t raw_type = 0;
    GGUF_TRY(cursor_.read(raw_type, "value type" + context));
    if (!gguf_value_type_is_valid(raw_type)) {
      return cursor_.error(type_at, "invalid value type " + std::to_string(raw_type) + context);
    }
    const uint64_t value_at = cursor_.offset();
    GGUF_TRY(parse_value(static_cast<GgufValueType>(raw_type), context, 0, entry.value));
    if (entry.key == "general.alignment") GGUF_TRY(apply_alignment(entry.value, value_at));
    container_.metadata.push_back(std::move(entry));
    container_.metadata_offsets.push_back(value_at);
    return Status::ok();
  }

  // ggml reads general.alignment as a u32 and rejects zero and non-powers of two.
  Status apply_alignment(const GgufValue& value, uint64_t at) {
    if (value.type != GgufValueType::U32) {
      return cursor_.error(at, std::string("general.alignment has type ") +
                                   gguf_value_type_name(value.type) + ", expected U32");
    }
    const uint64_t alignment = std::get<uint64_t>(value.value);
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
      return cursor_.error(
          at, "general.alignment " + std::to_string(alignment) + " is not a nonzero power of two");
    }
    container_.alignment = alignment;
    return Status::ok();
  }

  Status parse_value(GgufValueType type, const std::string& context, uint32_t depth,
                     GgufValue& out) {
    if (type == GgufValueType::ARRAY) return parse_array(context, depth + 1, out);
    if (type == GgufValueType::STRING) {
      std::string text;
      GGUF_TRY(cursor_.read_string(text, "string", context));
      out = GgufValue::string(std::move(text));
      return Status::ok();
    }
    return parse_scalar(type, context, out);
  }

  template <class T>
  Status read_scalar(T& out, const std::string& context) {
    return cursor_.read(out, "value" + context);
  }

  Status parse_scalar(GgufValueType type, const std::string& context, GgufValue& out) {
    const uint64_t at = cursor_.offset();
    switch (type) {
      case GgufValueType::U8:
        return read_as<uint8_t>(context, out, &GgufValue::u8);
      case GgufValueType::I8:
        return read_as<int8_t>(context, out, &GgufValue::i8);
      case GgufValueType::U16:
        return read_as<uint16_t>(context, out, &GgufValue::u16);
      case GgufValueType::I16:
        return read_as<int16_t>(context, out, &GgufValue::i16);
      case GgufValueType::U32:
        return read_as<uint32_t>(context, out, &GgufValue::u32);
      case GgufValueType::I32:
        return read_as<int32_t>(context, out, &GgufValue::i32);
      case GgufValueType::U64:
        return read_as<uint64_t>(context, out, &GgufValue::u64);
      case GgufValueType::I64:
        return read_as<int64_t>(context, out, &GgufValue::i64);
      case GgufValueType::F32:
        return read_as<float>(context, out, &GgufValue::f32);
      case GgufValueType::F64:
        return read_as<double>(context, out, &GgufValue::f64);
      case GgufValueType::BOOL: {
        uint8_t raw = 0;
        GGUF_TRY(read_scalar(raw, context));
        if (raw > 1) {
          return cursor_.error(at,
                               "bool value " + std::to_string(raw) + context + " is not 0 or 1");
        }
        out = GgufValue::boolean(raw == 1);
        return Status::ok();
      }
      case GgufValueType::STRING:
      case GgufValueType::ARRAY:
        break;
    }
    return cursor_.error(at, "invalid value type" + context);  // unreachable: callers validate
  }

  template <class T, class Make>
  Status read_as(const std::string& context, GgufValue& out, Make make) {
    T raw{};
    GGUF_TRY(read_scalar(raw, context));
    out = make(raw);
    return Status::ok();
  }

  // Spec §5.1: an array is a u32 element type, a u64 count, then the elements (arrays may nest).
  Status parse_array(const std::string& context, uint32_t depth, GgufValue& out) {
    const uint64_t type_at = cursor_.offset();
    uint32_t raw_type = 0;
    GGUF_TRY(cursor_.read(raw_type, "array element type" + context));
    if (!gguf_value_type_is_valid(raw_type)) {
      return cursor_.error(type_at,
                           "invalid array element type " + std::to_string(raw_type) + context);
    }
    const auto element_type = static_cast<GgufValueType>(raw_type);
    if (element_type == GgufValueType::ARRAY && depth >= kGgufMaxArrayDepth) {
      return cursor_.error(type_at, "arrays" + context + " nest deeper than " +
                                        std::to_string(kGgufMaxArrayDepth) + " levels");
    }
    const uint64_t count_at = cursor_.offset();
    uint64_t count = 0;
    GGUF_TRY(cursor_.read(count, "array count" + context));
    GGUF_TRY(cursor_.check_count(count, gguf_value_min_encoded_size(element_type), count_at,
                                 "array count", context));
    std::vector<GgufValue> elements(count);
    for (GgufValue& element : elements) {
      GGUF_TRY(parse_value(element_type, context, depth, element));
    }
    out = GgufValue::array(element_type, std::move(elements));
    return Status::ok();
  }

  Status parse_tensor_info() {
    GgufTensorInfo info;
    info.info_offset = cursor_.offset();
    GGUF_TRY(cursor_.read_string(info.name, "tensor name", ""));
    if (!tensor_names_.insert(info.name).second) {
      return cursor_.error(info.info_offset, "duplicate tensor name " + gguf_quoted(info.name));
    }
    const std::string context = " of tensor " + gguf_quoted(info.name);
    GGUF_TRY(parse_dims(info, context));
    GGUF_TRY(parse_type_and_size(info, context));
    const uint64_t offset_at = cursor_.offset();
    uint64_t offset = 0;
    GGUF_TRY(cursor_.read(offset, "offset" + context));
    if (offset % container_.alignment != 0) {
      return cursor_.error(offset_at, "offset " + std::to_string(offset) + context +
                                          " is not a multiple of the alignment " +
                                          std::to_string(container_.alignment));
    }
    info.file_offset = offset;  // relative until the data section start is known
    container_.tensors.push_back(std::move(info));
    offset_fields_.push_back(offset_at);
    return Status::ok();
  }

  Status parse_dims(GgufTensorInfo& info, const std::string& context) {
    const uint64_t n_dims_at = cursor_.offset();
    uint32_t n_dims = 0;
    GGUF_TRY(cursor_.read(n_dims, "n_dims" + context));
    if (n_dims == 0 || n_dims > kGgufMaxDims) {
      return cursor_.error(n_dims_at, "n_dims " + std::to_string(n_dims) + context +
                                          " is not in 1.." + std::to_string(kGgufMaxDims));
    }
    info.dims.resize(n_dims);
    info.n_elements = 1;
    for (uint32_t i = 0; i < n_dims; ++i) {
      const uint64_t dim_at = cursor_.offset();
      const std::string dim_name = "dimension " + std::to_string(i);
      GGUF_TRY(cursor_.read(info.dims[i], dim_name + context));
      if (info.dims[i] == 0) return cursor_.error(dim_at, dim_name + context + " is 0");
      if (__builtin_mul_overflow(info.n_elements, info.dims[i], &info.n_elements)) {
        return cursor_.error(dim_at, "element count" + context + " overflows u64");
      }
    }
    return Status::ok();
  }

  Status parse_type_and_size(GgufTensorInfo& info, const std::string& context) {
    const uint64_t type_at = cursor_.offset();
    uint32_t raw_type = 0;
    GGUF_TRY(cursor_.read(raw_type, "type" + context));
    const std::optional<GgmlTypeTraits> traits = ggml_type_traits(raw_type);
    if (!traits) {
      return cursor_.error(type_at, "unknown ggml type " + std::to_string(raw_type) + context);
    }
    info.type = static_cast<GgmlType>(raw_type);
    // Quant blocks run along ne0 (spec §5.1), so every row must hold whole blocks.
    if (info.dims[0] % traits->block_size != 0) {
      return cursor_.error(type_at, "row length " + std::to_string(info.dims[0]) + context +
                                        " is not a multiple of the block size " +
                                        std::to_string(traits->block_size) + " of " +
                                        std::string(traits->name));
    }
    const uint64_t n_blocks = info.n_elements / traits->block_size;
    if (__builtin_mul_overflow(n_blocks, uint64_t{traits->type_size}, &info.n_bytes)) {
      return cursor_.error(type_at, "byte size" + context + " overflows u64");
    }
    return Status::ok();
  }

  // Every tensor's [offset, offset + n_bytes) must lie inside the data section of this image.
  Status check_tensor_ranges() {
    const uint64_t size = cursor_.size();
    const uint64_t data_offset = container_.data_offset;
    const uint64_t section = data_offset <= size ? size - data_offset : 0;
    for (size_t i = 0; i < container_.tensors.size(); ++i) {
      GgufTensorInfo& info = container_.tensors[i];
      const uint64_t offset = info.file_offset;
      const std::string context = " of tensor " + gguf_quoted(info.name);
      if (data_offset > size || offset >= section) {
        return cursor_.error(offset_fields_[i], "offset " + std::to_string(offset) + context +
                                                    " is outside the file (data section holds " +
                                                    std::to_string(section) + " bytes)");
      }
      if (info.n_bytes > section - offset) {
        return cursor_.error(data_offset + offset, "truncated data" + context + " (needs " +
                                                       std::to_string(info.n_bytes) + " bytes, " +
                                                       std::to_string(section - offset) + " left)");
      }
      info.file_offset = data_offset + offset;
      info.data = cursor_.data() + info.file_offset;
    }
    return Status::ok();
  }

  Status check_no_overlap() {
    std::vector<size_t> order(container_.tensors.size());
    std::iota(order.begin(), order.end(), size_t{0});
    const auto& tensors = container_.tensors;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return tensors[a].file_offset < tensors[b].file_offset;
    });
    for (size_t k = 1; k < order.size(); ++k) {
      const GgufTensorInfo& before = tensors[order[k - 1]];
      const GgufTensorInfo& after = tensors[order[k]];
      if (after.file_offset < before.file_offset + before.n_bytes) {
        const uint64_t base = container_.data_offset;
        return cursor_.error(offset_fields_[order[k]],
                             "data of tensor " + gguf_quoted(after.name) + " at offset " +
                                 std::to_string(after.file_offset - base) + " overlaps tensor " +
                                 gguf_quoted(before.name) + " at offset " +
                                 std::to_string(before.file_offset - base) + " (" +
                                 std::to_string(before.n_bytes) + " bytes)");
      }
    }
    return Status::ok();
  }

  GgufCursor cursor_;
  GgufContainer container_;
  std::unordered_set<std::string> keys_;
  std::unordered_set<std::string> tensor_names_;
  std::vector<uint64_t> offset_fields_;  // byte offset of each tensor's offset field
};

}  // namespace

Result<GgufContainer> parse_gguf(std::string_view name, std::span<const uint8_t> bytes) {
  return GgufParser(name, bytes).parse();
}

}  // namespace v4
