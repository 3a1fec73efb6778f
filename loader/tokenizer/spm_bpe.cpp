// Native SentencePiece BPE encoding, as libsentencepiece 0.1.97 does it for a model with
// model_type BPE and identity normalisation:
//   1. normalise: remove extra whitespace (if asked), add the dummy-prefix space (at the start
//      of the input, if asked), then write every space as U+2581 "▁";
//   2. split into characters, a user-defined piece ("<|turn_end|>") being one frozen symbol;
//   3. repeatedly merge the adjacent pair whose concatenation is a piece of highest score
//      (leftmost first on ties), never merging a frozen symbol;
//   4. a symbol that is no piece becomes its UTF-8 bytes (<0xAB> pieces, byte_fallback) or unk;
//      an UNUSED piece splits back into the two symbols it was merged from.
// The result is checked against libsentencepiece in tests/loader/test_tokenizer_spm.cpp.
#include <queue>
#include <string>
#include <unordered_map>

#include "loader/error.h"
#include "loader/tokenizer/byte_level.h"  // megrez::utf8
#include "loader/tokenizer/spm_encoder.h"

namespace megrez::detail {
namespace {

constexpr const char* kSource = "SentencePiece BPE";
constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";  // U+2581
constexpr int32_t kNormal = 1, kUnknown = 2, kUserDefined = 4, kUnused = 5, kByte = 6;
constexpr int32_t kUnigram = 1, kBpe = 2;

size_t utf8_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 1;  // a stray byte is a character of its own, as SentencePiece reads it
}

class BpeEncoder final : public SpmEncoder {
 public:
  explicit BpeEncoder(const spm_proto::Model& m) : model_(m) {
    for (size_t i = 0; i < m.pieces.size(); ++i) {
      const spm_proto::Piece& p = m.pieces[i];
      const int32_t id = int32_t(i);
      if (p.type == kNormal || p.type == kUserDefined || p.type == kUnused) pieces_.emplace(p.piece, id);
      if (p.type == kUserDefined) {
        user_defined_.emplace(p.piece, id);
        longest_user_defined_ = std::max(longest_user_defined_, p.piece.size());
      }
      if (p.type == kByte && p.piece.size() == 6) bytes_[p.piece] = id;
      if (p.type == kUnknown && unk_id_ < 0) unk_id_ = id;
    }
    if (unk_id_ < 0) throw Error(std::string(kSource) + ": the model has no unknown piece");
  }

  void encode(std::string_view text, bool starts_input, bool plain, std::vector<int32_t>& ids) const override {
    const std::string normalized = normalize(text, starts_input);
    if (normalized.empty()) return;

    // 2. Symbols: characters, or whole user-defined pieces (frozen).
    struct Symbol {
      size_t begin, size;
      int prev, next;
      bool frozen;
    };
    std::vector<Symbol> symbols;
    for (size_t pos = 0; pos < normalized.size();) {
      size_t size = std::min(utf8_length(static_cast<unsigned char>(normalized[pos])), normalized.size() - pos);
      bool frozen = false;
      if (!plain && !user_defined_.empty()) {
        for (size_t n = std::min(longest_user_defined_, normalized.size() - pos); n > 0; --n) {
          if (user_defined_.count(normalized.substr(pos, n))) {
            size = n;
            frozen = true;
            break;
          }
        }
      }
      symbols.push_back({pos, size, int(symbols.size()) - 1, int(symbols.size()) + 1, frozen});
      pos += size;
    }
    symbols.back().next = -1;

    // 3. Merges, best score first; stale queue entries (a side already merged) are skipped.
    struct Pair {
      int left, right;
      float score;
      size_t size;
    };
    auto worse = [](const Pair& a, const Pair& b) { return a.score < b.score || (a.score == b.score && a.left > b.left); };
    std::priority_queue<Pair, std::vector<Pair>, decltype(worse)> agenda(worse);
    std::unordered_map<std::string, std::pair<std::string, std::string>> split_unused;
    auto piece_of = [&](const Symbol& s) { return std::string_view(normalized).substr(s.begin, s.size); };
    auto consider = [&](int left, int right) {
      if (left < 0 || right < 0 || symbols[left].frozen || symbols[right].frozen) return;
      const std::string_view joined = std::string_view(normalized).substr(symbols[left].begin,
                                                                          symbols[left].size + symbols[right].size);
      const int32_t id = find_piece(joined);
      if (id < 0) return;
      agenda.push({left, right, model_.pieces[size_t(id)].score, joined.size()});
    };
    for (size_t i = 1; i < symbols.size(); ++i) consider(int(i) - 1, int(i));
    while (!agenda.empty()) {
      const Pair top = agenda.top();
      agenda.pop();
      Symbol& left = symbols[size_t(top.left)];
      Symbol& right = symbols[size_t(top.right)];
      if (left.size == 0 || right.size == 0 || left.size + right.size != top.size) continue;
      const std::string merged(std::string_view(normalized).substr(left.begin, top.size));
      if (type_of(find_piece(merged), plain) == kUnused) {
        split_unused.emplace(merged, std::make_pair(std::string(piece_of(left)), std::string(piece_of(right))));
      }
      left.size = top.size;
      left.next = right.next;
      if (right.next >= 0) symbols[size_t(right.next)].prev = top.left;
      right.size = 0;
      consider(left.prev, top.left);
      consider(top.left, left.next);
    }

    // 4. Ids, splitting UNUSED pieces back and falling back to bytes.
    for (int i = 0; i >= 0; i = symbols[size_t(i)].next) {
      emit(std::string(piece_of(symbols[size_t(i)])), plain, split_unused, ids);
    }
  }

 private:
  std::string normalize(std::string_view text, bool starts_input) const {
    std::string out;
    out.reserve(text.size() + 3);
    if (model_.add_dummy_prefix && starts_input) out.push_back(' ');
    for (size_t pos = 0; pos < text.size();) {
      const size_t start = pos;
      if (!utf8::next_codepoint(text, pos)) {  // a malformed byte reads as U+FFFD, one byte consumed
        out.append("\xEF\xBF\xBD");
        continue;
      }
      if (model_.remove_extra_whitespaces && text[start] == ' ' && (out.empty() || out.back() == ' ')) continue;
      out.append(text.substr(start, pos - start));
    }
    if (model_.remove_extra_whitespaces) {
      while (!out.empty() && out.back() == ' ') out.pop_back();
      if (model_.add_dummy_prefix && starts_input && !out.empty() && out[0] != ' ') out.insert(out.begin(), ' ');
    }
    if (!model_.escape_whitespaces) return out;
    std::string escaped;
    escaped.reserve(out.size() * 3);
    for (char c : out) {
      if (c == ' ') escaped.append(kSpaceSymbol);
      else escaped.push_back(c);
    }
    return escaped;
  }

  int32_t find_piece(std::string_view piece) const {
    auto it = pieces_.find(std::string(piece));
    return it == pieces_.end() ? -1 : it->second;
  }

  // Plain text treats user-defined pieces as UNUSED (what libsentencepiece does with the copy
  // of the model tokenizer_spm.cpp makes for it).
  int32_t type_of(int32_t id, bool plain) const {
    if (id < 0) return 0;
    const int32_t type = model_.pieces[size_t(id)].type;
    return plain && type == kUserDefined ? kUnused : type;
  }

  void emit(const std::string& piece, bool plain,
            const std::unordered_map<std::string, std::pair<std::string, std::string>>& split_unused,
            std::vector<int32_t>& ids) const {
    const int32_t id = find_piece(piece);
    if (id >= 0 && type_of(id, plain) == kUnused) {
      auto it = split_unused.find(piece);
      if (it != split_unused.end()) {
        emit(it->second.first, plain, split_unused, ids);
        emit(it->second.second, plain, split_unused, ids);
        return;
      }
    }
    if (id >= 0 && type_of(id, plain) != kUnused) {
      ids.push_back(id);
      return;
    }
    if (!model_.byte_fallback) {
      ids.push_back(unk_id_);
      return;
    }
    for (unsigned char b : piece) {
      static const char* hex = "0123456789ABCDEF";
      const std::string name = std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">";
      auto it = bytes_.find(name);
      ids.push_back(it == bytes_.end() ? unk_id_ : it->second);
    }
  }

  const spm_proto::Model model_;
  std::unordered_map<std::string, int32_t> pieces_, user_defined_, bytes_;
  size_t longest_user_defined_ = 0;
  int32_t unk_id_ = -1;
};

}  // namespace

std::unique_ptr<SpmEncoder> make_native_spm_encoder(const spm_proto::Model& proto) {
  if (proto.model_type != kBpe) {
    throw Error(std::string(kSource) + ": this build encodes only BPE SentencePiece models natively, and this one is " +
                    (proto.model_type == kUnigram ? std::string("a unigram model") :
                                                    "of model type " + std::to_string(proto.model_type)) +
                    " (build with libsentencepiece: MEGREZ_WITH_SENTENCEPIECE=ON)",
                ErrorKind::Model);
  }
  if (proto.has_precompiled_charsmap || (!proto.normalizer_name.empty() && proto.normalizer_name != "identity")) {
    throw Error(std::string(kSource) + ": the native encoder supports identity normalisation only, not \"" +
                    proto.normalizer_name + "\" (build with libsentencepiece: MEGREZ_WITH_SENTENCEPIECE=ON)",
                ErrorKind::Model);
  }
  return std::make_unique<BpeEncoder>(proto);
}

}  // namespace megrez::detail
