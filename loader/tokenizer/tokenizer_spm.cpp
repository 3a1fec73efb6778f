// SentencePiece tokenizer: special tokens, decoding and the vocabulary here; the encoding of
// text between special tokens by the build's SpmEncoder (spm_encoder.h: libsentencepiece, or
// the native BPE encoder where the build has no libsentencepiece).
//
// Special tokens: SentencePiece itself matches USER_DEFINED pieces ("<|role_start|>") as
// whole pieces anywhere in the input, but never CONTROL pieces ("<|eos|>" in a model that
// made it the eos). So with allow_special the input is cut at control-piece strings here and
// each stretch between them goes to SentencePiece; only a stretch that starts the input gets
// the dummy-prefix space, exactly as if the control piece were a user-defined one. Without
// allow_special, encoding uses a copy of the model whose user-defined pieces are UNUSED, so
// their text tokenizes like any other text.
#include <unordered_map>

#include "loader/error.h"
#include "loader/tokenizer/spm_encoder.h"
#include "loader/tokenizer/spm_proto.h"
#include "loader/tokenizer/tokenizer_internal.h"

namespace megrez::detail {
namespace {

constexpr const char* kSource = "SentencePiece tokenizer";
constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";       // U+2581 "▁"
constexpr std::string_view kUnknownSurface = " \xE2\x81\x87 ";  // SentencePiece's " ⁇ "

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size()))
    s.replace(pos, from.size(), to);
  return s;
}

// "<0xAB>" -> the byte 0xAB; nullopt when the piece is not of that form.
std::optional<char> byte_piece_value(const std::string& piece) {
  if (piece.size() != 6 || piece.compare(0, 3, "<0x") != 0 || piece[5] != '>') return std::nullopt;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  int hi = hex(piece[3]), lo = hex(piece[4]);
  if (hi < 0 || lo < 0) return std::nullopt;
  return char(hi * 16 + lo);
}

class SpmTokenizer final : public Tokenizer {
 public:
  explicit SpmTokenizer(TokenizerData data) : data_(std::move(data)) {
    if (data_.model != "llama")
      throw Error(std::string(kSource) + ": model is \"" + data_.model + "\", expected llama");
    if (data_.spm_model.empty())
      throw Error(std::string(kSource) +
                  ": the serialized SentencePiece model is missing "
                  "(a GGUF without it cannot be tokenized by this runtime)");
    spm_proto::Model proto = spm_proto::parse(data_.spm_model);
    encoder_ = make_spm_encoder(data_.spm_model, proto);
    check_data_matches(proto);
    validate_common(data_, kSource);
    strip_leading_space_ = proto.add_dummy_prefix || proto.remove_extra_whitespaces;
    index_tokens();
  }

  std::vector<int32_t> encode(std::string_view text, bool allow_special,
                              std::span<const TextRange> literal) const override {
    std::vector<int32_t> ids;
    if (!allow_special) {
      encoder_->encode(text, true, true, ids);
      return ids;
    }
    for (const TextFragment& fragment : control_specials_.split(text, true, literal)) {
      if (fragment.special_id >= 0) {
        ids.push_back(fragment.special_id);
        continue;
      }
      // A literal range is encoded apart, with user-defined pieces as plain text.
      const bool starts_input = fragment.text.data() == text.data();
      encoder_->encode(fragment.text, starts_input, fragment.literal, ids);
    }
    return ids;
  }

  std::string decode(std::span<const int32_t> ids) const override {
    std::string out;
    bool at_start = true;
    for (int32_t id : ids) {
      check_token_id(id, vocab_size());
      std::string_view piece_text = token_text_[id];
      // SentencePiece drops the dummy-prefix space of the first piece that shows text.
      if (at_start && strip_leading_space_ && data_.token_types[id] == kNormal &&
          !piece_text.empty() && piece_text[0] == ' ')
        piece_text.remove_prefix(1);
      if (!token_text_[id].empty()) at_start = false;
      out += piece_text;
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
    if (id < 0 || id >= vocab_size()) return false;
    int32_t type = data_.token_types[id];
    return type == kControl || type == kUserDefined;
  }

  const TokenizerData& data() const override { return data_; }

 private:
  // TokenizerData may come from a GGUF file: its arrays must describe the embedded model.
  void check_data_matches(const spm_proto::Model& proto) const {
    const int n = int(proto.pieces.size());
    if (data_.tokens.size() != size_t(n))
      throw Error(std::string(kSource) + ": " + std::to_string(data_.tokens.size()) +
                  " tokens given but the model has " + std::to_string(n));
    for (int i = 0; i < n; ++i) {
      if (data_.tokens[i] != proto.pieces[i].piece || data_.token_types.size() != size_t(n) ||
          data_.token_types[i] != proto.pieces[i].type)
        throw Error(std::string(kSource) + ": token " + std::to_string(i) +
                    " differs from the embedded model's piece \"" + proto.pieces[i].piece + "\"");
    }
  }

  void index_tokens() {
    token_text_.resize(data_.tokens.size());
    for (size_t i = 0; i < data_.tokens.size(); ++i) {
      const std::string& piece = data_.tokens[i];
      int32_t id = int32_t(i);
      piece_to_id_.emplace(piece, id);
      switch (data_.token_types[i]) {
        case kNormal:
          token_text_[i] = replace_all(piece, kSpaceSymbol, " ");
          break;
        case kUnknown:
          token_text_[i] = std::string(kUnknownSurface);
          break;
        case kControl:
          token_text_[i] = piece;
          control_specials_.add(piece, id, /*always=*/false);
          break;
        case kUserDefined:
          token_text_[i] = piece;
          break;
        case kUnused:
          break;
        case kByte:
          if (auto b = byte_piece_value(piece))
            token_text_[i] = std::string(1, *b);
          else
            throw Error(std::string(kSource) + ": byte piece " + std::to_string(i) + " is \"" +
                        piece + "\", expected <0xAB>");
          break;
      }
    }
  }

  TokenizerData data_;
  std::unique_ptr<SpmEncoder> encoder_;
  bool strip_leading_space_ = false;
  std::vector<std::string> token_text_;
  std::unordered_map<std::string, int32_t> piece_to_id_;
  SpecialMatcher control_specials_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_spm_tokenizer(TokenizerData data) {
  return std::make_unique<SpmTokenizer>(std::move(data));
}

}  // namespace megrez::detail
