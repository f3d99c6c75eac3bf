// UTF-8 hold-back and replacement for streamed decoding (spec §5.3).
#include "model/text/detokenizer.h"

#include "model/text/byte_level.h"

namespace v4 {
namespace {

constexpr const char* kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD

// Length of the longest prefix of text[pos..] that can still begin a well-formed sequence
// (the "maximal subpart" of Unicode §3.9), and the full length that sequence would need.
void maximal_subpart(std::string_view text, size_t pos, size_t& subpart, size_t& needed) {
  const auto lead = static_cast<uint8_t>(text[pos]);
  uint8_t low = 0x80, high = 0xBF;  // allowed range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    needed = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    needed = 3;
    if (lead == 0xE0) low = 0xA0;   // no overlongs
    if (lead == 0xED) high = 0x9F;  // no surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    needed = 4;
    if (lead == 0xF0) low = 0x90;   // no overlongs
    if (lead == 0xF4) high = 0x8F;  // nothing above U+10FFFF
  } else {
    needed = 1;  // ASCII, stray continuation byte or an impossible lead
    subpart = 1;
    return;
  }
  subpart = 1;
  while (subpart < needed && pos + subpart < text.size()) {
    const auto byte = static_cast<uint8_t>(text[pos + subpart]);
    const bool ok = subpart == 1 ? (byte >= low && byte <= high) : (byte & 0xC0) == 0x80;
    if (!ok) break;
    ++subpart;
  }
}

}  // namespace

std::string Utf8Stream::drain(bool final) {
  std::string out;
  size_t pos = 0;
  while (pos < pending_.size()) {
    const size_t length = utf8_sequence_length(pending_, pos);
    if (length > 0) {
      out.append(pending_, pos, length);
      pos += length;
      continue;
    }
    size_t subpart = 0, needed = 0;
    maximal_subpart(pending_, pos, subpart, needed);
    if (!final && subpart < needed && pos + subpart == pending_.size()) break;  // wait for more
    out += kReplacementCharacter;
    pos += subpart;
  }
  pending_.erase(0, pos);
  return out;
}

std::string Utf8Stream::push(std::string_view bytes) {
  pending_.append(bytes);
  return drain(false);
}

std::string Utf8Stream::finish() { return drain(true); }

std::string utf8_replace_invalid(std::string_view bytes) {
  Utf8Stream stream;
  std::string out = stream.push(bytes);
  return out + stream.finish();
}

}  // namespace v4
