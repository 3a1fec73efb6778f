// The reference forward on in-memory synthetic models stored in every DType: it must read
// each format through quant.h exactly (same logits as an F32 copy of the dequantised values)
// and keep decode == prefill on quantised weights too.
#include <doctest/doctest.h>

#include <deque>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "loader/quant/quant.h"
#include "loader/reference/reference_forward.h"

using namespace megrez;

namespace {

// Weights built in memory; views point into storage_, so the object stays put (no copies).
class SyntheticModel {
 public:
  SyntheticModel(const ModelConfig& c, DType matrix_type, uint32_t seed) : config(c) {
    std::mt19937 rng(seed);
    auto matrix = [&](const std::string& name, int64_t out, int64_t in) {
      std::normal_distribution<float> dist(0.0f, 1.2f / std::sqrt(float(in)));
      std::vector<float> v(size_t(out * in));
      for (float& x : v) x = dist(rng);
      return store(name, matrix_type, {out, in}, v);
    };
    auto vector = [&](const std::string& name, int64_t n, float lo, float hi) {
      std::uniform_real_distribution<float> dist(lo, hi);
      std::vector<float> v(static_cast<size_t>(n));
      for (float& x : v) x = dist(rng);
      return store(name, DType::F32, {n}, v);
    };
    const int64_t d = c.hidden_size, q = c.num_attention_heads * c.head_dim, kv = c.num_key_value_heads * c.head_dim;
    weights.token_embd = matrix("embed", c.vocab_size, d);
    weights.output = matrix("lm_head", c.vocab_size, d);
    weights.output_norm = vector("norm", d, 0.6f, 1.4f);
    for (int64_t p = 0; p < c.n_pools(); ++p) {
      std::vector<ExpertWeights> pool;
      for (int64_t e = 0; e < c.n_routed_experts; ++e)
        pool.push_back({matrix("expert.gate", c.moe_intermediate_size, d),  // braces: evaluated in order
                        matrix("expert.up", c.moe_intermediate_size, d), matrix("expert.down", d, c.moe_intermediate_size)});
      weights.pools.push_back(std::move(pool));
    }
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
      LayerWeights l;
      l.attn_norm = vector("attn_norm", d, 0.6f, 1.4f);
      l.ffn_norm = vector("ffn_norm", d, 0.6f, 1.4f);
      l.wq = matrix("wq", q, d);
      l.wk = matrix("wk", kv, d);
      l.wv = matrix("wv", kv, d);
      l.wo = matrix("wo", d, q);
      if (!c.is_moe_layer(i)) {
        l.ffn_gate = matrix("ffn_gate", c.intermediate_size, d);
        l.ffn_up = matrix("ffn_up", c.intermediate_size, d);
        l.ffn_down = matrix("ffn_down", d, c.intermediate_size);
      } else {
        l.router = matrix("router", c.n_routed_experts, d);
        l.router_bias = vector("router_bias", c.n_routed_experts, -0.2f, 0.2f);
        l.shexp_gate = matrix("shexp_gate", c.shared_width(), d);
        l.shexp_up = matrix("shexp_up", c.shared_width(), d);
        l.shexp_down = matrix("shexp_down", d, c.shared_width());
        l.pool = int(c.pool_of(i));
      }
      weights.layers.push_back(l);
    }
  }
  SyntheticModel(const SyntheticModel&) = delete;
  SyntheticModel& operator=(const SyntheticModel&) = delete;

  // Re-store every tensor as F32 holding its dequantised values.
  void convert_to_f32() {
    for_each_view([&](TensorView& v) { v = store(v.name, DType::F32, v.shape, dequantize(v)); });
  }

  ModelConfig config;
  ModelWeights weights;

 private:
  TensorView store(const std::string& name, DType t, std::vector<int64_t> shape, const std::vector<float>& values) {
    storage_.push_back(quantize(t, values, shape.back()));
    return TensorView{name, t, std::move(shape), storage_.back()};
  }

  void for_each_view(const std::function<void(TensorView&)>& fn) {
    for (TensorView* v : {&weights.token_embd, &weights.output, &weights.output_norm}) fn(*v);
    for (LayerWeights& l : weights.layers)
      for (TensorView* v : {&l.attn_norm, &l.ffn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate, &l.ffn_up, &l.ffn_down,
                            &l.router, &l.router_bias, &l.shexp_gate, &l.shexp_up, &l.shexp_down})
        if (!v->empty()) fn(*v);
    for (auto& pool : weights.pools)
      for (ExpertWeights& e : pool)
        for (TensorView* v : {&e.gate, &e.up, &e.down}) fn(*v);
  }

  std::deque<std::vector<uint8_t>> storage_;
};

// Every matrix input is a multiple of 32 so q8_0 / q4_0 can hold it.
ModelConfig synthetic_config() {
  ModelConfig c;
  c.hidden_size = 64;
  c.num_hidden_layers = 4;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.intermediate_size = 64;
  c.moe_intermediate_size = 32;
  c.n_routed_experts = 8;
  c.num_experts_per_tok = 2;
  c.n_shared_experts = 1;
  c.experts_shared_frequency = 3;
  c.first_k_dense_replace = 1;
  c.n_group = 2;
  c.topk_group = 1;
  c.vocab_size = 40;
  c.max_position_embeddings = 64;
  c.routed_scaling_factor = 1.5;
  return c;
}

const std::vector<int32_t> kIds = {5, 17, 3, 39, 0, 22, 8, 8, 31, 12};

}  // namespace

TEST_CASE("reference forward reads every weight DType exactly as quant.h decodes it") {
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0}) {
    CAPTURE(std::string(dtype_name(t)));
    SyntheticModel stored(synthetic_config(), t, 7);
    SyntheticModel as_f32(synthetic_config(), t, 7);
    as_f32.convert_to_f32();
    ReferenceForward a(stored.config, stored.weights), b(as_f32.config, as_f32.weights);
    const std::vector<float> logits = a.forward(kIds);
    CHECK(logits.size() == kIds.size() * 40);
    CHECK(logits == b.forward(kIds));

    // Decode on the same weights: bit-identical to the prefill.
    ReferenceForward step(stored.config, stored.weights);
    std::vector<float> decoded;
    for (int32_t id : kIds) {
      const std::vector<float> row = step.append(id);
      decoded.insert(decoded.end(), row.begin(), row.end());
    }
    CHECK(decoded == logits);
  }
}

TEST_CASE("reference forward: pre_gate false in the config routes from each layer's own h2") {
  SyntheticModel m(synthetic_config(), DType::F32, 11);
  ReferenceForward pre_gated(m.config, m.weights);
  ReferenceForward switched(m.config, m.weights, ReferenceOptions{.route_from_current_layer = true});
  ModelConfig own = m.config;
  own.pre_gate = false;
  ReferenceForward by_config(own, m.weights);
  const std::vector<float> expected = switched.forward(kIds);
  CHECK(by_config.forward(kIds) == expected);
  CHECK(pre_gated.forward(kIds) != expected);
}
