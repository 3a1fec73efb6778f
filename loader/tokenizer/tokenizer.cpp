// Tokenizer factories shared by both implementations, and the special-token splitter.
#include <algorithm>
#include <cstdio>
#include <mutex>

#include "loader/error.h"
#include "loader/log.h"
#include "loader/tokenizer/tokenizer_internal.h"

namespace megrez {

namespace detail {

void SpecialMatcher::add(std::string piece, int32_t id, bool always) {
  if (piece.empty()) return;  // an empty special could never be found in text
  uint32_t node = 0;
  for (char c : piece) {
    const auto [edge, added] = edges_.try_emplace(uint64_t(node) << 8 | uint8_t(c), uint32_t(nodes_.size()));
    if (added) nodes_.emplace_back();
    node = edge->second;
  }
  if (nodes_[node].id < 0) nodes_[node].id = id;
  if (always && nodes_[node].always_id < 0) nodes_[node].always_id = id;
  ++count_;
}

std::pair<int32_t, size_t> SpecialMatcher::longest_at(std::string_view text, size_t pos, size_t limit,
                                                      bool allow_special) const {
  std::pair<int32_t, size_t> best{-1, 0};
  uint32_t node = 0;
  for (size_t end = pos; end < limit;) {
    const auto edge = edges_.find(uint64_t(node) << 8 | uint8_t(text[end]));
    if (edge == edges_.end()) break;
    node = edge->second;
    ++end;
    const int32_t id = allow_special ? nodes_[node].id : nodes_[node].always_id;
    if (id >= 0) best = {id, end - pos};
  }
  return best;
}

std::vector<TextFragment> SpecialMatcher::split(std::string_view text, bool allow_special,
                                                std::span<const TextRange> literal) const {
  std::vector<TextFragment> out;
  size_t plain_start = 0, pos = 0, next_literal = 0;
  while (pos < text.size()) {
    while (next_literal < literal.size() && literal[next_literal].end <= pos) ++next_literal;
    const size_t literal_begin = next_literal < literal.size() ? literal[next_literal].begin : text.size();
    if (literal_begin <= pos) {
      if (pos > plain_start) out.push_back({text.substr(plain_start, pos - plain_start), -1});
      const size_t end = std::min(literal[next_literal].end, text.size());
      out.push_back({text.substr(pos, end - pos), -1, true});
      pos = plain_start = end;
      continue;
    }
    const auto [id, length] = longest_at(text, pos, literal_begin, allow_special);
    if (id < 0) {
      ++pos;
      continue;
    }
    if (pos > plain_start) out.push_back({text.substr(plain_start, pos - plain_start), -1});
    out.push_back({{}, id});
    pos += length;
    plain_start = pos;
  }
  if (plain_start < text.size()) out.push_back({text.substr(plain_start), -1});
  return out;
}

void warn_once(bool& flag, const std::string& message) {
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  if (flag) return;
  flag = true;
  log_warning(message);
}

void check_token_id(int32_t id, int32_t vocab_size) {
  if (id < 0 || id >= vocab_size)
    throw Error("tokenizer: token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                std::to_string(vocab_size) + ")");
}

void validate_common(const TokenizerData& data, const std::string& source) {
  size_t n = data.tokens.size();
  if (n == 0) throw Error(source + ": the vocabulary is empty");
  if (n > size_t(INT32_MAX)) throw Error(source + ": the vocabulary has too many tokens");
  if (data.token_types.size() != n)
    throw Error(source + ": " + std::to_string(n) + " tokens but " +
                std::to_string(data.token_types.size()) + " token types");
  if (!data.scores.empty() && data.scores.size() != n)
    throw Error(source + ": " + std::to_string(n) + " tokens but " +
                std::to_string(data.scores.size()) + " scores");
  for (size_t i = 0; i < n; ++i) {
    int32_t t = data.token_types[i];
    if (t < kNormal || t > kByte)
      throw Error(source + ": token " + std::to_string(i) + " has unknown type " +
                  std::to_string(t) + " (expected 1..6)");
  }
  auto check_special = [&](const char* what, int32_t id) {
    if (id < -1 || id >= int64_t(n))
      throw Error(source + ": " + what + " id " + std::to_string(id) +
                  " is outside the vocabulary of " + std::to_string(n) + " tokens");
  };
  check_special("bos", data.bos_id);
  check_special("eos", data.eos_id);
  check_special("unk", data.unk_id);
  check_special("pad", data.pad_id);
}

}  // namespace detail

std::unique_ptr<Tokenizer> Tokenizer::from_data(TokenizerData data) {
  if (data.model == "llama") return detail::make_spm_tokenizer(std::move(data));
  if (data.model == "gpt2") return detail::make_bpe_tokenizer(std::move(data), {});
  throw Error("tokenizer: unsupported tokenizer model \"" + data.model +
              "\" (supported: llama = SentencePiece, gpt2 = byte-level BPE)");
}

}  // namespace megrez
