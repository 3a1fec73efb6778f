#include "loader/formats/weight_layout.h"

#include "loader/checked_math.h"

namespace megrez {

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::optional<uint64_t> stored_weight_count(const ModelConfig& c) {
  // Every term is a product of at most a few validated values; checked all the same, since
  // this runs on configs read from untrusted files.
  std::optional<uint64_t> total = 0;
  auto add = [&](std::initializer_list<int64_t> dims, int64_t times) {
    std::optional<uint64_t> n = uint64_t(times < 0 ? 0 : times);
    for (int64_t d : dims) n = n ? checked_mul(*n, uint64_t(d < 0 ? 0 : d)) : std::nullopt;
    total = total && n ? checked_add(*total, *n) : std::nullopt;
  };
  const int64_t D = c.hidden_size, Q = c.num_attention_heads * c.head_dim, KV = c.num_key_value_heads * c.head_dim;
  const int64_t L = c.num_hidden_layers, dense = c.first_k_dense_replace, moe = L - dense;
  add({c.vocab_size, D}, c.tie_word_embeddings ? 1 : 2);
  add({D}, 1 + 2 * L);
  add({Q, D}, 2 * L);
  add({KV, D}, 2 * L);
  add({c.intermediate_size, D}, 3 * dense);
  add({c.n_routed_experts, D + 1}, moe);
  add({c.shared_width(), D}, 3 * moe);
  add({c.n_routed_experts, c.moe_intermediate_size, D}, 3 * c.n_pools());
  return total;
}

void prepare_weights(const ModelConfig& cfg, ModelWeights& w) {
  w.layers.assign(size_t(cfg.num_hidden_layers), LayerWeights{});
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i)
    w.layers[size_t(i)].pool = cfg.is_moe_layer(i) ? int(cfg.pool_of(i)) : -1;
  w.pools.assign(size_t(cfg.n_pools()), std::vector<ExpertWeights>(size_t(cfg.n_routed_experts)));
}

namespace {

enum class Layers { All, Dense, Moe };  // which layers hold the tensor
enum class Dim { None, Hidden, QWidth, KvWidth, Dense, Shared, Experts };

struct LayerTensor {
  TensorView LayerWeights::*field;
  const char* hf;    // after "model.layers.N."
  const char* gguf;  // after "blk.N."
  WeightRole role;
  Layers layers;
  Dim rows, cols;  // cols == None: a vector of `rows` values
};

constexpr LayerTensor kLayerTensors[] = {
    {&LayerWeights::attn_norm, "input_layernorm.weight", "attn_norm.weight", WeightRole::Vector, Layers::All,
     Dim::Hidden, Dim::None},
    {&LayerWeights::wq, "self_attn.q_proj.weight", "attn_q.weight", WeightRole::Matrix, Layers::All, Dim::QWidth,
     Dim::Hidden},
    {&LayerWeights::wk, "self_attn.k_proj.weight", "attn_k.weight", WeightRole::Matrix, Layers::All, Dim::KvWidth,
     Dim::Hidden},
    {&LayerWeights::wv, "self_attn.v_proj.weight", "attn_v.weight", WeightRole::Matrix, Layers::All, Dim::KvWidth,
     Dim::Hidden},
    {&LayerWeights::wo, "self_attn.o_proj.weight", "attn_output.weight", WeightRole::Matrix, Layers::All, Dim::Hidden,
     Dim::QWidth},
    {&LayerWeights::ffn_norm, "post_attention_layernorm.weight", "ffn_norm.weight", WeightRole::Vector, Layers::All,
     Dim::Hidden, Dim::None},
    {&LayerWeights::ffn_gate, "mlp.gate_proj.weight", "ffn_gate.weight", WeightRole::Matrix, Layers::Dense, Dim::Dense,
     Dim::Hidden},
    {&LayerWeights::ffn_up, "mlp.up_proj.weight", "ffn_up.weight", WeightRole::Matrix, Layers::Dense, Dim::Dense,
     Dim::Hidden},
    {&LayerWeights::ffn_down, "mlp.down_proj.weight", "ffn_down.weight", WeightRole::Matrix, Layers::Dense, Dim::Hidden,
     Dim::Dense},
    {&LayerWeights::router, "mlp.gate.weight", "ffn_gate_inp.weight", WeightRole::Router, Layers::Moe, Dim::Experts,
     Dim::Hidden},
    {&LayerWeights::router_bias, "mlp.gate.e_score_correction_bias", "exp_probs_b.bias", WeightRole::Vector,
     Layers::Moe, Dim::Experts, Dim::None},
    {&LayerWeights::shexp_gate, "mlp.shared_experts.gate_proj.weight", "ffn_gate_shexp.weight", WeightRole::Matrix,
     Layers::Moe, Dim::Shared, Dim::Hidden},
    {&LayerWeights::shexp_up, "mlp.shared_experts.up_proj.weight", "ffn_up_shexp.weight", WeightRole::Matrix,
     Layers::Moe, Dim::Shared, Dim::Hidden},
    {&LayerWeights::shexp_down, "mlp.shared_experts.down_proj.weight", "ffn_down_shexp.weight", WeightRole::Matrix,
     Layers::Moe, Dim::Hidden, Dim::Shared},
};

int64_t dim_size(const ModelConfig& c, Dim d) {
  switch (d) {
    case Dim::Hidden: return c.hidden_size;
    case Dim::QWidth: return c.num_attention_heads * c.head_dim;
    case Dim::KvWidth: return c.num_key_value_heads * c.head_dim;
    case Dim::Dense: return c.intermediate_size;
    case Dim::Shared: return c.shared_width();
    case Dim::Experts: return c.n_routed_experts;
    case Dim::None: break;
  }
  return 0;
}

std::vector<int64_t> layer_tensor_shape(const ModelConfig& c, const LayerTensor& t) {
  if (t.cols == Dim::None) return {dim_size(c, t.rows)};
  return {dim_size(c, t.rows), dim_size(c, t.cols)};
}

struct ExpertTensor {
  TensorView ExpertWeights::*field;
  const char* hf;    // after "model.layers.OWNER.mlp.experts.E."
  const char* gguf;  // after "blk.OWNER."
};
constexpr ExpertTensor kExpertTensors[] = {
    {&ExpertWeights::gate, "gate_proj.weight", "ffn_gate_exps.weight"},
    {&ExpertWeights::up, "up_proj.weight", "ffn_up_exps.weight"},
    {&ExpertWeights::down, "down_proj.weight", "ffn_down_exps.weight"},
};

void add_layer_slots(const ModelConfig& cfg, ModelWeights& w, int64_t i, std::vector<WeightSlot>& out) {
  const std::string hf = "model.layers." + std::to_string(i) + ".", gg = "blk." + std::to_string(i) + ".";
  const bool moe = cfg.is_moe_layer(i);
  for (const LayerTensor& t : kLayerTensors) {
    if (t.layers != Layers::All && (t.layers == Layers::Moe) != moe) continue;
    out.push_back(
        {hf + t.hf, gg + t.gguf, layer_tensor_shape(cfg, t), t.role, -1, -1, &(w.layers[size_t(i)].*t.field)});
  }
  if (!moe || cfg.owner_of_pool(cfg.pool_of(i)) != i) return;
  const int pool = int(cfg.pool_of(i));
  const int64_t D = cfg.hidden_size, I = cfg.moe_intermediate_size;
  for (const ExpertTensor& t : kExpertTensors) {
    const std::vector<int64_t> shape =
        t.field == &ExpertWeights::down ? std::vector<int64_t>{D, I} : std::vector<int64_t>{I, D};
    for (int e = 0; e < int(cfg.n_routed_experts); ++e)
      out.push_back({hf + "mlp.experts." + std::to_string(e) + "." + t.hf, gg + t.gguf, shape, WeightRole::Matrix, pool,
                     e, &(w.pools[size_t(pool)][size_t(e)].*t.field)});
  }
}

}  // namespace

std::vector<WeightSlot> weight_slots(const ModelConfig& cfg, ModelWeights& w) {
  const int64_t D = cfg.hidden_size, V = cfg.vocab_size;
  std::vector<WeightSlot> out;
  out.push_back({"model.embed_tokens.weight", "token_embd.weight", {V, D}, WeightRole::Matrix, -1, -1, &w.token_embd});
  out.push_back({"model.norm.weight", "output_norm.weight", {D}, WeightRole::Vector, -1, -1, &w.output_norm});
  if (!cfg.tie_word_embeddings)
    out.push_back({"lm_head.weight", "output.weight", {V, D}, WeightRole::Matrix, -1, -1, &w.output});
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) add_layer_slots(cfg, w, i, out);
  return out;
}

}  // namespace megrez
