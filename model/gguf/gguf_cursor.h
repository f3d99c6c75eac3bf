// A bounded little-endian cursor over a GGUF image: every read checks the bytes left before it
// touches memory and fails with the one-line GGUF error "<file>: <problem> at byte <offset>".
// Internal to the GGUF reader. Spec §5.1 (all fields little-endian).
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "core/status.h"

namespace v4 {

static_assert(std::endian::native == std::endian::little, "GGUF is read by memcpy: little-endian");

// Text made safe for a one-line message: control bytes escaped, text past `max_shown` bytes cut
// (a hostile key may be megabytes long).
std::string gguf_printable(std::string_view text, size_t max_shown = 128);

// A file path for a message: escaped like any text but never cut.
inline std::string gguf_path_text(std::string_view path) {
  return gguf_printable(path, std::string_view::npos);
}

// "'name'" with the name made printable: how error messages quote keys and tensor names.
inline std::string gguf_quoted(std::string_view name) { return "'" + gguf_printable(name) + "'"; }

class GgufCursor {
 public:
  GgufCursor(std::string_view file_name, std::span<const uint8_t> bytes)
      : file_name_(file_name), bytes_(bytes) {}

  uint64_t offset() const { return offset_; }
  uint64_t size() const { return bytes_.size(); }
  uint64_t remaining() const { return bytes_.size() - offset_; }
  const uint8_t* data() const { return bytes_.data(); }

  // The error every GGUF parse failure returns: "<file>: <problem> at byte <at>".
  Status error(uint64_t at, std::string_view problem) const {
    return Status::error(gguf_path_text(file_name_) + ": " + std::string(problem) + " at byte " +
                         std::to_string(at));
  }

  // Reads one fixed-size field; `what` names it in "truncated <what>".
  template <class T>
  Status read(T& out, std::string_view what) {
    static_assert(std::is_trivially_copyable_v<T>);
    if (remaining() < sizeof(T)) return error(offset_, "truncated " + std::string(what));
    std::memcpy(&out, bytes_.data() + offset_, sizeof(T));
    offset_ += sizeof(T);
    return Status::ok();
  }

  // Reads a GGUF string (u64 length + bytes). `noun` names it ("key", "tensor name") and
  // `context` follows the problem (" of key 'a.b'").
  Status read_string(std::string& out, std::string_view noun, std::string_view context) {
    const uint64_t at = offset_;
    uint64_t length = 0;
    if (Status s = read(length, std::string(noun) + " length" + std::string(context)); !s) return s;
    if (length > remaining()) {
      return error(at, std::string(noun) + " length " + std::to_string(length) +
                           std::string(context) + " exceeds the " + std::to_string(remaining()) +
                           " bytes left");
    }
    out.assign(reinterpret_cast<const char*>(bytes_.data() + offset_), length);
    offset_ += length;
    return Status::ok();
  }

  // Fails unless `count` items of at least `min_item_bytes` each fit in the bytes left. Checked
  // before any container is reserved, so no count in the file can make us allocate more than
  // O(file size); the division cannot overflow where `count * min_item_bytes` could.
  Status check_count(uint64_t count, uint64_t min_item_bytes, uint64_t at, std::string_view noun,
                     std::string_view context) const {
    if (min_item_bytes == 0 || count <= remaining() / min_item_bytes) return Status::ok();
    return error(at, std::string(noun) + " " + std::to_string(count) + std::string(context) +
                         " needs more than the " + std::to_string(remaining()) + " bytes left");
  }

  void seek(uint64_t offset) { offset_ = offset; }

 private:
  std::string_view file_name_;
  std::span<const uint8_t> bytes_;
  uint64_t offset_ = 0;
};

}  // namespace v4
