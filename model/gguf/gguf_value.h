// A GGUF metadata value: one of the 13 value types of the container, arrays (possibly nested)
// included. Integers are held widened (u64 / i64) and floats as double; `type` keeps the exact
// on-disk type so a value round-trips through reader and writer unchanged. Spec §5.1.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace v4 {

enum class GgufValueType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};

// Arrays may nest (an array of arrays); deeper nesting is rejected on read and write so that a
// hostile file cannot exhaust the stack of the recursive parser.
constexpr uint32_t kGgufMaxArrayDepth = 16;

const char* gguf_value_type_name(GgufValueType type);  // "U8", ..., "F64"; "INVALID" otherwise
bool gguf_value_type_is_valid(uint32_t raw);
bool gguf_value_type_is_integer(GgufValueType type);  // U8..I64, not BOOL
// Bytes of one value of a fixed-size type on disk; 0 for STRING and ARRAY (variable size).
uint64_t gguf_value_type_size(GgufValueType type);
// Fewest bytes one value of `type` takes on disk (a string its length field, an array its type
// and count): bounds a count read from the file by the bytes that remain.
uint64_t gguf_value_min_encoded_size(GgufValueType type);

struct GgufValue {
  GgufValueType type = GgufValueType::U32;
  GgufValueType element_type = GgufValueType::U32;  // arrays only
  std::variant<uint64_t, int64_t, double, bool, std::string, std::vector<GgufValue>> value;

  static GgufValue u8(uint8_t v) { return scalar(GgufValueType::U8, uint64_t{v}); }
  static GgufValue i8(int8_t v) { return scalar(GgufValueType::I8, int64_t{v}); }
  static GgufValue u16(uint16_t v) { return scalar(GgufValueType::U16, uint64_t{v}); }
  static GgufValue i16(int16_t v) { return scalar(GgufValueType::I16, int64_t{v}); }
  static GgufValue u32(uint32_t v) { return scalar(GgufValueType::U32, uint64_t{v}); }
  static GgufValue i32(int32_t v) { return scalar(GgufValueType::I32, int64_t{v}); }
  static GgufValue u64(uint64_t v) { return scalar(GgufValueType::U64, v); }
  static GgufValue i64(int64_t v) { return scalar(GgufValueType::I64, v); }
  static GgufValue f32(float v) { return scalar(GgufValueType::F32, double{v}); }
  static GgufValue f64(double v) { return scalar(GgufValueType::F64, v); }
  static GgufValue boolean(bool v) { return scalar(GgufValueType::BOOL, v); }
  static GgufValue string(std::string v) { return scalar(GgufValueType::STRING, std::move(v)); }
  static GgufValue array(GgufValueType element_type, std::vector<GgufValue> elements) {
    GgufValue out;
    out.type = GgufValueType::ARRAY;
    out.element_type = element_type;
    out.value = std::move(elements);
    return out;
  }

  bool is_array() const { return type == GgufValueType::ARRAY; }
  const std::vector<GgufValue>& elements() const { return std::get<std::vector<GgufValue>>(value); }

  bool operator==(const GgufValue& other) const = default;

 private:
  template <class T>
  static GgufValue scalar(GgufValueType t, T v) {
    GgufValue out;
    out.type = t;
    out.value = std::move(v);
    return out;
  }
};

struct GgufKeyValue {
  std::string key;
  GgufValue value;
};

}  // namespace v4
