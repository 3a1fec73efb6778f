#pragma once
// Byte-level BPE pre-tokenization: the text is cut into pieces by one or more regexes
// (Hugging Face's Split pre-tokenizer with behaviour "Isolated": every match is a piece and
// so is every stretch between matches), each applied to the pieces of the one before.
// Regexes run through PCRE2 with UTF + UCP, so \p{L}, \p{N} and \s are Unicode-aware.
// Invalid UTF-8 never matches and ends up in the between-match pieces, so no input is lost.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace megrez {

// The patterns of the pre-tokenizers GGUF files name in tokenizer.ggml.pre.
inline constexpr std::string_view kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Name used in TokenizerData::pre ("qwen2", "gpt2", "llama-bpe") for a pattern list, or
// "" when the list is none of those.
std::string pre_tokenizer_name(const std::vector<std::string>& patterns);
// Patterns of a named pre-tokenizer (also accepts llama.cpp's aliases "default", "megrez",
// "llama3"...); throws megrez::Error for names it does not know.
std::vector<std::string> pre_tokenizer_patterns(std::string_view name);

// Whether `text` contains a Unicode combining mark (\p{M}).
bool has_combining_mark(std::string_view text);

class PreTokenizer {
 public:
  // Throws megrez::Error naming the pattern when PCRE2 rejects it.
  explicit PreTokenizer(std::vector<std::string> patterns);
  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  // Pieces of `text` in order; they concatenate back to `text` exactly.
  std::vector<std::string_view> split(std::string_view text) const;
  const std::vector<std::string>& patterns() const { return patterns_; }

 private:
  struct Regex;
  std::vector<std::string> patterns_;
  std::vector<std::unique_ptr<Regex>> regexes_;
};

}  // namespace megrez
