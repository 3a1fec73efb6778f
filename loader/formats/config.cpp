#include <cmath>
#include <cstdio>
#include <limits>
#include <ostream>

#include "loader/formats/json_strict.h"

#include "loader/error.h"
#include "loader/formats/config.h"
#include "loader/formats/hf_config.h"

namespace megrez {

// ---------------------------------------------------------------- validation

namespace {

// Upper bounds that no real checkpoint comes near; they keep every product of two
// dimensions (vocab * hidden, experts * hidden * width, ...) far inside int64.
constexpr int64_t kMaxWidth = int64_t(1) << 20;  // hidden, head_dim, MLP widths
constexpr int64_t kMaxLayers = 4096;
constexpr int64_t kMaxHeads = 4096;
constexpr int64_t kMaxExperts = int64_t(1) << 16;
constexpr int64_t kMaxVocab = int64_t(1) << 24;
constexpr int64_t kMaxContext = (int64_t(1) << 31) - 1;

[[noreturn]] void invalid(const std::string& what) { throw Error("invalid model config: " + what); }

void check_range(const char* key, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi)
    invalid(std::string(key) + " = " + std::to_string(v) + " is out of range [" + std::to_string(lo) + ", " +
            std::to_string(hi) + "]");
}

void check_positive_finite(const char* key, double v) {
  if (!(v > 0) || !std::isfinite(v)) invalid(std::string(key) + " must be a positive finite number");
}

}  // namespace

int64_t ModelConfig::n_pools() const {
  const int64_t moe_layers = num_hidden_layers - first_k_dense_replace;
  if (moe_layers <= 0 || experts_shared_frequency <= 0) return 0;
  return (moe_layers + experts_shared_frequency - 1) / experts_shared_frequency;
}

void ModelConfig::validate() const {
  check_range("hidden_size", hidden_size, 1, kMaxWidth);
  check_range("num_hidden_layers", num_hidden_layers, 2, kMaxLayers);
  check_range("num_attention_heads", num_attention_heads, 1, kMaxHeads);
  check_range("num_key_value_heads", num_key_value_heads, 1, num_attention_heads);
  if (num_attention_heads % num_key_value_heads != 0)
    invalid("num_attention_heads = " + std::to_string(num_attention_heads) +
            " is not a multiple of num_key_value_heads = " + std::to_string(num_key_value_heads));
  check_range("head_dim", head_dim, 1, kMaxWidth);
  check_range("num_attention_heads * head_dim", num_attention_heads * head_dim, 1, kMaxWidth);
  // The pre-gated router of the first MoE layer reads the previous layer's h2, so at least
  // one dense layer must come first and at least one MoE layer must follow.
  check_range("first_k_dense_replace", first_k_dense_replace, 1, num_hidden_layers - 1);
  check_range("intermediate_size", intermediate_size, 1, kMaxWidth);
  check_range("moe_intermediate_size", moe_intermediate_size, 1, kMaxWidth);
  check_range("n_routed_experts", n_routed_experts, 1, kMaxExperts);
  check_range("num_experts_per_tok", num_experts_per_tok, 1, n_routed_experts);
  check_range("n_shared_experts", n_shared_experts, 1, kMaxWidth / moe_intermediate_size);
  check_range("experts_shared_frequency", experts_shared_frequency, 1, num_hidden_layers);
  if (moe_layer_freq != 1) invalid("moe_layer_freq = " + std::to_string(moe_layer_freq) + " is not supported (only 1)");
  check_range("n_group", n_group, 1, n_routed_experts);
  if (n_routed_experts % n_group != 0)
    invalid("n_routed_experts = " + std::to_string(n_routed_experts) +
            " is not a multiple of n_group = " + std::to_string(n_group));
  check_range("topk_group", topk_group, 1, n_group);
  const int64_t group_size = n_routed_experts / n_group;
  // A group's score is the sum of its two best experts, which needs two per group.
  if (n_group > 1 && group_size < 2)
    invalid("n_group = " + std::to_string(n_group) + " leaves " + std::to_string(group_size) +
            " expert per group; group-limited routing needs at least 2");
  if (num_experts_per_tok > topk_group * group_size)
    invalid("num_experts_per_tok = " + std::to_string(num_experts_per_tok) + " exceeds the " +
            std::to_string(topk_group * group_size) + " experts of the topk_group = " + std::to_string(topk_group) +
            " kept groups");
  check_range("vocab_size", vocab_size, 1, kMaxVocab);
  check_range("max_position_embeddings", max_position_embeddings, 1, kMaxContext);
  check_positive_finite("rope_theta", rope_theta);
  check_positive_finite("rms_norm_eps", rms_norm_eps);
  if (rms_norm_eps >= 1) invalid("rms_norm_eps must be < 1");
  check_positive_finite("routed_scaling_factor", routed_scaling_factor);
  if (scoring_func != "sigmoid") invalid("scoring_func \"" + scoring_func + "\" is not supported (only \"sigmoid\")");
  if (topk_method != "noaux_tc") invalid("topk_method \"" + topk_method + "\" is not supported (only \"noaux_tc\")");
  if (hidden_act != "silu") invalid("hidden_act \"" + hidden_act + "\" is not supported (only \"silu\")");
  check_range("bos_token_id", bos_token_id, -1, vocab_size - 1);
  check_range("eos_token_id", eos_token_id, -1, vocab_size - 1);
}

// ---------------------------------------------------------------- config.json

namespace {

using nlohmann::json;

std::string json_type_name(const json& v) {
  if (v.is_number_integer()) return "integer";
  if (v.is_number_float()) return "number";
  return v.type_name();
}

std::string format_double(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// Typed access to the keys of one config.json object, logging every default it applies.
class ConfigKeys {
 public:
  ConfigKeys(const json& root, std::string source, std::ostream* log)
      : root_(root), source_(std::move(source)), log_(log) {}

  // nullptr when the key is absent or null (HF writes null for "not set").
  const json* find(const char* key) const {
    auto it = root_.find(key);
    return it == root_.end() || it->is_null() ? nullptr : &*it;
  }

  [[noreturn]] void wrong_type(const char* key, const char* expected, const json& v) const {
    throw Error(source_ + ": key " + key + " must be " + expected + ", got " + json_type_name(v) + " " +
                json_preview(v, 60));
  }

  int64_t to_int(const char* key, const json& v) const {
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
      wrong_type(key, "an integer that fits in 64 bits", v);
    if (!v.is_number_integer()) wrong_type(key, "an integer", v);
    return v.get<int64_t>();
  }

  int64_t required_int(const char* key) const {
    const json* v = find(key);
    if (!v) throw Error(source_ + ": required key " + key + " is missing");
    return to_int(key, *v);
  }

  int64_t int_or(const char* key, int64_t fallback) const {
    const json* v = find(key);
    if (v) return to_int(key, *v);
    note(key, std::to_string(fallback));
    return fallback;
  }

  double double_or(const char* key, double fallback) const {
    const json* v = find(key);
    if (!v) {
      note(key, format_double(fallback));
      return fallback;
    }
    if (!v->is_number()) wrong_type(key, "a number", *v);
    return v->get<double>();
  }

  bool bool_or(const char* key, bool fallback) const {
    const json* v = find(key);
    if (!v) {
      note(key, fallback ? "true" : "false");
      return fallback;
    }
    if (!v->is_boolean()) wrong_type(key, "true or false", *v);
    return v->get<bool>();
  }

  std::string string_or(const char* key, const std::string& fallback) const {
    const json* v = find(key);
    if (!v) {
      note(key, "\"" + fallback + "\"");
      return fallback;
    }
    if (!v->is_string()) wrong_type(key, "a string", *v);
    return v->get<std::string>();
  }

  // bos/eos: an id, null, or (as some configs write) a list whose first entry is the id.
  int64_t token_id(const char* key) const {
    const json* v = find(key);
    if (!v) return -1;
    if (v->is_array()) {
      if (v->empty()) return -1;
      return to_int(key, v->front());
    }
    return to_int(key, *v);
  }

  void note(const char* key, const std::string& value) const {
    if (log_) *log_ << source_ << ": " << key << " absent, using " << value << "\n";
  }

  const std::string& source() const { return source_; }

 private:
  const json& root_;
  std::string source_;
  std::ostream* log_;
};

void read_architecture(const ConfigKeys& keys, ModelConfig& c) {
  const json* arch = keys.find("architectures");
  if (!arch) {
    keys.note("architectures", "[\"" + c.architecture + "\"]");
    return;
  }
  if (!arch->is_array()) keys.wrong_type("architectures", "a list of strings", *arch);
  for (const json& a : *arch) {
    if (!a.is_string()) keys.wrong_type("architectures", "a list of strings", *arch);
    if (a.get<std::string>() == c.architecture) return;
  }
  throw Error(keys.source() + ": architectures " + json_preview(*arch, 80) + " does not name " + c.architecture);
}

// Keys that would change the computation in ways this runtime does not implement.
void reject_unsupported(const ConfigKeys& keys) {
  if (const json* v = keys.find("rope_scaling"))
    throw Error(keys.source() + ": rope_scaling " + json_preview(*v, 80) + " is not supported (only null)");
  if (const json* v = keys.find("attention_bias")) {
    if (!v->is_boolean()) keys.wrong_type("attention_bias", "true or false", *v);
    if (v->get<bool>()) throw Error(keys.source() + ": attention_bias = true is not supported (Megrez2 has none)");
  }
}

void read_attention_shape(const ConfigKeys& keys, std::optional<int64_t> k_proj_rows, ModelConfig& c) {
  if (keys.find("head_dim")) {
    c.head_dim = keys.required_int("head_dim");
  } else {
    if (c.num_attention_heads <= 0 || c.hidden_size % c.num_attention_heads != 0)
      throw Error(keys.source() + ": head_dim is absent and hidden_size = " + std::to_string(c.hidden_size) +
                  " is not divisible by num_attention_heads = " + std::to_string(c.num_attention_heads));
    c.head_dim = c.hidden_size / c.num_attention_heads;
    keys.note("head_dim", std::to_string(c.head_dim) + " (hidden_size / num_attention_heads)");
  }
  if (keys.find("num_key_value_heads")) {
    c.num_key_value_heads = keys.required_int("num_key_value_heads");
    return;
  }
  if (!k_proj_rows)
    throw Error(keys.source() + ": num_key_value_heads is absent and no k_proj tensor is available to derive it");
  if (c.head_dim <= 0 || *k_proj_rows <= 0 || *k_proj_rows % c.head_dim != 0)
    throw Error(keys.source() + ": num_key_value_heads is absent and k_proj's " + std::to_string(*k_proj_rows) +
                " rows are not a positive multiple of head_dim = " + std::to_string(c.head_dim));
  c.num_key_value_heads = *k_proj_rows / c.head_dim;
  keys.note("num_key_value_heads", std::to_string(c.num_key_value_heads) + " (from k_proj's shape)");
}

}  // namespace

ModelConfig parse_hf_config(std::string_view json_text, const std::string& source, std::optional<int64_t> k_proj_rows,
                            std::ostream* log) {
  const json root = parse_json_strict(json_text, source);
  if (!root.is_object()) throw Error(source + ": expected a JSON object at the top level");
  const ConfigKeys keys(root, source, log);

  ModelConfig c;
  read_architecture(keys, c);
  reject_unsupported(keys);
  c.hidden_size = keys.required_int("hidden_size");
  c.num_hidden_layers = keys.required_int("num_hidden_layers");
  c.num_attention_heads = keys.required_int("num_attention_heads");
  read_attention_shape(keys, k_proj_rows, c);
  c.intermediate_size = keys.required_int("intermediate_size");
  c.moe_intermediate_size = keys.required_int("moe_intermediate_size");
  c.n_routed_experts = keys.required_int("n_routed_experts");
  c.num_experts_per_tok = keys.required_int("num_experts_per_tok");
  c.n_shared_experts = keys.required_int("n_shared_experts");
  c.vocab_size = keys.required_int("vocab_size");
  c.max_position_embeddings = keys.required_int("max_position_embeddings");
  c.experts_shared_frequency = keys.int_or("experts_shared_frequency", 1);
  c.first_k_dense_replace = keys.int_or("first_k_dense_replace", 1);
  c.moe_layer_freq = keys.int_or("moe_layer_freq", 1);
  c.n_group = keys.int_or("n_group", 1);
  c.topk_group = keys.int_or("topk_group", 1);
  c.pre_gate = keys.bool_or("pre_gate", true);
  c.norm_topk_prob = keys.bool_or("norm_topk_prob", true);
  c.tie_word_embeddings = keys.bool_or("tie_word_embeddings", false);
  c.rope_theta = keys.double_or("rope_theta", 10000.0);
  c.rms_norm_eps = keys.double_or("rms_norm_eps", 1e-6);
  c.routed_scaling_factor = keys.double_or("routed_scaling_factor", 1.0);
  c.scoring_func = keys.string_or("scoring_func", "sigmoid");
  c.topk_method = keys.string_or("topk_method", "noaux_tc");
  c.hidden_act = keys.string_or("hidden_act", "silu");
  c.bos_token_id = keys.token_id("bos_token_id");
  c.eos_token_id = keys.token_id("eos_token_id");
  try {
    c.validate();
  } catch (const Error& e) {
    throw Error(source + ": " + e.what());
  }
  return c;
}

}  // namespace megrez
