// Chat template lexer: splits template source into text and the tokens inside tags, and
// applies Jinja's whitespace rules (whitespace control, trim_blocks, lstrip_blocks).
#include <cctype>

#include "loader/chat/chat_template_ast.h"
#include "loader/tokenizer/byte_level.h"

namespace megrez::jinja {
namespace {

constexpr std::string_view kWhitespace = " \t\n\r\f\v";

class Lexer {
 public:
  explicit Lexer(std::string_view source) : src_(source) {
    // Jinja's default keep_trailing_newline=False drops one final newline.
    if (src_.ends_with('\n')) src_.remove_suffix(1);
  }

  std::vector<Token> run() {
    while (pos_ < src_.size()) {
      size_t tag = find_tag(pos_);
      add_text(src_.substr(pos_, tag - pos_));
      if (tag == src_.size()) break;
      pos_ = tag;
      lex_tag();
    }
    tokens_.push_back({Token::Kind::End, ""});
    return std::move(tokens_);
  }

 private:
  size_t find_tag(size_t from) const {
    for (size_t i = from; i + 1 < src_.size(); ++i)
      if (src_[i] == '{' && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#'))
        return i;
    return src_.size();
  }

  void add_text(std::string_view text) {
    std::string t(text);
    if (strip_next_text_) {
      size_t keep = t.find_first_not_of(kWhitespace);
      t.erase(0, keep == std::string::npos ? t.size() : keep);
      strip_next_text_ = false;
    }
    if (!t.empty()) tokens_.push_back({Token::Kind::Text, std::move(t)});
  }

  Token* last_text() {
    return !tokens_.empty() && tokens_.back().kind == Token::Kind::Text ? &tokens_.back() : nullptr;
  }

  // "{%-" strips all whitespace before the tag. A plain "{%" or "{#" (lstrip_blocks) strips
  // the spaces and tabs before it when nothing else precedes it on its source line.
  void strip_before_tag(size_t tag, char modifier, bool is_block_or_comment) {
    Token* text = last_text();
    if (!text) return;
    std::string& t = text->text;
    if (modifier == '-') {
      t.erase(t.find_last_not_of(kWhitespace) + 1);
    } else if (modifier != '+' && is_block_or_comment) {
      size_t newline = tag == 0 ? std::string_view::npos : src_.rfind('\n', tag - 1);
      size_t line_start = newline == std::string_view::npos ? 0 : newline + 1;
      std::string_view indent = src_.substr(line_start, tag - line_start);
      if (indent.find_first_not_of(" \t") == std::string_view::npos) {
        size_t n = 0;
        while (n < indent.size() && n < t.size() &&
               (t[t.size() - 1 - n] == ' ' || t[t.size() - 1 - n] == '\t'))
          ++n;
        t.erase(t.size() - n);
      }
    }
    if (t.empty()) tokens_.pop_back();
  }

  // After the closing delimiter: "-%}" strips all following whitespace; plain "%}" and "#}"
  // (trim_blocks) drop one newline.
  void after_tag(bool strip, bool is_block_or_comment) {
    if (strip) {
      strip_next_text_ = true;
    } else if (is_block_or_comment) {
      if (src_.compare(pos_, 1, "\n") == 0)
        pos_ += 1;
      else if (src_.compare(pos_, 2, "\r\n") == 0)
        pos_ += 2;
    }
  }

  void lex_tag() {
    size_t tag = pos_;
    char kind = src_[pos_ + 1];
    pos_ += 2;
    char modifier =
        pos_ < src_.size() && (src_[pos_] == '-' || src_[pos_] == '+') ? src_[pos_++] : 0;
    strip_before_tag(tag, modifier, kind != '{');
    if (kind == '#') {
      size_t end = src_.find("#}", pos_);
      if (end == std::string_view::npos) throw Unsupported("unterminated {# comment");
      bool strip = end > pos_ && src_[end - 1] == '-';
      pos_ = end + 2;
      after_tag(strip, true);
      return;
    }
    bool block = kind == '%';
    tokens_.push_back({block ? Token::Kind::BlockBegin : Token::Kind::OutputBegin, ""});
    std::string_view close = block ? "%}" : "}}";
    for (;;) {
      while (pos_ < src_.size() && kWhitespace.find(src_[pos_]) != std::string_view::npos) ++pos_;
      if (pos_ >= src_.size())
        throw Unsupported(std::string("unterminated ") + (block ? "{%" : "{{") + " tag");
      bool strip = src_[pos_] == '-' && src_.compare(pos_ + 1, 2, close) == 0;
      if (strip || src_.compare(pos_, 2, close) == 0) {
        pos_ += strip ? 3 : 2;
        tokens_.push_back({block ? Token::Kind::BlockEnd : Token::Kind::OutputEnd, ""});
        after_tag(strip, block);
        return;
      }
      lex_expression_token();
    }
  }

  void lex_expression_token() {
    char c = src_[pos_];
    if (std::isalpha(uint8_t(c)) || c == '_') {
      size_t start = pos_;
      while (pos_ < src_.size() && (std::isalnum(uint8_t(src_[pos_])) || src_[pos_] == '_')) ++pos_;
      tokens_.push_back({Token::Kind::Name, std::string(src_.substr(start, pos_ - start))});
    } else if (std::isdigit(uint8_t(c))) {
      size_t start = pos_;
      while (pos_ < src_.size() && std::isdigit(uint8_t(src_[pos_]))) ++pos_;
      if (pos_ < src_.size() && src_[pos_] == '.' && pos_ + 1 < src_.size() &&
          std::isdigit(uint8_t(src_[pos_ + 1])))
        throw Unsupported("floating-point literals are not supported");
      if (pos_ - start > 18) throw Unsupported("integer literal too long");
      tokens_.push_back({Token::Kind::Int, std::string(src_.substr(start, pos_ - start))});
    } else if (c == '\'' || c == '"') {
      tokens_.push_back({Token::Kind::String, lex_string(c)});
    } else {
      for (std::string_view op : {"==", "!=", "<=", ">=", "//", "**"})
        if (src_.compare(pos_, 2, op) == 0) {
          pos_ += 2;
          tokens_.push_back({Token::Kind::Op, std::string(op)});
          return;
        }
      if (std::string_view("+-*/%~<>()[]{}.,|:=").find(c) == std::string_view::npos)
        throw Unsupported(std::string("unexpected character '") + c + "' in a tag");
      ++pos_;
      tokens_.push_back({Token::Kind::Op, std::string(1, c)});
    }
  }

  // Python-style string literal; unknown escapes keep their backslash, as Python does.
  std::string lex_string(char quote) {
    std::string out;
    for (++pos_; pos_ < src_.size(); ++pos_) {
      char c = src_[pos_];
      if (c == quote) {
        ++pos_;
        return out;
      }
      if (c != '\\' || pos_ + 1 >= src_.size()) {
        out += c;
        continue;
      }
      char e = src_[++pos_];
      switch (e) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case 'a':
          out += '\a';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'v':
          out += '\v';
          break;
        case '\\':
        case '\'':
        case '"':
          out += e;
          break;
        case 'x':
          out += hex_escape(2);
          break;
        case 'u':
          out += hex_escape(4);
          break;
        case 'U':
          out += hex_escape(8);
          break;
        default:
          out += '\\';
          out += e;
      }
    }
    throw Unsupported("unterminated string literal");
  }

  // \xhh, \uhhhh, \Uhhhhhhhh with pos_ on the letter: the code point as UTF-8.
  std::string hex_escape(size_t digits) {
    if (src_.size() - pos_ - 1 < digits) throw Unsupported("truncated escape in a string literal");
    uint32_t cp = 0;
    for (size_t i = 1; i <= digits; ++i) {
      char h = src_[pos_ + i];
      int v = std::isdigit(uint8_t(h)) ? h - '0'
              : (h >= 'a' && h <= 'f') ? h - 'a' + 10
              : (h >= 'A' && h <= 'F') ? h - 'A' + 10
                                       : -1;
      if (v < 0) throw Unsupported("bad escape in a string literal");
      cp = cp * 16 + uint32_t(v);
    }
    pos_ += digits;
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      throw Unsupported("escape is not a Unicode scalar value");
    std::string out;
    utf8::append(out, char32_t(cp));
    return out;
  }

  std::string_view src_;
  size_t pos_ = 0;
  std::vector<Token> tokens_;
  bool strip_next_text_ = false;
};

}  // namespace

std::vector<Token> lex_template(std::string_view source) { return Lexer(source).run(); }

}  // namespace megrez::jinja
