#pragma once
// Golden fixtures of tests/data/reference/<case>/ (written by make_golden.py from the
// independent PyTorch module) and small helpers shared by the reference tests.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "loader/error.h"
#include "loader/hf_config.h"
#include "loader/safetensors.h"
#include "loader/weights.h"

namespace reference_test {

inline const std::string kFixtureRoot = std::string(MEGREZ_SOURCE_DIR) + "/tests/data/reference/";

// Every case make_golden.py writes; a missing directory fails the tests.
inline const std::vector<std::string> kFixtureCases = {
    "base",          "mqa_freq2", "mha_freq3", "groups4_keep2", "groups2_keep1_k3", "nonorm_scaled",
    "norm_scaled_shared2", "dense2_freq2", "tied", "odd48", "theta1e6_long"};

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot open " << path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// float32 little-endian file holding exactly `count` values.
inline std::vector<float> read_f32(const std::string& path, size_t count) {
  const std::string raw = read_text(path);
  REQUIRE_MESSAGE(raw.size() == count * sizeof(float), path << ": " << raw.size() << " bytes, expected " << count * 4);
  std::vector<float> v(count);
  std::memcpy(v.data(), raw.data(), raw.size());
  return v;
}

// A checkpoint directory opened into config + weight views, and whatever owns the bytes.
struct OpenedModel {
  megrez::ModelConfig config;
  megrez::ModelWeights weights;
  std::shared_ptr<megrez::SafetensorsCheckpoint> owner;
};

inline OpenedModel open_model(const std::string& dir) {
  using namespace megrez;
  OpenedModel m;
  m.owner = std::make_shared<SafetensorsCheckpoint>(dir);
  const auto& t = m.owner->tensors();
  auto get = [&](const std::string& name) {
    auto it = t.find(name);
    REQUIRE_MESSAGE(it != t.end(), dir << " lacks " << name);
    return it->second.view;
  };
  m.config = parse_hf_config(read_text(dir + "/config.json"), dir + "/config.json",
                             get("model.layers.0.self_attn.k_proj.weight").shape[0], nullptr);
  const ModelConfig& c = m.config;
  ModelWeights& w = m.weights;
  w.token_embd = get("model.embed_tokens.weight");
  w.output_norm = get("model.norm.weight");
  w.output = c.tie_word_embeddings ? w.token_embd : get("lm_head.weight");
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    LayerWeights l;
    l.attn_norm = get(p + "input_layernorm.weight");
    l.ffn_norm = get(p + "post_attention_layernorm.weight");
    l.wq = get(p + "self_attn.q_proj.weight");
    l.wk = get(p + "self_attn.k_proj.weight");
    l.wv = get(p + "self_attn.v_proj.weight");
    l.wo = get(p + "self_attn.o_proj.weight");
    if (!c.is_moe_layer(i)) {
      l.ffn_gate = get(p + "mlp.gate_proj.weight");
      l.ffn_up = get(p + "mlp.up_proj.weight");
      l.ffn_down = get(p + "mlp.down_proj.weight");
    } else {
      l.router = get(p + "mlp.gate.weight");
      l.router_bias = get(p + "mlp.gate.e_score_correction_bias");
      l.shexp_gate = get(p + "mlp.shared_experts.gate_proj.weight");
      l.shexp_up = get(p + "mlp.shared_experts.up_proj.weight");
      l.shexp_down = get(p + "mlp.shared_experts.down_proj.weight");
      l.pool = int(c.pool_of(i));
      if (c.owner_of_pool(l.pool) == i) {
        std::vector<ExpertWeights> pool;
        for (int64_t e = 0; e < c.n_routed_experts; ++e) {
          const std::string q = p + "mlp.experts." + std::to_string(e) + ".";
          pool.push_back({get(q + "gate_proj.weight"), get(q + "up_proj.weight"), get(q + "down_proj.weight")});
        }
        w.pools.push_back(std::move(pool));
      }
    }
    w.layers.push_back(l);
  }
  return m;
}

// One golden case: the model plus what PyTorch computed for it.
struct Fixture {
  std::string name;
  OpenedModel model;
  std::vector<int32_t> ids;
  int64_t vocab = 0;
  std::vector<float> logits;            // [T, vocab]
  std::vector<float> own_layer_logits;  // [T, vocab] routed from each layer's own h2; may be empty
  std::map<int64_t, std::vector<std::vector<int32_t>>> routing;  // layer -> [T][k] expert ids
  double max_abs_logit = 0;
};

inline Fixture load_fixture(const std::string& name) {
  Fixture f;
  f.name = name;
  const std::string dir = kFixtureRoot + name;
  f.model = open_model(dir);
  const nlohmann::json e = nlohmann::json::parse(read_text(dir + "/expected.json"));
  f.ids = e.at("ids").get<std::vector<int32_t>>();
  f.vocab = e.at("vocab_size").get<int64_t>();
  f.logits = read_f32(dir + "/" + e.at("logits").get<std::string>(), f.ids.size() * size_t(f.vocab));
  if (e.contains("own_layer_logits"))
    f.own_layer_logits = read_f32(dir + "/" + e.at("own_layer_logits").get<std::string>(), f.logits.size());
  for (const auto& [layer, ids] : e.at("routing").items())
    f.routing[std::stoll(layer)] = ids.get<std::vector<std::vector<int32_t>>>();
  f.max_abs_logit = e.at("max_abs_logit").get<double>();
  return f;
}

inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - double(b[i])));
  return m;
}

inline std::vector<int64_t> argmax_rows(const std::vector<float>& logits, int64_t vocab) {
  std::vector<int64_t> out;
  for (size_t r = 0; r * size_t(vocab) < logits.size(); ++r) {
    auto row = logits.begin() + std::ptrdiff_t(r * size_t(vocab));
    out.push_back(std::max_element(row, row + vocab) - row);
  }
  return out;
}

}  // namespace reference_test
