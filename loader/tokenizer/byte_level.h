#pragma once
// UTF-8 helpers and GPT-2's byte-level alphabet. Byte-level BPE vocabularies never store raw
// bytes: every byte is first replaced by one printable code point (printable Latin-1 bytes by
// themselves, the other 68 bytes by U+0100.. in byte order), so a space is "Ġ" (U+0120) and a
// newline "Ċ" (U+010A). Merges and vocabulary entries are strings over that alphabet.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace megrez::byte_level {

// The code point that stands for byte `b` in vocabulary strings.
char32_t byte_to_codepoint(uint8_t b);
// The byte a vocabulary code point stands for; nullopt for code points outside the alphabet.
std::optional<uint8_t> codepoint_to_byte(char32_t cp);

// Raw bytes -> vocabulary string (UTF-8 of the mapped code points).
std::string encode_bytes(std::string_view raw);
// Vocabulary string -> raw bytes. Code points outside the alphabet are kept as their own
// UTF-8 (a lenient reading of odd vocabulary entries, as Hugging Face's decoder does).
std::string decode_to_bytes(std::string_view vocab_string);

}  // namespace megrez::byte_level

namespace megrez::utf8 {

// Decodes the code point starting at `pos` and advances `pos` past it. On a malformed or
// truncated sequence returns nullopt and advances `pos` by one byte.
std::optional<char32_t> next_codepoint(std::string_view s, size_t& pos);
void append(std::string& out, char32_t cp);
bool is_valid(std::string_view s);

}  // namespace megrez::utf8
