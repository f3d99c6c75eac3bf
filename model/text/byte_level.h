// GPT-2 byte-level alphabet: every byte is shown as one printable code point so that BPE merges
// and vocabulary strings never contain raw control bytes or spaces (space is "Ġ", U+0120).
// Spec §5.3: tokenizer.ggml.model = "gpt2".
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace v4 {

// The code point that stands for `byte` in vocabulary strings.
uint32_t byte_to_code_point(uint8_t byte);

// The byte a code point stands for, or nullopt when it is outside the 256-symbol alphabet.
std::optional<uint8_t> code_point_to_byte(uint32_t code_point);

// UTF-8 of byte_to_code_point(byte) for each byte: the single-byte vocabulary strings.
const std::array<std::string, 256>& byte_level_symbols();

// Maps raw bytes to their byte-level vocabulary spelling.
std::string byte_level_encode(std::string_view bytes);

// Maps a vocabulary string back to bytes. Returns nullopt when the string holds a code point
// outside the alphabet (added tokens are stored as plain text and decode as themselves).
std::optional<std::string> byte_level_decode(std::string_view token_text);

// Appends the UTF-8 encoding of `code_point` (assumed a valid scalar value).
void append_utf8(std::string& out, uint32_t code_point);

// Length of the well-formed UTF-8 sequence starting at text[pos] (1..4), or 0 when the bytes
// there do not start one (bad lead byte, bad continuation, overlong, surrogate, > U+10FFFF,
// truncated). `code_point` receives the decoded value when non-null.
size_t utf8_sequence_length(std::string_view text, size_t pos, uint32_t* code_point = nullptr);

}  // namespace v4
