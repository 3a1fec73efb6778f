#pragma once
// Pieces shared by the two tokenizer implementations (not part of the public contract).
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "loader/tokenizer/tokenizer.h"

namespace megrez::detail {

// GGUF token types (tokenizer.ggml.token_type), which SentencePiece's enum also uses.
enum TokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// A stretch of input text, or one special token found in it.
struct TextFragment {
  std::string_view text;  // empty for a special token
  int32_t special_id = -1;
  bool literal = false;   // one of the caller's literal ranges, whole
};

// Finds special-token strings in text, leftmost first and, among those starting at the same
// byte, longest first (so "<|role_start|>" wins over a shorter "<|role"). A trie of the
// pieces: each text position costs the length of the longest piece prefix found there, not
// the number of specials (thousands of specials all starting with '<' made tokenizing
// quadratic). Of equal pieces, the first added wins.
class SpecialMatcher {
 public:
  // `always`: matched even when the caller asked for plain text (allow_special = false).
  void add(std::string piece, int32_t id, bool always);
  // Each of `literal` (sorted, disjoint ranges of text) becomes one fragment of its own in
  // which nothing is matched; a special token overlapping one is not matched either.
  std::vector<TextFragment> split(std::string_view text, bool allow_special,
                                  std::span<const TextRange> literal = {}) const;
  bool empty() const { return count_ == 0; }

 private:
  struct Node {
    int32_t id = -1;         // the first piece added that ends here
    int32_t always_id = -1;  // the first `always` piece that ends here
  };
  // The longest eligible piece starting at text[pos] and ending by `limit`: {id, length}.
  std::pair<int32_t, size_t> longest_at(std::string_view text, size_t pos, size_t limit, bool allow_special) const;

  std::vector<Node> nodes_ = std::vector<Node>(1);  // nodes_[0]: the root
  std::unordered_map<uint64_t, uint32_t> edges_;     // (node << 8 | byte) -> child
  size_t count_ = 0;
};

// Checks what every tokenizer needs of TokenizerData: matching array lengths, known token
// types, special ids in range. `source` names the origin in messages.
void validate_common(const TokenizerData& data, const std::string& source);

// Throws megrez::Error when `id` is not a token of a vocabulary of `vocab_size` entries.
void check_token_id(int32_t id, int32_t vocab_size);

// Both tokenizers built from TokenizerData (model "llama" / "gpt2").
std::unique_ptr<Tokenizer> make_spm_tokenizer(TokenizerData data);
struct BpeOptions {
  std::optional<std::vector<std::string>> split_patterns;  // default: those of data.pre
  bool ignore_merges = false;  // a pre-token that is itself in the vocabulary is not merged
  // tokenizer.json asks for NFC normalisation, which this runtime does not apply (it would
  // need the Unicode composition tables); text with combining marks, the only input NFC can
  // change in practice, gets a one-time warning instead.
  bool expects_nfc = false;
};
std::unique_ptr<Tokenizer> make_bpe_tokenizer(TokenizerData data, BpeOptions options);

// The chat template of a parsed tokenizer_config.json: a string, or the "default" entry of a
// list of named templates; "" when there is none.
std::string chat_template_of(const nlohmann::json& config);

// Prints "megrez: warning: <message>" to stderr the first time `flag` is seen unset.
void warn_once(bool& flag, const std::string& message);

}  // namespace megrez::detail
