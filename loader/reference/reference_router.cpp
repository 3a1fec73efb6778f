#include "loader/reference/reference_router.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "loader/error.h"
#include "loader/quant/quant.h"

namespace megrez {
namespace {

// Indices 0..n-1 of `values` sorted best first: larger value first, lower index on ties.
// A strict total order, so every correct implementation picks the same experts.
std::vector<int32_t> rank_descending(std::span<const double> values) {
  std::vector<int32_t> order(values.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return values[a] != values[b] ? values[a] > values[b] : a < b;
  });
  return order;
}

void check_router_config(const ModelConfig& c, size_t n_experts) {
  const int64_t e = int64_t(n_experts);
  auto fail = [](const std::string& what) { throw Error("router: " + what); };
  if (e != c.n_routed_experts)
    fail("expected " + std::to_string(c.n_routed_experts) + " scores (n_routed_experts), got " + std::to_string(e));
  if (c.num_experts_per_tok < 1 || c.num_experts_per_tok > e)
    fail("num_experts_per_tok " + std::to_string(c.num_experts_per_tok) + " is outside 1.." + std::to_string(e));
  if (c.n_group < 1 || e % c.n_group != 0)
    fail("n_group " + std::to_string(c.n_group) + " does not divide n_routed_experts " + std::to_string(e));
  if (c.topk_group < 1 || c.topk_group > c.n_group)
    fail("topk_group " + std::to_string(c.topk_group) + " is outside 1..n_group " + std::to_string(c.n_group));
  if (c.num_experts_per_tok > c.topk_group * (e / c.n_group))
    fail("num_experts_per_tok " + std::to_string(c.num_experts_per_tok) + " exceeds the " +
         std::to_string(c.topk_group * (e / c.n_group)) + " experts of the kept groups");
}

// Which experts may be chosen: all of them when n_group == 1, else those of the topk_group
// groups with the largest sum of their two best biased scores. `group_margin`: the last kept
// group's score minus the best dropped group's (+inf when no group is dropped).
std::vector<bool> allowed_experts(std::span<const double> biased, const ModelConfig& c, double& group_margin) {
  const size_t n = biased.size();
  group_margin = INFINITY;
  if (c.n_group == 1) return std::vector<bool>(n, true);
  const size_t group_size = n / size_t(c.n_group);
  std::vector<double> group_score(size_t(c.n_group));
  for (size_t g = 0; g < group_score.size(); ++g) {
    std::span<const double> members = biased.subspan(g * group_size, group_size);
    std::vector<int32_t> best = rank_descending(members);
    const size_t take = std::min<size_t>(2, group_size);  // "top-2"; a 1-expert group has one
    for (size_t j = 0; j < take; ++j) group_score[g] += members[size_t(best[j])];
  }
  std::vector<int32_t> groups = rank_descending(group_score);
  if (c.topk_group < c.n_group) {
    group_margin = group_score[size_t(groups[size_t(c.topk_group - 1)])] - group_score[size_t(groups[size_t(c.topk_group)])];
  }
  std::vector<bool> allowed(n, false);
  for (int64_t j = 0; j < c.topk_group; ++j)
    for (size_t m = 0; m < group_size; ++m) allowed[size_t(groups[size_t(j)]) * group_size + m] = true;
  return allowed;
}

}  // namespace

std::vector<float> router_scores(std::span<const float> pre_gate_input, const TensorView& router_weight) {
  if (router_weight.shape.size() != 2 || router_weight.cols() != int64_t(pre_gate_input.size()))
    throw Error("router: " + router_weight.name + " must be [n_routed_experts, " +
                std::to_string(pre_gate_input.size()) + "]");
  const int64_t n_experts = router_weight.rows(), d = router_weight.cols();
  std::vector<float> row(static_cast<size_t>(d)), scores(static_cast<size_t>(n_experts));
  for (int64_t e = 0; e < n_experts; ++e) {
    dequantize_row(router_weight.dtype, router_weight.row(e), row.data(), d);
    double logit = 0.0;
    for (int64_t j = 0; j < d; ++j) logit += double(pre_gate_input[size_t(j)]) * double(row[size_t(j)]);
    scores[size_t(e)] = float(1.0 / (1.0 + std::exp(-logit)));
  }
  return scores;
}

RouteResult select_experts(std::span<const float> scores, std::span<const float> bias, const ModelConfig& config) {
  check_router_config(config, scores.size());
  if (bias.size() != scores.size())
    throw Error("router: expected " + std::to_string(scores.size()) + " bias values, got " +
                std::to_string(bias.size()));

  // Biased scores are formed in fp32 (as every implementation does) and only compared.
  std::vector<double> biased(scores.size());
  for (size_t e = 0; e < scores.size(); ++e) {
    if (std::isnan(scores[e]) || std::isnan(bias[e]))
      throw Error("router: NaN score or bias for expert " + std::to_string(e));
    biased[e] = double(scores[e] + bias[e]);
  }
  // Experts outside the kept groups are not candidates at all (the spec's "-inf"; the config
  // check guarantees k <= the number of kept experts).
  double group_margin;
  const std::vector<bool> allowed = allowed_experts(biased, config, group_margin);
  RouteResult r;
  for (int32_t e : rank_descending(biased)) {
    if (int64_t(r.ids.size()) == config.num_experts_per_tok) break;
    if (allowed[size_t(e)]) r.ids.push_back(e);
  }
  double last_chosen = biased[size_t(r.ids.back())], best_left = -INFINITY;
  for (size_t e = 0; e < biased.size(); ++e) {
    if (allowed[e] && std::find(r.ids.begin(), r.ids.end(), int32_t(e)) == r.ids.end()) {
      best_left = std::max(best_left, biased[e]);
    }
  }
  r.margin = std::min(last_chosen - best_left, group_margin);  // +inf when nothing was left out
  double sum = 0.0;
  for (int32_t id : r.ids) sum += double(scores[size_t(id)]);
  for (int32_t id : r.ids) {
    double w = double(scores[size_t(id)]);  // the UNBIASED score weighs the expert
    if (config.norm_topk_prob) w /= sum;
    r.weights.push_back(float(w * config.routed_scaling_factor));
  }
  return r;
}

RouteResult route(std::span<const float> pre_gate_input, const TensorView& router_weight,
                  const TensorView& router_bias, const ModelConfig& config) {
  if (router_bias.dtype != DType::F32 || router_bias.numel() != router_weight.rows())
    throw Error("router: " + router_bias.name + " must be F32 [" + std::to_string(router_weight.rows()) + "]");
  const std::vector<float> scores = router_scores(pre_gate_input, router_weight);
  std::vector<float> bias(size_t(router_bias.numel()));
  dequantize_row(DType::F32, router_bias.bytes.data(), bias.data(), router_bias.numel());
  return select_experts(scores, bias, config);
}

}  // namespace megrez
