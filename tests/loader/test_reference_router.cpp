// The reference router against hand-computed expectations. Scores are chosen exactly
// representable in fp32 (sums of powers of two) so every expected id and weight is exact.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "loader/error.h"
#include "loader/reference/reference_router.h"

using namespace megrez;

namespace {

ModelConfig router_config(int64_t experts, int64_t k, int64_t n_group = 1, int64_t topk_group = 1) {
  ModelConfig c;
  c.n_routed_experts = experts;
  c.num_experts_per_tok = k;
  c.n_group = n_group;
  c.topk_group = topk_group;
  return c;
}

const std::vector<float> kScores8 = {0.125f, 0.5f, 0.3125f, 0.75f, 0.25f, 0.5f, 0.1875f, 0.0625f};
const std::vector<float> kZero8(8, 0.0f);

}  // namespace

TEST_CASE("router: plain top-k picks the largest scores, ties go to the lower id, weights renormalised") {
  const RouteResult r = select_experts(kScores8, kZero8, router_config(8, 2));
  CHECK(r.ids == std::vector<int32_t>{3, 1});  // 0.75, then 0.5 at ids 1 and 5: id 1 wins
  CHECK(r.weights == std::vector<float>{0.6f, 0.4f});  // 0.75/1.25, 0.5/1.25

  const RouteResult three = select_experts(kScores8, kZero8, router_config(8, 3));
  CHECK(three.ids == std::vector<int32_t>{3, 1, 5});

  const std::vector<float> flat(8, 0.5f);
  CHECK(select_experts(flat, kZero8, router_config(8, 3)).ids == std::vector<int32_t>{0, 1, 2});
}

TEST_CASE("router: the bias chooses, the unbiased score weighs") {
  std::vector<float> bias = kZero8;
  bias[0] = 0.5f;  // expert 0: 0.125 + 0.5 = 0.625 > 0.5
  const RouteResult r = select_experts(kScores8, bias, router_config(8, 2));
  CHECK(r.ids == std::vector<int32_t>{3, 0});
  CHECK(r.weights == std::vector<float>{float(6.0 / 7.0), float(1.0 / 7.0)});  // 0.75 and 0.125 over 0.875

  bias[3] = -1.0f;  // a negative bias can push the best raw score out entirely
  CHECK(select_experts(kScores8, bias, router_config(8, 2)).ids == std::vector<int32_t>{0, 1});
}

TEST_CASE("router: norm_topk_prob off and routed_scaling_factor") {
  ModelConfig c = router_config(8, 2);
  c.norm_topk_prob = false;
  CHECK(select_experts(kScores8, kZero8, c).weights == std::vector<float>{0.75f, 0.5f});
  c.routed_scaling_factor = 2.5;
  CHECK(select_experts(kScores8, kZero8, c).weights == std::vector<float>{1.875f, 1.25f});
  c.norm_topk_prob = true;
  CHECK(select_experts(kScores8, kZero8, c).weights == std::vector<float>{1.5f, 1.0f});  // 0.6, 0.4 times 2.5
}

TEST_CASE("router: group-limited top-k keeps the groups with the best top-2 sums") {
  // groups of 2:   g0 = {0.875, 0.0625} -> 0.9375   g1 = {0.5, 0.5} -> 1.0
  //                g2 = {0.625, 0.375}  -> 1.0      g3 = {0.25, 0.25} -> 0.5
  const std::vector<float> s = {0.875f, 0.0625f, 0.5f, 0.5f, 0.625f, 0.375f, 0.25f, 0.25f};
  // Without groups expert 0 (the single best) is chosen first.
  CHECK(select_experts(s, kZero8, router_config(8, 2)).ids == std::vector<int32_t>{0, 4});
  // Two groups kept: g1 and g2; expert 0's group is out although it holds the best expert.
  RouteResult r = select_experts(s, kZero8, router_config(8, 2, 4, 2));
  CHECK(r.ids == std::vector<int32_t>{4, 2});
  CHECK(r.weights == std::vector<float>{float(5.0 / 9.0), float(4.0 / 9.0)});  // 0.625, 0.5 over 1.125
  // One group kept: g1 and g2 tie at 1.0, the lower group id wins.
  r = select_experts(s, kZero8, router_config(8, 2, 4, 1));
  CHECK(r.ids == std::vector<int32_t>{2, 3});
  CHECK(r.weights == std::vector<float>{0.5f, 0.5f});
  // Group scores use the BIASED scores: a bias on g3 makes it the best group.
  std::vector<float> bias = kZero8;
  bias[6] = bias[7] = 0.5f;
  r = select_experts(s, bias, router_config(8, 2, 4, 1));
  CHECK(r.ids == std::vector<int32_t>{6, 7});
  CHECK(r.weights == std::vector<float>{0.5f, 0.5f});  // unbiased 0.25 each, renormalised
}

TEST_CASE("router: a group scores the sum of its TWO best experts, not its max nor its total") {
  // groups of 4: g0 top-2 = 1.0 (total 1.125), g1 top-2 = 1.0625 (total 1.0625),
  //              g2 top-2 = 1.0 (max 0.9375), g3 low.
  const std::vector<float> s = {0.5f,    0.5f,    0.0625f, 0.0625f, 0.625f, 0.4375f, 0.0f,   0.0f,
                                0.9375f, 0.0625f, 0.0f,    0.0f,    0.125f, 0.125f,  0.125f, 0.125f};
  const std::vector<float> zero(16, 0.0f);
  const RouteResult r = select_experts(s, zero, router_config(16, 2, 4, 1));
  CHECK(r.ids == std::vector<int32_t>{4, 5});
  CHECK(r.weights == std::vector<float>{float(10.0 / 17.0), float(7.0 / 17.0)});
  // Keeping two groups adds g0 (top-2 1.0 ties g2, lower id wins); g2's 0.9375 stays out.
  CHECK(select_experts(s, zero, router_config(16, 3, 4, 2)).ids == std::vector<int32_t>{4, 0, 1});
}

TEST_CASE("router: bad inputs throw megrez::Error") {
  CHECK_THROWS_AS(select_experts(kScores8, std::vector<float>(7, 0.0f), router_config(8, 2)), Error);
  CHECK_THROWS_AS(select_experts(kScores8, kZero8, router_config(9, 2)), Error);      // count mismatch
  CHECK_THROWS_AS(select_experts(kScores8, kZero8, router_config(8, 0)), Error);      // k = 0
  CHECK_THROWS_AS(select_experts(kScores8, kZero8, router_config(8, 9)), Error);      // k > E
  CHECK_THROWS_AS(select_experts(kScores8, kZero8, router_config(8, 2, 3, 1)), Error);  // 3 does not divide 8
  CHECK_THROWS_AS(select_experts(kScores8, kZero8, router_config(8, 3, 4, 1)), Error);  // k > kept experts
  CHECK_THROWS_AS(select_experts(kScores8, kZero8, router_config(8, 2, 4, 5)), Error);  // topk_group > n_group
  std::vector<float> nan_scores = kScores8;
  nan_scores[2] = NAN;
  CHECK_THROWS_AS(select_experts(nan_scores, kZero8, router_config(8, 2)), Error);
}

TEST_CASE("router: route() = sigmoid of fp64 dot products, then select_experts") {
  // E = 4, D = 2 router in f32; input (1, -2).
  const std::vector<float> w = {0.0f, 0.0f,  1.0f, 0.5f,  std::log(3.0f), 0.0f,  -1.0f, 0.25f};
  const std::vector<float> bias = {0.0f, 0.0f, 0.0f, 0.375f};
  TensorView weight{"router.weight", DType::F32, {4, 2},
                    {reinterpret_cast<const uint8_t*>(w.data()), w.size() * sizeof(float)}};
  TensorView bias_view{"router.bias", DType::F32, {4},
                       {reinterpret_cast<const uint8_t*>(bias.data()), bias.size() * sizeof(float)}};
  const std::vector<float> x = {1.0f, -2.0f};
  const std::vector<float> s = router_scores(x, weight);
  // logits 0, 0, ln 3, -1.5
  CHECK(s[0] == 0.5f);
  CHECK(s[1] == 0.5f);
  CHECK(s[2] == doctest::Approx(0.75).epsilon(1e-7));
  CHECK(s[3] == doctest::Approx(1.0 / (1.0 + std::exp(1.5))).epsilon(1e-7));

  ModelConfig c = router_config(4, 2);
  const RouteResult r = route(x, weight, bias_view, c);
  CHECK(r.ids == std::vector<int32_t>{2, 3});  // 0.75, then 0.182 + 0.375 = 0.557 > 0.5
  CHECK(r.ids == select_experts(s, bias, c).ids);
  CHECK(r.weights == select_experts(s, bias, c).weights);

  TensorView wrong_bias = bias_view;
  wrong_bias.dtype = DType::F16;
  CHECK_THROWS_AS(route(x, weight, wrong_bias, c), Error);
  CHECK_THROWS_AS(router_scores(std::vector<float>{1.0f, 2.0f, 3.0f}, weight), Error);
}
