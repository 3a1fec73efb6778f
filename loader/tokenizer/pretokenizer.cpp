#include "loader/tokenizer/pretokenizer.h"

#include <optional>
#include <utility>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "loader/error.h"

namespace megrez {

namespace {

struct NamedPattern {
  std::string_view name;
  std::string_view pattern;
};
constexpr NamedPattern kNamedPatterns[] = {
    {"qwen2", kQwen2Pattern}, {"gpt2", kGpt2Pattern}, {"llama-bpe", kLlama3Pattern}};

// One compiled pattern. Match data is allocated per call so a PreTokenizer can be shared
// between threads.
class CompiledRegex {
 public:
  explicit CompiledRegex(const std::string& pattern) {
    int error_code = 0;
    PCRE2_SIZE error_offset = 0;
    // MATCH_INVALID_UTF: invalid UTF-8 in the subject simply never matches instead of
    // making pcre2_match fail, so arbitrary bytes still tokenize (and round-trip).
    code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                         PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error_code,
                         &error_offset, nullptr);
    if (!code) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error_code, message, sizeof message);
      throw Error("tokenizer: pre-tokenizer regex does not compile at offset " +
                  std::to_string(error_offset) + ": " + reinterpret_cast<char*>(message) +
                  " (pattern " + pattern + ")");
    }
    // JIT is only a speed-up; the interpreter gives the same matches when it is unavailable.
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  }
  ~CompiledRegex() { pcre2_code_free(code); }
  CompiledRegex(const CompiledRegex&) = delete;
  CompiledRegex& operator=(const CompiledRegex&) = delete;

  // Appends the matches of `text` and the stretches between them to `out`.
  void split(std::string_view text, std::vector<std::string_view>& out) const {
    MatchData data(code);
    size_t search_from = 0, piece_start = 0;
    while (search_from < text.size()) {
      auto found = find(text, search_from, data);
      if (!found) break;
      auto [start, end] = *found;
      if (end == start) {
        // An empty match cuts nothing; step over one character and search again.
        search_from = start + 1;
        while (search_from < text.size() && (uint8_t(text[search_from]) & 0xC0) == 0x80)
          ++search_from;
        continue;
      }
      if (start > piece_start) out.push_back(text.substr(piece_start, start - piece_start));
      out.push_back(text.substr(start, end - start));
      piece_start = search_from = end;
    }
    if (piece_start < text.size()) out.push_back(text.substr(piece_start));
  }

  bool search(std::string_view text) const {
    MatchData data(code);
    return find(text, 0, data).has_value();
  }

 private:
  struct MatchData {
    pcre2_match_data* md;
    explicit MatchData(const pcre2_code* code)
        : md(pcre2_match_data_create_from_pattern(code, nullptr)) {
      if (!md) throw Error("tokenizer: out of memory for regex match data");
    }
    ~MatchData() { pcre2_match_data_free(md); }
  };

  // [start, end) of the first match at or after `from`, nullopt when there is none.
  std::optional<std::pair<size_t, size_t>> find(std::string_view text, size_t from,
                                                MatchData& data) const {
    int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), from, 0,
                         data.md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) return std::nullopt;
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof message);
      throw Error(std::string("tokenizer: pre-tokenizer regex failed: ") +
                  reinterpret_cast<char*>(message));
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.md);
    return std::pair<size_t, size_t>(ovector[0], ovector[1]);
  }

  pcre2_code* code = nullptr;
};

}  // namespace

std::string pre_tokenizer_name(const std::vector<std::string>& patterns) {
  if (patterns.size() != 1) return "";
  for (const auto& named : kNamedPatterns)
    if (patterns[0] == named.pattern) return std::string(named.name);
  return "";
}

std::vector<std::string> pre_tokenizer_patterns(std::string_view name) {
  // Names llama.cpp's converter writes for the same regexes: "default" is GPT-2's, and
  // Megrez-3B's tokenizer (the one Megrez2 uses) is written as "megrez", a Qwen2 split.
  if (name == "default") name = "gpt2";
  if (name == "megrez" || name == "deepseek-r1-qwen") name = "qwen2";
  if (name == "llama3" || name == "llama-v3") name = "llama-bpe";
  for (const auto& named : kNamedPatterns)
    if (name == named.name) return {std::string(named.pattern)};
  throw Error("tokenizer: unknown BPE pre-tokenizer \"" + std::string(name) +
              "\" (supported: qwen2, gpt2, llama-bpe)");
}

struct PreTokenizer::Regex : CompiledRegex {
  using CompiledRegex::CompiledRegex;
};

bool has_combining_mark(std::string_view text) {
  static const CompiledRegex mark(R"(\p{M})");
  return mark.search(text);
}

PreTokenizer::PreTokenizer(std::vector<std::string> patterns) : patterns_(std::move(patterns)) {
  for (const auto& p : patterns_) regexes_.push_back(std::make_unique<Regex>(p));
}

PreTokenizer::~PreTokenizer() = default;

std::vector<std::string_view> PreTokenizer::split(std::string_view text) const {
  std::vector<std::string_view> pieces;
  if (!text.empty()) pieces.push_back(text);
  for (const auto& regex : regexes_) {
    std::vector<std::string_view> finer;
    for (std::string_view piece : pieces) regex->split(piece, finer);
    pieces = std::move(finer);
  }
  return pieces;
}

}  // namespace megrez
