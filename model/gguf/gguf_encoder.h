// Little-endian encoding of GGUF header fields and metadata values, shared by the writer's
// layout (sizes) and its output (bytes). Spec §5.1.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "model/gguf/gguf_value.h"

namespace v4 {

class GgufEncoder {
 public:
  template <class T>
  void put(T value) {
    static_assert(std::is_trivially_copyable_v<T>);
    const size_t at = bytes_.size();
    bytes_.resize(at + sizeof(T));
    std::memcpy(bytes_.data() + at, &value, sizeof(T));
  }
  // Spec §5.1: u64 length + UTF-8 bytes, no terminator.
  void put_string(std::string_view text) {
    put<uint64_t>(text.size());
    bytes_.insert(bytes_.end(), text.begin(), text.end());
  }
  // The value without its type tag (the tag precedes it in a key/value pair, not in arrays).
  // The value must have passed gguf_value_problem.
  void put_value(const GgufValue& value);
  // key, u32 value type, value.
  void put_key_value(std::string_view key, const GgufValue& value);
  void pad_to(uint64_t alignment) {
    while (bytes_.size() % alignment != 0) bytes_.push_back(0);
  }

  const std::vector<uint8_t>& bytes() const { return bytes_; }
  size_t size() const { return bytes_.size(); }

 private:
  std::vector<uint8_t> bytes_;
};

// Why `value` cannot be written ("value 300 does not fit U8"), or an empty string. Checks that
// the variant matches the declared type, that integers fit it, array element types and depth.
std::string gguf_value_problem(const GgufValue& value, uint32_t depth = 0);

}  // namespace v4
