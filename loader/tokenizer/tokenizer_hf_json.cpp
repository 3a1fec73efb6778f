// Hugging Face tokenizer.json (+ tokenizer_config.json) -> byte-level BPE tokenizer.
// Only what a byte-level BPE of the GPT-2 / Qwen2 / Llama-3 families uses is accepted;
// anything else (WordPiece, Metaspace, dropout, lstrip added tokens...) is rejected with an
// error naming the key, never half-supported.
#include <algorithm>
#include <map>

#include <nlohmann/json.hpp>

#include "loader/error.h"
#include "loader/formats/json_strict.h"
#include "loader/tokenizer/pretokenizer.h"
#include "loader/tokenizer/tokenizer_internal.h"

namespace megrez {
namespace {

using detail::TokenType;
using nlohmann::json;

constexpr const char* kFile = "tokenizer.json";
constexpr const char* kConfigFile = "tokenizer_config.json";

[[noreturn]] void fail(const std::string& message) {
  throw Error(std::string(kFile) + ": " + message);
}

const json* member(const json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}

bool flag(const json& object, const char* key, bool fallback, const std::string& where) {
  const json* v = member(object, key);
  if (!v) return fallback;
  if (!v->is_boolean()) fail(where + "." + key + " must be true or false");
  return v->get<bool>();
}

std::string text(const json& v, const std::string& where) {
  if (!v.is_string()) fail(where + " must be a string");
  return v.get<std::string>();
}

// ---- model: vocab, merges, added tokens ----------------------------------------------------

void reject_unsupported_model_options(const json& model) {
  const json* type = member(model, "type");
  if (!type || *type != "BPE")
    fail("model.type must be \"BPE\" (got " + (type ? json_preview(*type) : std::string("nothing")) + ")");
  if (const json* d = member(model, "dropout"); d && !(d->is_number() && d->get<double>() == 0.0))
    fail("model.dropout is not supported (BPE dropout is for training)");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (const json* v = member(model, key); v && !(v->is_string() && v->get<std::string>().empty()))
      fail(std::string("model.") + key + " is not supported by byte-level BPE");
  if (flag(model, "byte_fallback", false, "model"))
    fail("model.byte_fallback is not supported (that is a SentencePiece-style BPE)");
}

struct Vocabulary {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<bool> defined;
};

void place_token(Vocabulary& v, int64_t id, const std::string& piece, TokenType type,
                 const std::string& where) {
  if (id < 0 || size_t(id) >= v.tokens.size())
    fail(where + ": id " + std::to_string(id) + " out of range");
  if (v.defined[id] && v.tokens[id] != piece)
    fail(where + ": id " + std::to_string(id) + " is both \"" + v.tokens[id] + "\" and \"" + piece +
         "\"");
  v.tokens[id] = piece;
  v.types[id] = type;
  v.defined[id] = true;
}

int64_t token_id_value(const json& v, const std::string& where) {
  if (!v.is_number_integer()) fail(where + " must be an integer token id");
  return v.get<int64_t>();
}

Vocabulary read_vocabulary(const json& model, const json& added_tokens) {
  const json* vocab = member(model, "vocab");
  if (!vocab || !vocab->is_object() || vocab->empty())
    fail("model.vocab must be a non-empty object");
  if (!added_tokens.is_null() && !added_tokens.is_array()) fail("added_tokens must be an array");
  // Ids may leave holes (Megrez's specials sit above the learned vocabulary), but a hostile
  // file must not make us allocate billions of placeholders.
  int64_t max_id = -1;
  for (const auto& [piece, id] : vocab->items())
    max_id = std::max(max_id, token_id_value(id, "model.vocab[\"" + piece + "\"]"));
  if (added_tokens.is_array())
    for (const json& t : added_tokens)
      max_id = std::max(max_id, token_id_value(t.is_object() && t.contains("id") ? t["id"] : json(),
                                               "added_tokens[].id"));
  int64_t defined =
      int64_t(vocab->size()) + (added_tokens.is_array() ? int64_t(added_tokens.size()) : 0);
  if (max_id >= 2 * defined + 1024)
    fail("largest token id " + std::to_string(max_id) + " is far beyond the " +
         std::to_string(defined) + " tokens defined");
  Vocabulary v;
  v.tokens.resize(size_t(max_id + 1));
  v.types.assign(v.tokens.size(), detail::kUnused);
  v.defined.assign(v.tokens.size(), false);
  for (const auto& [piece, id] : vocab->items())
    place_token(v, id.get<int64_t>(), piece, detail::kNormal, "model.vocab[\"" + piece + "\"]");
  if (added_tokens.is_array()) {
    for (const json& t : added_tokens) {
      std::string content =
          text(t.contains("content") ? t["content"] : json(), "added_tokens[].content");
      std::string where = "added token \"" + content + "\"";
      for (const char* key : {"lstrip", "rstrip", "single_word"})
        if (flag(t, key, false, where)) fail(where + " sets " + key + ", which is not supported");
      bool special = flag(t, "special", false, where);
      // An added token may repeat a vocab entry with the same id; it then becomes special.
      place_token(v, t["id"].get<int64_t>(), content,
                  special ? detail::kControl : detail::kUserDefined, where);
    }
  }
  for (size_t id = 0; id < v.tokens.size(); ++id)
    if (!v.defined[id]) v.tokens[id] = "[PAD" + std::to_string(id) + "]";
  return v;
}

std::vector<std::string> read_merges(const json& model) {
  const json* merges = member(model, "merges");
  if (!merges) return {};
  if (!merges->is_array()) fail("model.merges must be an array");
  std::vector<std::string> out;
  out.reserve(merges->size());
  for (const json& m : *merges) {
    if (m.is_string()) {
      out.push_back(m.get<std::string>());
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      // Newer files store [left, right]; byte-level tokens never contain a raw space, so the
      // "left right" form that GGUF uses is lossless for them.
      std::string left = m[0].get<std::string>(), right = m[1].get<std::string>();
      if (left.find(' ') != std::string::npos || right.find(' ') != std::string::npos)
        fail("merge [\"" + left + "\", \"" + right +
             "\"] contains a space, impossible in byte-level BPE");
      out.push_back(left + " " + right);
    } else {
      fail("model.merges[" + std::to_string(out.size()) + "] must be \"a b\" or [\"a\", \"b\"]");
    }
  }
  return out;
}

// ---- pre-tokenizer, normalizer, decoder ----------------------------------------------------

struct PreTokenizerSpec {
  std::vector<std::string> patterns;
  bool byte_level = false;
};

std::string escape_literal(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\^$.|?*+()[]{}-/").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

// Sequences nest; real files use one level. The bound keeps the recursion short whatever the
// file says (parse_json_strict's depth cap alone would allow 30 levels here).
constexpr int kMaxPreTokenizerNesting = 4;

void read_pre_tokenizer(const json& node, PreTokenizerSpec& spec, int depth = 0) {
  const json* type = member(node, "type");
  std::string name = type ? text(*type, "pre_tokenizer.type") : "";
  if (name == "Sequence") {
    if (depth >= kMaxPreTokenizerNesting)
      fail("pre_tokenizer Sequences nested more than " + std::to_string(kMaxPreTokenizerNesting) + " deep");
    const json* list = member(node, "pretokenizers");
    if (!list || !list->is_array()) fail("pre_tokenizer Sequence needs a pretokenizers array");
    for (const json& child : *list) read_pre_tokenizer(child, spec, depth + 1);
  } else if (name == "ByteLevel") {
    if (flag(node, "add_prefix_space", false, "pre_tokenizer ByteLevel"))
      fail("pre_tokenizer ByteLevel add_prefix_space is not supported");
    if (flag(node, "use_regex", true, "pre_tokenizer ByteLevel"))
      spec.patterns.emplace_back(kGpt2Pattern);
    spec.byte_level = true;
  } else if (name == "Split") {
    const json* behavior = member(node, "behavior");
    if (!behavior || *behavior != "Isolated")
      fail("pre_tokenizer Split behavior must be \"Isolated\" (got " +
           (behavior ? json_preview(*behavior) : std::string("nothing")) + ")");
    if (flag(node, "invert", false, "pre_tokenizer Split"))
      fail("pre_tokenizer Split invert is not supported");
    const json* pattern = member(node, "pattern");
    if (const json* regex = pattern ? member(*pattern, "Regex") : nullptr)
      spec.patterns.push_back(text(*regex, "pre_tokenizer Split pattern.Regex"));
    else if (const json* literal = pattern ? member(*pattern, "String") : nullptr)
      spec.patterns.push_back(escape_literal(text(*literal, "pre_tokenizer Split pattern.String")));
    else
      fail("pre_tokenizer Split needs pattern.Regex or pattern.String");
  } else {
    fail("pre_tokenizer type \"" + name + "\" is not supported (Sequence, Split, ByteLevel are)");
  }
}

// Returns whether the file asks for NFC normalisation (the only normaliser accepted).
bool read_normalizer(const json& root) {
  const json* n = member(root, "normalizer");
  if (!n) return false;
  const json* type = member(*n, "type");
  if (type && *type == "NFC") return true;
  fail("normalizer " + (type ? "type " + json_preview(*type) : json_preview(*n)) + " is not supported (only none or NFC)");
}

void check_decoder(const json& root) {
  const json* d = member(root, "decoder");
  const json* type = d ? member(*d, "type") : nullptr;
  if (d && !(type && *type == "ByteLevel"))
    fail("decoder " + (type ? "type " + json_preview(*type) : json_preview(*d)) + " is not supported (only ByteLevel)");
}

// ---- tokenizer_config.json -----------------------------------------------------------------

// A special token given as "<|eos|>" or {"content": "<|eos|>", ...}; "" when absent.
std::string config_token(const json& config, const char* key) {
  const json* v = member(config, key);
  if (!v) return "";
  if (v->is_string()) return v->get<std::string>();
  if (const json* content = member(*v, "content"); content && content->is_string())
    return content->get<std::string>();
  throw Error(std::string(kConfigFile) + ": " + key + " must be a string or {\"content\": ...}");
}

int32_t resolve(const std::vector<std::string>& tokens, const std::string& piece,
                const char* what) {
  if (piece.empty()) return -1;
  auto it = std::find(tokens.begin(), tokens.end(), piece);
  if (it == tokens.end())
    throw Error(std::string(kConfigFile) + ": " + what + " \"" + piece +
                "\" is not in the vocabulary");
  return int32_t(it - tokens.begin());
}

void apply_config(std::string_view config_json, TokenizerData& data) {
  json config = config_json.empty() ? json::object() : parse_json_strict(config_json, kConfigFile);
  if (!config.is_object()) throw Error(std::string(kConfigFile) + ": must be a JSON object");
  std::string eos = config_token(config, "eos_token");
  // Without a config, Megrez's "<|eos|>" (or GPT-2's "<|endoftext|>") is the end of text.
  if (eos.empty())
    for (const char* fallback : {"<|eos|>", "<|endoftext|>"})
      if (std::find(data.tokens.begin(), data.tokens.end(), fallback) != data.tokens.end()) {
        eos = fallback;
        break;
      }
  data.eos_id = resolve(data.tokens, eos, "eos_token");
  data.bos_id = resolve(data.tokens, config_token(config, "bos_token"), "bos_token");
  data.unk_id = resolve(data.tokens, config_token(config, "unk_token"), "unk_token");
  data.pad_id = resolve(data.tokens, config_token(config, "pad_token"), "pad_token");
  data.chat_template = detail::chat_template_of(config);
}

}  // namespace

std::string detail::chat_template_of(const nlohmann::json& config) {
  const json* t = member(config, "chat_template");
  if (!t) return "";
  if (t->is_string()) return t->get<std::string>();
  // Several named templates: [{"name": "default", "template": "..."}, ...].
  if (t->is_array()) {
    for (const json& entry : *t)
      if (member(entry, "name") && entry["name"] == "default" && member(entry, "template") &&
          entry["template"].is_string())
        return entry["template"].get<std::string>();
    if (!t->empty() && member((*t)[0], "template") && (*t)[0]["template"].is_string())
      return (*t)[0]["template"].get<std::string>();
  }
  throw Error(std::string(kConfigFile) +
              ": chat_template must be a string or a list of named templates");
}

std::unique_ptr<Tokenizer> Tokenizer::from_hf_json(std::string_view tokenizer_json,
                                                   std::string_view tokenizer_config_json) {
  json root = parse_json_strict(tokenizer_json, kFile);
  if (!root.is_object()) fail("must be a JSON object");
  const json* model = member(root, "model");
  if (!model) fail("has no model");
  reject_unsupported_model_options(*model);
  const json* added = member(root, "added_tokens");
  Vocabulary vocab = read_vocabulary(*model, added ? *added : json());

  PreTokenizerSpec pre;
  if (const json* node = member(root, "pre_tokenizer")) read_pre_tokenizer(*node, pre);
  if (!pre.byte_level) fail("pre_tokenizer has no ByteLevel step: not a byte-level BPE tokenizer");
  check_decoder(root);

  TokenizerData data;
  data.model = "gpt2";
  data.pre = pre_tokenizer_name(pre.patterns);
  data.tokens = std::move(vocab.tokens);
  data.token_types = std::move(vocab.types);
  data.merges = read_merges(*model);
  apply_config(tokenizer_config_json, data);

  detail::BpeOptions options;
  options.split_patterns = std::move(pre.patterns);
  options.ignore_merges = flag(*model, "ignore_merges", false, "model");
  options.expects_nfc = read_normalizer(root);
  // A file whose regexes are none of the named ones still works here, but cannot be
  // described by TokenizerData::pre (left ""); from_data on its data() then fails clearly.
  return detail::make_bpe_tokenizer(std::move(data), std::move(options));
}

}  // namespace megrez
