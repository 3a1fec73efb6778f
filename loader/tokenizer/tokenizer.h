#pragma once
// Tokenizers: SentencePiece (libsentencepiece) and byte-level BPE (HF tokenizer.json,
// GPT-2 byte mapping, Qwen2 pre-tokenizer through PCRE2). Both round-trip through GGUF via
// TokenizerData, which the GGUF code maps to and from metadata keys.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace megrez {

// What a GGUF file stores of a tokenizer (keys tokenizer.ggml.* plus our own for SPM bytes).
struct TokenizerData {
  std::string model;                    // "llama" (SentencePiece) or "gpt2" (byte-level BPE)
  std::string pre;                      // BPE pre-tokenizer name, e.g. "qwen2"
  std::vector<std::string> tokens;      // id -> piece
  std::vector<float> scores;            // SentencePiece scores (empty for BPE)
  std::vector<int32_t> token_types;     // 1 normal, 2 unknown, 3 control, 4 user-defined, 6 byte
  std::vector<std::string> merges;      // BPE merges "a b", in rank order (empty for SPM)
  std::string spm_model;                // serialized SentencePiece ModelProto (SPM only)
  int32_t bos_id = -1, eos_id = -1, unk_id = -1, pad_id = -1;
  std::string chat_template;            // Jinja text from the checkpoint, if any
};

// Bytes [begin, end) of a text.
struct TextRange {
  size_t begin = 0, end = 0;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // allow_special: text like "<|turn_end|>" becomes its special id (never split) when true,
  // and is tokenized as plain text when false. `literal`: sorted, disjoint ranges of `text`
  // that are plain text even where they spell a special token, and that no special token
  // found outside them may overlap: what a user typed, inside a rendered chat (ChatFormat).
  virtual std::vector<int32_t> encode(std::string_view text, bool allow_special = true,
                                      std::span<const TextRange> literal = {}) const = 0;
  virtual std::string decode(std::span<const int32_t> ids) const = 0;
  // Text of one token as it should be streamed (incomplete UTF-8 is the caller's concern).
  virtual std::string token_text(int32_t id) const = 0;
  virtual int32_t vocab_size() const = 0;
  virtual std::optional<int32_t> token_id(std::string_view piece) const = 0;
  virtual bool is_special(int32_t id) const = 0;
  virtual const TokenizerData& data() const = 0;

  int32_t bos_id() const { return data().bos_id; }
  int32_t eos_id() const { return data().eos_id; }

  static std::unique_ptr<Tokenizer> from_sentencepiece(std::string_view serialized_model);
  // tokenizer.json text, plus tokenizer_config.json text when present (chat_template, specials).
  static std::unique_ptr<Tokenizer> from_hf_json(std::string_view tokenizer_json,
                                                 std::string_view tokenizer_config_json = {});
  static std::unique_ptr<Tokenizer> from_data(TokenizerData data);
};

}  // namespace megrez
