#include "loader/formats/gguf_metadata.h"

#include <cstring>
#include <limits>

#include "loader/error.h"

namespace megrez {

namespace {

const std::string kArch = kGgufArchitecture;
std::string arch_key(const char* name) { return kArch + "." + name; }

// The narrowest float type that holds `v` exactly (see the header).
GgufValue exact_float(double v) {
  const float f = float(v);
  return double(f) == v ? GgufValue::f32(f) : GgufValue::f64(v);
}

GgufValue count(int64_t v) { return GgufValue::u32(uint32_t(v)); }

bool is_integer_type(GgufType t) {
  switch (t) {
    case GgufType::U8:
    case GgufType::I8:
    case GgufType::U16:
    case GgufType::I16:
    case GgufType::U32:
    case GgufType::I32:
    case GgufType::U64:
    case GgufType::I64: return true;
    default: return false;
  }
}

// Typed metadata lookups; failures name the file, the key, and the expected vs stored type.
class MetadataReader {
 public:
  MetadataReader(const GgufContents& g, const std::string& source) : g_(g), source_(source) {}

  const GgufValue* find(const std::string& key) const { return g_.find(key); }

  const GgufValue& require(const std::string& key) const {
    const GgufValue* v = g_.find(key);
    if (!v) throw Error(source_ + ": missing metadata key " + key);
    return *v;
  }

  [[noreturn]] void wrong_type(const std::string& key, const char* expected, const GgufValue& v) const {
    throw Error(source_ + ": metadata key " + key + " must be " + expected + ", got " + gguf_type_name(v.type));
  }

  int64_t integer(const std::string& key) const { return integer_value(key, require(key)); }

  std::optional<int64_t> optional_integer(const std::string& key) const {
    const GgufValue* v = find(key);
    return v ? std::optional(integer_value(key, *v)) : std::nullopt;
  }

  double real(const std::string& key) const {
    const GgufValue& v = require(key);
    if (v.type != GgufType::F32 && v.type != GgufType::F64) wrong_type(key, "f32 or f64", v);
    return std::get<double>(v.data);
  }

  std::optional<bool> optional_bool(const std::string& key) const {
    const GgufValue* v = find(key);
    if (!v) return std::nullopt;
    if (v->type != GgufType::BOOL) wrong_type(key, "bool", *v);
    return std::get<uint64_t>(v->data) != 0;
  }

  bool boolean(const std::string& key) const {
    require(key);
    return *optional_bool(key);
  }

  std::optional<std::string> optional_string(const std::string& key) const {
    const GgufValue* v = find(key);
    if (!v) return std::nullopt;
    if (v->type != GgufType::STRING) wrong_type(key, "a string", *v);
    return std::get<std::string>(v->data);
  }

  const GgufArray* optional_array(const std::string& key, GgufType elem, const char* expected) const {
    const GgufValue* v = find(key);
    if (!v) return nullptr;
    if (v->type != GgufType::ARRAY || std::get<GgufArray>(v->data).elem != elem) wrong_type(key, expected, *v);
    return &std::get<GgufArray>(v->data);
  }

  const std::string& source() const { return source_; }

 private:
  int64_t integer_value(const std::string& key, const GgufValue& v) const {
    if (!is_integer_type(v.type)) wrong_type(key, "an integer", v);
    if (auto* s = std::get_if<int64_t>(&v.data)) return *s;
    const uint64_t u = std::get<uint64_t>(v.data);
    if (u > uint64_t(std::numeric_limits<int64_t>::max()))
      throw Error(source_ + ": metadata key " + key + " = " + std::to_string(u) + " is absurd");
    return int64_t(u);
  }

  const GgufContents& g_;
  const std::string& source_;
};

}  // namespace

// ---------------------------------------------------------------- config

void add_config_metadata(GgufWriter& w, const ModelConfig& c) {
  c.validate();  // also guarantees every count below fits in u32
  w.set("general.architecture", GgufValue::string(kArch));
  w.set(arch_key("context_length"), count(c.max_position_embeddings));
  w.set(arch_key("embedding_length"), count(c.hidden_size));
  w.set(arch_key("block_count"), count(c.num_hidden_layers));
  w.set(arch_key("feed_forward_length"), count(c.intermediate_size));
  w.set(arch_key("expert_feed_forward_length"), count(c.moe_intermediate_size));
  w.set(arch_key("attention.head_count"), count(c.num_attention_heads));
  w.set(arch_key("attention.head_count_kv"), count(c.num_key_value_heads));
  w.set(arch_key("attention.key_length"), count(c.head_dim));
  w.set(arch_key("attention.value_length"), count(c.head_dim));
  w.set(arch_key("rope.dimension_count"), count(c.head_dim));
  w.set(arch_key("rope.freq_base"), exact_float(c.rope_theta));
  w.set(arch_key("attention.layer_norm_rms_epsilon"), exact_float(c.rms_norm_eps));
  w.set(arch_key("expert_count"), count(c.n_routed_experts));
  w.set(arch_key("expert_used_count"), count(c.num_experts_per_tok));
  w.set(arch_key("expert_shared_count"), count(c.n_shared_experts));
  w.set(arch_key("expert_group_count"), count(c.n_group));
  w.set(arch_key("expert_group_used_count"), count(c.topk_group));
  w.set(arch_key("expert_weights_norm"), GgufValue::boolean(c.norm_topk_prob));
  w.set(arch_key("expert_weights_scale"), exact_float(c.routed_scaling_factor));
  w.set(arch_key("expert_gating_func"), GgufValue::u32(c.scoring_func == "sigmoid" ? 2 : 1));
  w.set(arch_key("leading_dense_block_count"), count(c.first_k_dense_replace));
  w.set(arch_key("vocab_size"), count(c.vocab_size));
  w.set(arch_key("expert_shared_frequency"), count(c.experts_shared_frequency));
  w.set(arch_key("tie_word_embeddings"), GgufValue::boolean(c.tie_word_embeddings));
  w.set(arch_key("pre_gate"), GgufValue::boolean(c.pre_gate));
  if (c.bos_token_id >= 0) w.set(arch_key("bos_token_id"), count(c.bos_token_id));
  if (c.eos_token_id >= 0) w.set(arch_key("eos_token_id"), count(c.eos_token_id));
}

ModelConfig config_from_gguf(const GgufContents& g, const std::string& source) {
  const MetadataReader r(g, source);
  const auto arch = r.optional_string("general.architecture");
  if (!arch) throw Error(source + ": missing metadata key general.architecture");
  if (*arch != kArch)
    throw Error(source + ": general.architecture is \"" + arch->substr(0, 40) + "\", expected \"" + kArch + "\"");
  ModelConfig c;
  c.max_position_embeddings = r.integer(arch_key("context_length"));
  c.hidden_size = r.integer(arch_key("embedding_length"));
  c.num_hidden_layers = r.integer(arch_key("block_count"));
  c.intermediate_size = r.integer(arch_key("feed_forward_length"));
  c.moe_intermediate_size = r.integer(arch_key("expert_feed_forward_length"));
  c.num_attention_heads = r.integer(arch_key("attention.head_count"));
  c.num_key_value_heads = r.integer(arch_key("attention.head_count_kv"));
  c.head_dim = r.integer(arch_key("attention.key_length"));
  if (r.integer(arch_key("attention.value_length")) != c.head_dim)
    throw Error(source + ": attention.value_length differs from attention.key_length (unsupported)");
  if (auto rope_dims = r.optional_integer(arch_key("rope.dimension_count")); rope_dims && *rope_dims != c.head_dim)
    throw Error(source + ": rope.dimension_count " + std::to_string(*rope_dims) +
                " differs from the head size (partial RoPE is unsupported)");
  c.rope_theta = r.real(arch_key("rope.freq_base"));
  c.rms_norm_eps = r.real(arch_key("attention.layer_norm_rms_epsilon"));
  c.n_routed_experts = r.integer(arch_key("expert_count"));
  c.num_experts_per_tok = r.integer(arch_key("expert_used_count"));
  c.n_shared_experts = r.integer(arch_key("expert_shared_count"));
  c.n_group = r.integer(arch_key("expert_group_count"));
  c.topk_group = r.integer(arch_key("expert_group_used_count"));
  c.norm_topk_prob = r.boolean(arch_key("expert_weights_norm"));
  c.routed_scaling_factor = r.real(arch_key("expert_weights_scale"));
  const int64_t gating = r.integer(arch_key("expert_gating_func"));
  if (gating != 1 && gating != 2)
    throw Error(source + ": expert_gating_func " + std::to_string(gating) + " is neither 1 (softmax) nor 2 (sigmoid)");
  c.scoring_func = gating == 2 ? "sigmoid" : "softmax";
  c.first_k_dense_replace = r.integer(arch_key("leading_dense_block_count"));
  c.vocab_size = r.integer(arch_key("vocab_size"));
  c.experts_shared_frequency = r.integer(arch_key("expert_shared_frequency"));
  c.tie_word_embeddings = r.optional_bool(arch_key("tie_word_embeddings")).value_or(!g.find_tensor("output.weight"));
  c.pre_gate = r.optional_bool(arch_key("pre_gate")).value_or(true);
  c.bos_token_id = r.optional_integer(arch_key("bos_token_id")).value_or(-1);
  c.eos_token_id = r.optional_integer(arch_key("eos_token_id")).value_or(-1);
  try {
    c.validate();
  } catch (const Error& e) {
    throw Error(source + ": " + e.what());
  }
  return c;
}

// ---------------------------------------------------------------- tokenizer

void add_tokenizer_metadata(GgufWriter& w, const TokenizerData& t) {
  w.set("tokenizer.ggml.model", GgufValue::string(t.model));
  if (!t.pre.empty()) w.set("tokenizer.ggml.pre", GgufValue::string(t.pre));
  w.set("tokenizer.ggml.tokens", GgufValue::array(GgufArray::of_strings(t.tokens)));
  if (!t.scores.empty()) w.set("tokenizer.ggml.scores", GgufValue::array(GgufArray::of_f32(t.scores)));
  if (!t.token_types.empty()) w.set("tokenizer.ggml.token_type", GgufValue::array(GgufArray::of_i32(t.token_types)));
  if (!t.merges.empty()) w.set("tokenizer.ggml.merges", GgufValue::array(GgufArray::of_strings(t.merges)));
  const std::pair<const char*, int32_t> ids[] = {{"tokenizer.ggml.bos_token_id", t.bos_id},
                                                 {"tokenizer.ggml.eos_token_id", t.eos_id},
                                                 {"tokenizer.ggml.unknown_token_id", t.unk_id},
                                                 {"tokenizer.ggml.padding_token_id", t.pad_id}};
  for (const auto& [key, id] : ids)
    if (id >= 0) w.set(key, GgufValue::u32(uint32_t(id)));
  if (!t.chat_template.empty()) w.set("tokenizer.chat_template", GgufValue::string(t.chat_template));
  if (!t.spm_model.empty())
    w.set("tokenizer.ggml.spm_model", GgufValue::array(GgufArray::of_u8(std::span(
                                          reinterpret_cast<const uint8_t*>(t.spm_model.data()), t.spm_model.size()))));
}

std::optional<TokenizerData> tokenizer_data_from_gguf(const GgufContents& g, const std::string& source) {
  const MetadataReader r(g, source);
  const auto model = r.optional_string("tokenizer.ggml.model");
  if (!model) return std::nullopt;
  TokenizerData t;
  t.model = *model;
  t.pre = r.optional_string("tokenizer.ggml.pre").value_or("");
  const GgufArray* tokens = r.optional_array("tokenizer.ggml.tokens", GgufType::STRING, "a string array");
  if (!tokens) throw Error(source + ": missing metadata key tokenizer.ggml.tokens");
  t.tokens = tokens->strings;
  const size_t n = t.tokens.size();
  if (const GgufArray* a = r.optional_array("tokenizer.ggml.scores", GgufType::F32, "an f32 array")) {
    if (a->size() != n)
      throw Error(source + ": tokenizer.ggml.scores has " + std::to_string(a->size()) + " entries for " +
                  std::to_string(n) + " tokens");
    t.scores.resize(n);
    if (n) std::memcpy(t.scores.data(), a->packed.data(), n * 4);
  }
  if (const GgufArray* a = r.optional_array("tokenizer.ggml.token_type", GgufType::I32, "an i32 array")) {
    if (a->size() != n)
      throw Error(source + ": tokenizer.ggml.token_type has " + std::to_string(a->size()) + " entries for " +
                  std::to_string(n) + " tokens");
    t.token_types.resize(n);
    if (n) std::memcpy(t.token_types.data(), a->packed.data(), n * 4);
  }
  if (const GgufArray* a = r.optional_array("tokenizer.ggml.merges", GgufType::STRING, "a string array"))
    t.merges = a->strings;
  const std::pair<const char*, int32_t*> ids[] = {{"tokenizer.ggml.bos_token_id", &t.bos_id},
                                                  {"tokenizer.ggml.eos_token_id", &t.eos_id},
                                                  {"tokenizer.ggml.unknown_token_id", &t.unk_id},
                                                  {"tokenizer.ggml.padding_token_id", &t.pad_id}};
  for (const auto& [key, id] : ids) {
    const auto v = r.optional_integer(key);
    if (!v) continue;
    if (*v < 0 || uint64_t(*v) >= n)
      throw Error(source + ": " + key + " = " + std::to_string(*v) + " is not a token id (" + std::to_string(n) +
                  " tokens)");
    *id = int32_t(*v);
  }
  t.chat_template = r.optional_string("tokenizer.chat_template").value_or("");
  if (const GgufArray* a = r.optional_array("tokenizer.ggml.spm_model", GgufType::U8, "a u8 array"))
    t.spm_model.assign(reinterpret_cast<const char*>(a->packed.data()), a->packed.size());
  return t;
}

}  // namespace megrez
