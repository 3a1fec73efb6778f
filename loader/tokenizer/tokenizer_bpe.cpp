// Byte-level BPE (GPT-2 / Qwen2 family): special tokens are cut out first, the rest is
// pre-tokenized by regex, every piece is mapped byte by byte onto GPT-2's alphabet and then
// merged pair by pair, lowest merge rank first, until no ranked pair is left.
#include <cstdio>
#include <queue>
#include <unordered_map>

#include "loader/error.h"
#include "loader/tokenizer/byte_level.h"
#include "loader/tokenizer/pretokenizer.h"
#include "loader/tokenizer/tokenizer_internal.h"

namespace megrez::detail {
namespace {

constexpr const char* kSource = "BPE tokenizer";

uint64_t pair_key(int32_t left, int32_t right) {
  return (uint64_t(uint32_t(left)) << 32) | uint32_t(right);
}

class BpeTokenizer final : public Tokenizer {
 public:
  BpeTokenizer(TokenizerData data, BpeOptions options)
      : data_(std::move(data)),
        pre_(options.split_patterns ? std::move(*options.split_patterns) : patterns_for(data_.pre)),
        ignore_merges_(options.ignore_merges),
        expects_nfc_(options.expects_nfc) {
    validate_common(data_, kSource);
    if (data_.model != "gpt2")
      throw Error(std::string(kSource) + ": model is \"" + data_.model + "\", expected gpt2");
    index_tokens();
    index_byte_tokens();
    index_merges();
  }

  std::vector<int32_t> encode(std::string_view text, bool allow_special,
                              std::span<const TextRange> literal) const override {
    if (expects_nfc_ && has_combining_mark(text))
      warn_once(warned_nfc_,
                "the tokenizer asks for NFC normalisation, which is not applied; "
                "text with combining marks may tokenize differently from the reference");
    std::vector<int32_t> ids;
    for (const TextFragment& fragment : specials_.split(text, allow_special, literal)) {
      if (fragment.special_id >= 0) {
        ids.push_back(fragment.special_id);
        continue;
      }
      for (std::string_view piece : pre_.split(fragment.text)) encode_piece(piece, ids);
    }
    return ids;
  }

  std::string decode(std::span<const int32_t> ids) const override {
    std::string out;
    for (int32_t id : ids) {
      check_token_id(id, vocab_size());
      out += token_text_[id];
    }
    return out;
  }

  std::string token_text(int32_t id) const override {
    check_token_id(id, vocab_size());
    return token_text_[id];
  }

  int32_t vocab_size() const override { return int32_t(data_.tokens.size()); }

  std::optional<int32_t> token_id(std::string_view piece) const override {
    auto it = piece_to_id_.find(std::string(piece));
    if (it == piece_to_id_.end()) return std::nullopt;
    return it->second;
  }

  bool is_special(int32_t id) const override {
    return id >= 0 && id < vocab_size() && data_.token_types[id] == kControl;
  }

  const TokenizerData& data() const override { return data_; }

 private:
  struct Merge {
    uint32_t rank;
    int32_t result;
  };

  static std::vector<std::string> patterns_for(const std::string& pre) {
    if (pre.empty())
      throw Error(std::string(kSource) +
                  ": the pre-tokenizer name is missing "
                  "(tokenizer.ggml.pre); expected qwen2, gpt2 or llama-bpe");
    return pre_tokenizer_patterns(pre);
  }

  // Vocabulary strings -> ids, streaming text per id, and the special-token matcher.
  void index_tokens() {
    token_text_.resize(data_.tokens.size());
    for (size_t i = 0; i < data_.tokens.size(); ++i) {
      const std::string& piece = data_.tokens[i];
      int32_t type = data_.token_types[i];
      int32_t id = int32_t(i);
      if (type == kUnused) continue;  // a hole in the id range: never produced, decodes to ""
      if (!piece_to_id_.emplace(piece, id).second)
        throw Error(std::string(kSource) + ": token \"" + piece + "\" appears twice (ids " +
                    std::to_string(piece_to_id_[piece]) + " and " + std::to_string(id) + ")");
      if (type == kNormal || type == kByte) {
        token_text_[i] = byte_level::decode_to_bytes(piece);
      } else {
        // Added tokens (and unk) are stored as plain text, not in the byte alphabet.
        token_text_[i] = piece;
        if (type == kControl || type == kUserDefined)
          specials_.add(piece, id, /*always=*/type == kUserDefined);
      }
    }
    // Llama-3 vocabularies are made for ignore_merges (llama.cpp applies it by pre-tokenizer too).
    ignore_merges_ = ignore_merges_ || pre_tokenizer_name(pre_.patterns()) == "llama-bpe";
  }

  void index_byte_tokens() {
    for (int b = 0; b < 256; ++b) {
      std::string symbol;
      utf8::append(symbol, byte_level::byte_to_codepoint(uint8_t(b)));
      auto id = normal_token(symbol);
      if (!id) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "%02X", b);
        throw Error(std::string(kSource) + ": the vocabulary has no token for byte 0x" + hex +
                    " (\"" + symbol + "\"); a byte-level BPE vocabulary needs all 256");
      }
      byte_token_[b] = *id;
    }
  }

  void index_merges() {
    merges_.reserve(data_.merges.size());
    for (size_t rank = 0; rank < data_.merges.size(); ++rank) {
      const std::string& merge = data_.merges[rank];
      size_t space = merge.find(' ');
      if (space == std::string::npos || space == 0 || space + 1 == merge.size() ||
          merge.find(' ', space + 1) != std::string::npos)
        throw Error(std::string(kSource) + ": merge " + std::to_string(rank) + " \"" + merge +
                    "\" is not two tokens separated by one space");
      std::string left = merge.substr(0, space), right = merge.substr(space + 1);
      auto l = normal_token(left), r = normal_token(right), m = normal_token(left + right);
      if (!l || !r || !m)
        throw Error(std::string(kSource) + ": merge " + std::to_string(rank) + " \"" + merge +
                    "\" uses or makes a token that is not in the vocabulary");
      if (!merges_.emplace(pair_key(*l, *r), Merge{uint32_t(rank), *m}).second)
        throw Error(std::string(kSource) + ": merge \"" + merge + "\" appears twice");
    }
  }

  std::optional<int32_t> normal_token(const std::string& piece) const {
    auto it = piece_to_id_.find(piece);
    if (it == piece_to_id_.end()) return std::nullopt;
    int32_t type = data_.token_types[it->second];
    if (type != kNormal && type != kByte) return std::nullopt;
    return it->second;
  }

  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
    if (ignore_merges_) {
      if (auto whole = normal_token(byte_level::encode_bytes(piece))) {
        out.push_back(*whole);
        return;
      }
    }
    merge_bytes(piece, out);
  }

  // Symbols form a linked list over the piece's bytes. Candidate merges wait in a min-heap
  // ordered by (rank, position), so the lowest rank is merged first and equal ranks left to
  // right; an entry whose symbols changed since it was pushed is skipped when popped.
  void merge_bytes(std::string_view piece, std::vector<int32_t>& out) const {
    struct Symbol {
      int32_t id, prev, next;
    };
    struct Candidate {
      uint32_t rank;
      int32_t left, left_id, right_id, result;
      bool operator>(const Candidate& o) const {
        return rank != o.rank ? rank > o.rank : left > o.left;
      }
    };
    std::vector<Symbol> symbols(piece.size());
    for (size_t i = 0; i < piece.size(); ++i)
      symbols[i] = {byte_token_[uint8_t(piece[i])], int32_t(i) - 1,
                    i + 1 < piece.size() ? int32_t(i + 1) : -1};
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
    auto consider = [&](int32_t left) {
      if (left < 0 || symbols[left].next < 0) return;
      int32_t l = symbols[left].id, r = symbols[symbols[left].next].id;
      auto it = merges_.find(pair_key(l, r));
      if (it != merges_.end()) heap.push({it->second.rank, left, l, r, it->second.result});
    };
    for (int32_t i = 0; i + 1 < int32_t(piece.size()); ++i) consider(i);
    while (!heap.empty()) {
      Candidate c = heap.top();
      heap.pop();
      Symbol& left = symbols[c.left];
      if (left.id != c.left_id || left.next < 0) continue;
      Symbol& right = symbols[left.next];
      if (right.id != c.right_id) continue;
      left.id = c.result;
      left.next = right.next;
      if (right.next >= 0) symbols[right.next].prev = c.left;
      right.id = -1;  // dead: every candidate naming it is now stale
      consider(left.prev);
      consider(c.left);
    }
    for (int32_t i = piece.empty() ? -1 : 0; i >= 0; i = symbols[i].next)
      out.push_back(symbols[i].id);
  }

  TokenizerData data_;
  PreTokenizer pre_;
  bool ignore_merges_;
  bool expects_nfc_;
  mutable bool warned_nfc_ = false;
  std::unordered_map<std::string, int32_t> piece_to_id_;
  std::vector<std::string> token_text_;  // id -> raw bytes it stands for
  std::array<int32_t, 256> byte_token_{};
  std::unordered_map<uint64_t, Merge> merges_;
  SpecialMatcher specials_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_bpe_tokenizer(TokenizerData data, BpeOptions options) {
  return std::make_unique<BpeTokenizer>(std::move(data), std::move(options));
}

}  // namespace megrez::detail
