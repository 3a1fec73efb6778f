#pragma once
// The Megrez2 router as plain C++ (DeepSeek-V3 "noaux_tc" with sigmoid scores, see
// ../shared/docs/megrez2-model.md "Router of layer i"). It is the oracle for the CPU
// reference forward and for the GPU router kernel tests, so it is written for clarity:
// fp64 dot products, fp32 scores, and a fully specified tie-break (lower id wins, for
// groups and for experts) so two correct implementations agree exactly.
#include <cstdint>
#include <span>
#include <vector>

#include "loader/formats/config.h"
#include "loader/tensor.h"

namespace megrez {

struct RouteResult {
  // num_experts_per_tok entries, best biased score first (ties: lower expert id first).
  std::vector<int32_t> ids;
  // Unbiased sigmoid scores of `ids`, renormalised when norm_topk_prob, then multiplied by
  // routed_scaling_factor. weights[k] belongs to ids[k].
  std::vector<float> weights;
  // Biased score of the last chosen expert minus that of the best allowed expert left out
  // (0 on an exact tie): how little would flip the choice. Tests comparing against another
  // implementation skip tokens whose margin is within that implementation's rounding.
  double margin = 0;
};

// s = sigmoid(pre_gate_input . router_weight[e]) for every expert e, dot products in fp64,
// rounded to fp32 (the precision the spec asks of every router). router_weight is [E, D]
// in any DType; pre_gate_input has D elements.
std::vector<float> router_scores(std::span<const float> pre_gate_input, const TensorView& router_weight);

// Choose experts from sigmoid scores `scores` [E] and the correction bias `bias` [E]:
// biased scores pick (group-limited when n_group > 1), unbiased scores weigh.
RouteResult select_experts(std::span<const float> scores, std::span<const float> bias, const ModelConfig& config);

// The whole router of one layer: router_scores + select_experts. router_bias must be F32 [E].
RouteResult route(std::span<const float> pre_gate_input, const TensorView& router_weight,
                  const TensorView& router_bias, const ModelConfig& config);

}  // namespace megrez
