#pragma once
// Plain weight structs (llama2.c style): every field says its shape in HF [out, in] order.
// Views point into the mapped model file or into storage the Model owns; they stay valid
// as long as the Model lives. Norm weights and router biases are always F32 here (the
// loader converts them when a file stores them narrower); matrices keep their stored type.
#include <vector>

#include "loader/tensor.h"

namespace megrez {

struct ExpertWeights {       // one routed expert: a SwiGLU MLP of width I = moe_intermediate_size
  TensorView gate;           // [I, D]
  TensorView up;             // [I, D]
  TensorView down;           // [D, I]
};

struct LayerWeights {
  TensorView attn_norm;      // [D]                 input_layernorm
  TensorView wq;             // [H*Dh, D]
  TensorView wk;             // [Hkv*Dh, D]
  TensorView wv;             // [Hkv*Dh, D]
  TensorView wo;             // [D, H*Dh]
  TensorView ffn_norm;       // [D]                 post_attention_layernorm
  // dense layers only (layer < first_k_dense_replace)
  TensorView ffn_gate;       // [intermediate, D]
  TensorView ffn_up;         // [intermediate, D]
  TensorView ffn_down;       // [D, intermediate]
  // MoE layers only
  TensorView router;         // [E, D]              mlp.gate.weight (this layer's own)
  TensorView router_bias;    // [E] F32             e_score_correction_bias (this layer's own)
  TensorView shexp_gate;     // [S, D]              S = n_shared_experts * moe_intermediate
  TensorView shexp_up;       // [S, D]
  TensorView shexp_down;     // [D, S]
  int pool = -1;             // index into ModelWeights::pools, -1 for dense layers
};

struct ModelWeights {
  TensorView token_embd;     // [vocab, D]
  TensorView output_norm;    // [D]
  TensorView output;         // [vocab, D]          lm_head (same bytes as token_embd when tied)
  std::vector<LayerWeights> layers;                  // [L]
  std::vector<std::vector<ExpertWeights>> pools;     // [n_pools][n_routed_experts], each expert contiguous
};

}  // namespace megrez
