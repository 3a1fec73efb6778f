#pragma once
// Megrez2 hyper-parameters, exactly the config.json keys of ../shared/docs/megrez2-model.md.
// Filled from config.json (HF) or GGUF metadata; never hard-coded.
#include <cstdint>
#include <string>

namespace megrez {

struct ModelConfig {
  std::string architecture = "MegrezMoeForCausalLM";
  int64_t hidden_size = 0;               // D
  int64_t num_hidden_layers = 0;         // L
  int64_t num_attention_heads = 0;       // H
  int64_t num_key_value_heads = 0;       // Hkv (GQA); derived from k_proj's shape if absent
  int64_t head_dim = 0;                  // Dh = D / H unless config.json says otherwise
  int64_t intermediate_size = 0;         // dense layers' SwiGLU width
  int64_t moe_intermediate_size = 0;     // one routed expert's width
  int64_t n_routed_experts = 0;          // experts per pool
  int64_t num_experts_per_tok = 0;       // top-k
  int64_t n_shared_experts = 0;          // fused shared MLP width = n_shared * moe_inter
  int64_t experts_shared_frequency = 1;  // layers per pool
  int64_t first_k_dense_replace = 1;     // leading dense layers
  int64_t moe_layer_freq = 1;            // only 1 is supported (every later layer is MoE)
  int64_t n_group = 1;                   // router groups (group-limited top-k)
  int64_t topk_group = 1;                // groups kept
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;   // context length the model was trained for
  bool pre_gate = true;
  bool norm_topk_prob = true;
  bool tie_word_embeddings = false;
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;
  double routed_scaling_factor = 1.0;
  std::string scoring_func = "sigmoid";
  std::string topk_method = "noaux_tc";
  std::string hidden_act = "silu";
  int64_t bos_token_id = -1;             // -1: none
  int64_t eos_token_id = -1;

  // Layer structure (see "Layers and pools" in the spec).
  bool is_moe_layer(int64_t layer) const { return layer >= first_k_dense_replace; }
  int64_t pool_of(int64_t layer) const { return (layer - first_k_dense_replace) / experts_shared_frequency; }
  int64_t owner_of_pool(int64_t pool) const { return first_k_dense_replace + pool * experts_shared_frequency; }
  int64_t n_pools() const;
  int64_t shared_width() const { return n_shared_experts * moe_intermediate_size; }

  // Throws megrez::Error naming the first inconsistent or absurd value.
  void validate() const;
};

}  // namespace megrez
