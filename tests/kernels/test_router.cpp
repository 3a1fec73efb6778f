// The GPU router (shaders/router.comp) against the CPU oracle loader/reference/reference_router.h.
// Two independent checks per token:
//  - end to end: route() on the same inputs must give the same expert ids exactly and
//    weights within 1e-6 relative. Inputs lie on a grid where every dot product is exact in
//    fp32 (reference_moe.cpp), so the logits agree bit for bit and only sigmoid rounding
//    (a few ulp) separates the two sides;
//  - selection alone: select_experts() on the GPU's own scores must reproduce the GPU's ids
//    exactly, which pins the tie-breaks down to the last ulp (constructed exact ties and
//    1-ulp near-ties of biased scores and of group sums).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "common/gpu_fixture.h"
#include "loader/formats/config.h"
#include "loader/quant/quant.h"
#include "loader/reference/reference_router.h"
#include "reference_moe.h"
#include "shaders/abi/router.h"

using namespace megrez;

namespace {

struct RouterCase {
  uint32_t experts = 64, top_k = 6, n_group = 1, topk_group = 1;
  bool norm = true;
  float scaling = 1.0f;
};

ModelConfig router_config(const RouterCase& c) {
  ModelConfig cfg;
  cfg.n_routed_experts = c.experts;
  cfg.num_experts_per_tok = c.top_k;
  cfg.n_group = c.n_group;
  cfg.topk_group = c.topk_group;
  cfg.norm_topk_prob = c.norm;
  cfg.routed_scaling_factor = c.scaling;
  return cfg;
}

struct RouterOutput {
  std::vector<uint32_t> ids;
  std::vector<float> weights, scores;
};

// Runs router_<fmt>[_shmem] over `tokens` rows of pre_gate.
RouterOutput run_router(Context& ctx, const test::HostMatrix& weight, const std::vector<float>& bias,
                        const std::vector<float>& pre_gate, uint32_t tokens, const RouterCase& c,
                        uint32_t workgroup = 64) {
  const uint32_t dim = uint32_t(weight.cols);
  Arena arena(ctx, "router-test", MemoryUse::Device, 8 << 20);
  BufferRange x = test::upload_vector(ctx, arena, pre_gate);
  BufferRange w = test::upload_vector(ctx, arena, test::to_words(weight.bytes));
  BufferRange b = test::upload_vector(ctx, arena, bias);
  BufferRange ids = arena.allocate(size_t(tokens) * c.top_k * 4);
  BufferRange weights = arena.allocate(size_t(tokens) * c.top_k * 4);
  BufferRange scores = arena.allocate(size_t(tokens) * c.experts * 4);

  std::string name = "router_" + test::format_suffix(weight.dtype);
  if (!ctx.caps().use_subgroup_reduce()) name += "_shmem";
  workgroup = std::min(workgroup, ctx.caps().max_workgroup_invocations);
  const Pipeline& p = ctx.pipeline(name, {{workgroup, 1, 1}, {}});
  CommandBuffer cmd(ctx);
  cmd.begin();
  dispatch(cmd, p, {x, w, b, ids, weights, scores},
           abi::RouterPush{tokens, dim, c.experts, c.top_k, c.n_group, c.topk_group, c.norm ? 1u : 0u, c.scaling},
           {tokens});
  cmd.submit_and_wait();
  return {test::download_vector<uint32_t>(ctx, ids), test::download_vector<float>(ctx, weights),
          test::download_vector<float>(ctx, scores)};
}

TensorView bias_view(const std::vector<float>& bias) {
  TensorView v;
  v.name = "bias";
  v.dtype = DType::F32;
  v.shape = {int64_t(bias.size())};
  v.bytes = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bias.data()), bias.size() * 4);
  return v;
}

std::vector<uint32_t> as_uint(const std::vector<int32_t>& v) { return {v.begin(), v.end()}; }

// Both checks of the file comment, for every token.
void check_router(const RouterOutput& got, const test::HostMatrix& weight, const std::vector<float>& bias,
                  const std::vector<float>& pre_gate, uint32_t tokens, const RouterCase& c) {
  const ModelConfig cfg = router_config(c);
  const size_t dim = size_t(weight.cols);
  for (uint32_t t = 0; t < tokens; ++t) {
    CAPTURE(t);
    const std::span<const float> x(pre_gate.data() + t * dim, dim);
    const std::vector<uint32_t> gpu_ids(got.ids.begin() + t * c.top_k, got.ids.begin() + (t + 1) * c.top_k);
    const std::vector<float> gpu_w(got.weights.begin() + t * c.top_k, got.weights.begin() + (t + 1) * c.top_k);
    const std::vector<float> gpu_s(got.scores.begin() + t * c.experts, got.scores.begin() + (t + 1) * c.experts);

    const RouteResult ref = route(x, weight.view("router"), bias_view(bias), cfg);
    CHECK(gpu_ids == as_uint(ref.ids));
    CHECK(test::max_rel_error(gpu_w, ref.weights, 0.0) <= 1e-6);
    // Scores: exact logits, so only exp/division rounding (<= a few ulp) differs.
    CHECK(test::max_rel_error(gpu_s, router_scores(x, weight.view("router")), 0.0) <= 1e-6);

    const RouteResult same_scores = select_experts(gpu_s, bias, cfg);
    CHECK(gpu_ids == as_uint(same_scores.ids));
    CHECK(test::max_rel_error(gpu_w, same_scores.weights, 0.0) <= 1e-6);
  }
}

// Copies row `from` of a matrix over row `to` (bytes and decoded values).
void copy_row(test::HostMatrix& m, int64_t from, int64_t to) {
  const size_t rb = row_bytes(m.dtype, m.cols);
  std::memcpy(m.bytes.data() + size_t(to) * rb, m.bytes.data() + size_t(from) * rb, rb);
  std::copy_n(m.values.begin() + from * m.cols, m.cols, m.values.begin() + to * m.cols);
}

std::vector<float> small_bias(uint32_t n, std::mt19937& rng) { return test::random_vector(n, 0.05f, rng); }

}  // namespace

TEST_CASE_FIXTURE(test::GpuTest, "router matches the reference: formats, groups, norm, scaling") {
  struct Shape {
    RouterCase c;
    uint32_t dim, tokens;
  };
  const std::vector<Shape> shapes = {
      {{64, 6, 1, 1, true, 1.0f}, 2048, 3},     // Megrez2: E=64, k=6, plain top-k
      {{64, 6, 4, 1, true, 2.5f}, 256, 5},      // groups of 16, keep 1
      {{64, 6, 4, 2, false, 1.0f}, 96, 4},      // keep 2 of 4, no renormalisation
      {{64, 8, 8, 3, true, 2.5f}, 64, 7},       // groups of 8, keep 3
      {{256, 16, 8, 2, true, 1.0f}, 128, 2},    // largest E and k the kernel supports
      {{8, 1, 1, 1, false, 2.5f}, 32, 1},       // k = 1
  };
  for (DType dtype : test::all_weight_formats()) {
    for (const Shape& s : shapes) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(s.c.experts);
      CAPTURE(s.c.n_group);
      CAPTURE(s.c.topk_group);
      CAPTURE(s.dim);
      std::mt19937 rng(s.dim * 131 + s.c.experts + uint32_t(dtype));
      const test::HostMatrix w = test::exact_matrix(dtype, s.c.experts, s.dim, rng);
      const std::vector<float> bias = small_bias(s.c.experts, rng);
      const std::vector<float> x = test::exact_inputs(size_t(s.tokens) * s.dim, rng);
      check_router(run_router(ctx, w, bias, x, s.tokens, s.c), w, bias, x, s.tokens, s.c);
    }
  }
}

TEST_CASE_FIXTURE(test::GpuTest, "router handles columns that are not whole blocks (float formats)") {
  for (DType dtype : {DType::F32, DType::F16, DType::BF16}) {
    for (uint32_t dim : {1u, 33u, 48u, 95u}) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(dim);
      const RouterCase c{16, 4, 4, 2, true, 1.0f};
      std::mt19937 rng(dim);
      const test::HostMatrix w = test::exact_matrix(dtype, c.experts, dim, rng);
      const std::vector<float> bias = small_bias(c.experts, rng);
      const std::vector<float> x = test::exact_inputs(size_t(3) * dim, rng);
      check_router(run_router(ctx, w, bias, x, 3, c), w, bias, x, 3, c);
    }
  }
}

TEST_CASE_FIXTURE(test::GpuTest, "router workgroup size does not change the result") {
  const RouterCase c{64, 6, 8, 3, true, 2.5f};
  std::mt19937 rng(7);
  const test::HostMatrix w = test::exact_matrix(DType::Q8_0, c.experts, 512, rng);
  const std::vector<float> bias = small_bias(c.experts, rng);
  const std::vector<float> x = test::exact_inputs(size_t(4) * 512, rng);
  const RouterOutput base = run_router(ctx, w, bias, x, 4, c, 64);
  check_router(base, w, bias, x, 4, c);
  for (uint32_t wg : {1u, 7u, 32u, 128u}) {
    CAPTURE(wg);
    const RouterOutput other = run_router(ctx, w, bias, x, 4, c, wg);
    CHECK(other.ids == base.ids);
    check_router(other, w, bias, x, 4, c);
  }
}

TEST_CASE_FIXTURE(test::GpuTest, "router ties: equal scores pick the lower expert id, 1 ulp of b apart the larger") {
  for (const RouterCase& c : {RouterCase{64, 6, 1, 1, true, 1.0f}, RouterCase{64, 6, 4, 2, false, 2.5f}}) {
    CAPTURE(c.n_group);
    std::mt19937 rng(11 + c.n_group);
    test::HostMatrix w = test::exact_matrix(DType::F32, c.experts, 256, rng);
    std::vector<float> bias = small_bias(c.experts, rng);
    // Pairs (2m, 2m+1) share a row, so their sigmoid scores are equal on any device.
    for (uint32_t m = 0; m < c.experts / 2; ++m) copy_row(w, 2 * m, 2 * m + 1);
    const std::vector<float> x = test::exact_inputs(256, rng);
    const std::vector<float> s = run_router(ctx, w, bias, x, 1, c).scores;
    // Biased scores (fp32 adds, as on the GPU): even m -> the pair ties exactly (2m must come
    // first); odd m -> b[2m+1] is the next float above b[2m] (2m+1 must come first).
    uint32_t near_ties = 0;
    for (uint32_t m = 0; m < c.experts / 2; ++m) {
      bias[2 * m + 1] = bias[2 * m];
      if (m % 2 == 0) continue;
      const float target = std::nextafter(s[2 * m] + bias[2 * m], INFINITY);
      float candidate = target - s[2 * m + 1];
      for (int step = 0; step < 4 && s[2 * m + 1] + candidate != target; ++step)
        candidate = std::nextafter(candidate, s[2 * m + 1] + candidate < target ? INFINITY : -INFINITY);
      if (s[2 * m + 1] + candidate == target) {
        bias[2 * m + 1] = candidate;
        ++near_ties;
      }
    }
    REQUIRE(near_ties >= c.experts / 4 - 2);
    const RouterOutput got = run_router(ctx, w, bias, x, 1, c);
    REQUIRE(got.scores == s);
    check_router(got, w, bias, x, 1, c);
    uint32_t pairs_seen = 0;
    for (uint32_t k = 0; k + 1 < c.top_k; ++k) {
      const uint32_t a = got.ids[k], b = got.ids[k + 1];
      if (a / 2 != b / 2) continue;
      ++pairs_seen;
      const uint32_t even = 2 * (a / 2), odd = even + 1;
      const bool odd_wins = s[odd] + bias[odd] > s[even] + bias[even];
      CHECK(a == (odd_wins ? odd : even));
    }
    CHECK(pairs_seen >= 1);
  }
}

TEST_CASE_FIXTURE(test::GpuTest, "router near-ties: rows one grid step apart keep their order") {
  const RouterCase c{64, 6, 1, 1, true, 1.0f};
  std::mt19937 rng(5);
  test::HostMatrix w = test::exact_matrix(DType::BF16, c.experts, 128, rng);
  std::vector<float> bias(c.experts, 0.0f);
  // Every expert's row equals expert 0's except one weight nudged by the grid step 2^-6:
  // logits differ by |x_j| * 2^-6 (or not at all where x_j == 0: an exact tie).
  std::vector<float> x = test::exact_inputs(128, rng);
  for (uint32_t e = 1; e < c.experts; ++e) {
    copy_row(w, 0, e);
    const int64_t col = int64_t(e % 128);
    const float nudged = w.at(e, col) + ((e % 3 == 0) ? -1.0f : 1.0f) / 64;
    w.values[size_t(e * 128 + col)] = nudged;
    const uint16_t bits = f32_to_bf16(nudged);
    std::memcpy(w.bytes.data() + size_t(e) * 256 + size_t(col) * 2, &bits, 2);
  }
  check_router(run_router(ctx, w, bias, x, 1, c), w, bias, x, 1, c);
}

TEST_CASE_FIXTURE(test::GpuTest, "router groups: exact group ties go to the lower group, sums compared exactly") {
  const RouterCase c{64, 6, 4, 1, true, 1.0f};  // groups of 16, keep one
  std::mt19937 rng(3);
  test::HostMatrix w = test::exact_matrix(DType::F32, c.experts, 64, rng);
  std::vector<float> x = test::exact_inputs(64, rng);
  // Experts 0 and 16 (group 0 and 1 leaders) share a row, as do 1 and 17; expert 1's row is
  // x itself so its logit is positive and its score lies in [0.5, 1) where one ulp is 2^-24.
  for (int64_t col = 0; col < 64; ++col) {
    w.values[size_t(64 + col)] = x[size_t(col)];
    std::memcpy(w.bytes.data() + size_t(64 + col) * 4, &x[size_t(col)], 4);
  }
  copy_row(w, 0, 16);
  copy_row(w, 1, 17);
  std::vector<float> bias(c.experts, -10.0f);  // everyone else is far behind
  const RouterOutput probe = run_router(ctx, w, bias, x, 1, c);
  const float s1 = probe.scores[1];
  REQUIRE(s1 >= 0.5f);
  REQUIRE(s1 < 1.0f);
  bias[0] = bias[16] = 8.0f;  // leaders: equal b = fl(8 + s0) in both groups
  SUBCASE("exact tie of group sums: group 0 wins") {
    bias[1] = bias[17] = -s1;  // b = 0 exactly in both groups
    const RouterOutput got = run_router(ctx, w, bias, x, 1, c);
    check_router(got, w, bias, x, 1, c);
    for (uint32_t id : got.ids) CHECK(id < 16);
  }
  SUBCASE("sums equal in fp32 but not exactly: group 1 wins") {
    bias[1] = -s1;                                   // b1 = 0
    bias[17] = -s1 + std::ldexp(1.0f, -24);          // b17 = 2^-24 exactly (Sterbenz), lost in 8 + ...
    REQUIRE(s1 + bias[17] == std::ldexp(1.0f, -24));
    REQUIRE((8.0f + probe.scores[0]) + std::ldexp(1.0f, -24) == 8.0f + probe.scores[0]);
    const RouterOutput got = run_router(ctx, w, bias, x, 1, c);
    check_router(got, w, bias, x, 1, c);
    for (uint32_t id : got.ids) CHECK((id >= 16 && id < 32));
  }
}
