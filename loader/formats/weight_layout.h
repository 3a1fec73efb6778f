#pragma once
// Where every weight of a Megrez2 model lives: its Hugging Face name, its GGUF (llama.cpp)
// name, its shape, and the ModelWeights field it fills. The HF loader, the GGUF loader, the
// GGUF exporter and the synthetic-model writer all walk this one list, so the two file
// formats cannot drift apart.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "loader/formats/config.h"
#include "loader/weights.h"

namespace megrez {

enum class WeightRole {
  Matrix,  // a Linear weight or the embedding: stored in the converter's chosen type
  Router,  // mlp.gate.weight: kept f32 by the converter (routing is precision-sensitive)
  Vector,  // norms and router biases: always presented as F32
};

struct WeightSlot {
  std::string hf_name;         // "model.layers.3.self_attn.q_proj.weight"
  std::string gguf_name;       // "blk.3.attn_q.weight"; experts: the stacked tensor's name
  std::vector<int64_t> shape;  // HF order; for an expert, one expert's matrix
  WeightRole role = WeightRole::Matrix;
  int pool = -1, expert = -1;    // routed experts only: slices of the stacked GGUF tensor
  TensorView* target = nullptr;  // the ModelWeights field this slot fills
};

// Sizes `w.layers` and `w.pools` for `cfg` and sets each MoE layer's pool index.
void prepare_weights(const ModelConfig& cfg, ModelWeights& w);

// Every stored tensor of the model in a fixed order: token_embd, output_norm, output (absent
// when the embeddings are tied), then each layer's tensors, and after an owner layer its pool's
// experts grouped by matrix (all gate, all up, all down) so each GGUF stacked tensor is a run
// of consecutive slots. `w` must have been prepared for `cfg`; the slots point into it.
std::vector<WeightSlot> weight_slots(const ModelConfig& cfg, ModelWeights& w);

// Number of weights `cfg` describes (every stored tensor, experts once per pool), or nullopt
// when it overflows 64 bits. Loaders compare it with the file size before allocating
// anything per tensor, so a hostile config cannot ask for billions of slots.
std::optional<uint64_t> stored_weight_count(const ModelConfig& cfg);

std::string shape_string(const std::vector<int64_t>& shape);  // "[256, 128]"

}  // namespace megrez
