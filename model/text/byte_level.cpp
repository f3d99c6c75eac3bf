// GPT-2 byte-level alphabet (spec §5.3): the 188 printable bytes ('!'..'~', 0xA1..0xAC,
// 0xAE..0xFF) stand for themselves; the other 68 bytes take U+0100.. in byte order.
#include "model/text/byte_level.h"

namespace v4 {
namespace {

struct ByteLevelTables {
  std::array<uint32_t, 256> to_code_point{};
  std::array<std::string, 256> symbols;

  ByteLevelTables() {
    auto printable = [](int b) {
      return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      to_code_point[b] = printable(b) ? static_cast<uint32_t>(b) : next++;
      append_utf8(symbols[b], to_code_point[b]);
    }
  }
};

const ByteLevelTables& tables() {
  static const ByteLevelTables instance;
  return instance;
}

}  // namespace

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

size_t utf8_sequence_length(std::string_view text, size_t pos, uint32_t* code_point) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  const uint8_t lead = byte(pos);
  size_t length;
  uint32_t cp;
  uint32_t min_value;
  if (lead < 0x80) {
    if (code_point) *code_point = lead;
    return 1;
  } else if ((lead & 0xE0) == 0xC0) {
    length = 2, cp = lead & 0x1F, min_value = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, cp = lead & 0x0F, min_value = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, cp = lead & 0x07, min_value = 0x10000;
  } else {
    return 0;
  }
  if (pos + length > text.size()) return 0;
  for (size_t i = 1; i < length; ++i) {
    if ((byte(pos + i) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(pos + i) & 0x3F);
  }
  if (cp < min_value || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  if (code_point) *code_point = cp;
  return length;
}

uint32_t byte_to_code_point(uint8_t byte) { return tables().to_code_point[byte]; }

std::optional<uint8_t> code_point_to_byte(uint32_t cp) {
  if (cp < 256) {
    if (tables().to_code_point[cp] == cp) return static_cast<uint8_t>(cp);
    return std::nullopt;
  }
  // The 68 remapped bytes occupy U+0100..U+0143 in increasing byte order.
  if (cp >= 256 + 68) return std::nullopt;
  for (int b = 0; b < 256; ++b) {
    if (tables().to_code_point[b] == cp) return static_cast<uint8_t>(b);
  }
  return std::nullopt;
}

const std::array<std::string, 256>& byte_level_symbols() { return tables().symbols; }

std::string byte_level_encode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += tables().symbols[static_cast<uint8_t>(c)];
  return out;
}

std::optional<std::string> byte_level_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    uint32_t cp = 0;
    const size_t length = utf8_sequence_length(text, pos, &cp);
    if (length == 0) return std::nullopt;
    const std::optional<uint8_t> byte = code_point_to_byte(cp);
    if (!byte) return std::nullopt;
    out.push_back(static_cast<char>(*byte));
    pos += length;
  }
  return out;
}

}  // namespace v4
