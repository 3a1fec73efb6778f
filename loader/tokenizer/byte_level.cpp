#include "loader/tokenizer/byte_level.h"

#include <array>

namespace megrez::byte_level {
namespace {

// Bytes that are printable Latin-1 characters keep their own code point.
bool keeps_own_codepoint(uint8_t b) {
  return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

constexpr char32_t kFirstRemapped = 0x100;  // the 68 other bytes take U+0100..U+0143

struct Tables {
  std::array<char32_t, 256> to_cp{};
  std::array<uint8_t, 68> remapped_byte{};  // (code point - kFirstRemapped) -> byte
  Tables() {
    char32_t next = kFirstRemapped;
    for (int b = 0; b < 256; ++b) {
      if (keeps_own_codepoint(uint8_t(b))) {
        to_cp[b] = char32_t(b);
      } else {
        remapped_byte[next - kFirstRemapped] = uint8_t(b);
        to_cp[b] = next++;
      }
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

char32_t byte_to_codepoint(uint8_t b) { return tables().to_cp[b]; }

std::optional<uint8_t> codepoint_to_byte(char32_t cp) {
  if (cp < 0x100) {
    if (keeps_own_codepoint(uint8_t(cp))) return uint8_t(cp);
    return std::nullopt;
  }
  if (cp >= kFirstRemapped + tables().remapped_byte.size()) return std::nullopt;
  return tables().remapped_byte[cp - kFirstRemapped];
}

std::string encode_bytes(std::string_view raw) {
  std::string out;
  out.reserve(raw.size() * 2);
  for (unsigned char b : raw) utf8::append(out, byte_to_codepoint(b));
  return out;
}

std::string decode_to_bytes(std::string_view vocab_string) {
  std::string out;
  size_t pos = 0;
  while (pos < vocab_string.size()) {
    size_t start = pos;
    auto cp = utf8::next_codepoint(vocab_string, pos);
    if (!cp) {
      out.append(vocab_string.substr(start, pos - start));
      continue;
    }
    if (auto b = codepoint_to_byte(*cp))
      out.push_back(char(*b));
    else
      out.append(vocab_string.substr(start, pos - start));
  }
  return out;
}

}  // namespace megrez::byte_level

namespace megrez::utf8 {

std::optional<char32_t> next_codepoint(std::string_view s, size_t& pos) {
  auto byte = [&](size_t i) { return uint8_t(s[i]); };
  uint8_t lead = byte(pos);
  int extra;
  char32_t cp;
  if (lead < 0x80) {
    ++pos;
    return lead;
  } else if (lead >= 0xC2 && lead <= 0xDF) {
    extra = 1;
    cp = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    extra = 2;
    cp = lead & 0x0F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    extra = 3;
    cp = lead & 0x07;
  } else {
    ++pos;
    return std::nullopt;
  }
  if (pos + extra >= s.size()) {
    ++pos;
    return std::nullopt;
  }
  for (int i = 1; i <= extra; ++i) {
    uint8_t c = byte(pos + i);
    if ((c & 0xC0) != 0x80) {
      ++pos;
      return std::nullopt;
    }
    cp = (cp << 6) | (c & 0x3F);
  }
  // Reject overlong forms, surrogates and values past U+10FFFF.
  bool overlong = (extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000);
  if (overlong || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
    ++pos;
    return std::nullopt;
  }
  pos += extra + 1;
  return cp;
}

void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (cp >> 18)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

bool is_valid(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size())
    if (!next_codepoint(s, pos)) return false;
  return true;
}

}  // namespace megrez::utf8
