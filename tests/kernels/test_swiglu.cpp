// SwiGLU on the GPU: the elementwise activation (swiglu.comp) and the fused gate/up products
// (swiglu_fused_<fmt>, moe_matvec.comp) against plain C++ over the same bytes.
// Tolerances: the activation within (8 + 2|gate|) ulp (Vulkan's exp() precision); the
// fused products, every format, NMSE <= 1e-10 and each element within 1e-5 of the RMS (the
// weights decode exactly on both sides, only fp32 accumulation order differs).
#include <cmath>
#include <cstring>

#include "moe_test_util.h"

using namespace megrez;

namespace {

std::vector<float> run_swiglu(Context& ctx, const std::vector<float>& gate, const std::vector<float>& up) {
  Arena arena(ctx, "swiglu-test", MemoryUse::Device, 4 << 20);
  BufferRange g = test::upload_vector(ctx, arena, gate), u = test::upload_vector(ctx, arena, up);
  BufferRange h = arena.allocate(gate.size() * 4);
  CommandBuffer cmd(ctx);
  cmd.begin();
  record_swiglu(cmd, g, u, h, uint32_t(gate.size()));
  cmd.submit_and_wait();
  return test::download_vector<float>(ctx, h);
}

// Gate and up in one binding: up starts 2 bytes after a word boundary for the 16-bit and
// block formats (their rows are only 2-byte aligned in GGUF files too), 4 for f32.
struct FusedWeights {
  std::vector<uint8_t> bytes;
  uint32_t gate_offset = 0, up_offset = 0;
};

// Up right after gate plus the smallest gap the kernels allow (2 or 4 bytes: misaligned for
// the per-invocation flavour), or at the next 16-byte boundary (`aligned`).
FusedWeights pack_gate_up(const test::HostMatrix& gate, const test::HostMatrix& up, bool aligned) {
  FusedWeights w;
  w.up_offset = aligned ? uint32_t(gate.bytes.size() + 15) / 16 * 16
                        : uint32_t(gate.bytes.size()) + (gate.dtype == DType::F32 ? 4u : 2u);
  w.bytes.resize(w.up_offset + up.bytes.size(), 0);
  std::memcpy(w.bytes.data(), gate.bytes.data(), gate.bytes.size());
  std::memcpy(w.bytes.data() + w.up_offset, up.bytes.data(), up.bytes.size());
  return w;
}

std::vector<float> run_swiglu_fused(Context& ctx, const test::HostMatrix& gate, const test::HostMatrix& up,
                                    const std::vector<float>& x, uint32_t tokens, bool aligned, Reduce reduce) {
  const FusedWeights w = pack_gate_up(gate, up, aligned);
  Arena arena(ctx, "swiglu-fused-test", MemoryUse::Device, 64 << 20);
  BufferRange wb = test::upload_vector(ctx, arena, test::to_words(w.bytes));
  BufferRange xb = test::upload_vector(ctx, arena, x);
  BufferRange h = arena.allocate(uint64_t(tokens) * gate.rows * 4);
  CommandBuffer cmd(ctx);
  cmd.begin();
  record_swiglu_fused(cmd, {gate.dtype, tokens, uint32_t(gate.cols), uint32_t(gate.rows), w.gate_offset, w.up_offset},
                      wb, xb, h, reduce);
  cmd.submit_and_wait();
  return test::download_vector<float>(ctx, h);
}

void check_fused(Context& ctx, DType dtype, uint32_t rows, uint32_t cols, uint32_t tokens, uint32_t seed) {
  CAPTURE(dtype_name(dtype));
  CAPTURE(rows);
  CAPTURE(cols);
  CAPTURE(tokens);
  std::mt19937 rng(seed);
  const float scale = 2.0f / std::sqrt(float(cols));
  const test::HostMatrix gate = test::random_matrix(dtype, rows, cols, scale, rng);
  const test::HostMatrix up = test::random_matrix(dtype, rows, cols, scale, rng);
  const std::vector<float> x = test::random_vector(size_t(tokens) * cols, 1.0f, rng);
  std::vector<float> expected;
  for (uint32_t t = 0; t < tokens; ++t) {
    const std::vector<float> h = test::swiglu_mlp_hidden(gate, up, &x[size_t(t) * cols]);
    expected.insert(expected.end(), h.begin(), h.end());
  }
  test::check_close(run_swiglu_fused(ctx, gate, up, x, tokens, false, Reduce::Auto), expected, "hidden");
  // Whole rows per invocation where the rows fit its reads (Auto picks it on CPU devices).
  if (rows_per_invocation_fit(dtype, cols, 0, 0)) {
    test::check_close(run_swiglu_fused(ctx, gate, up, x, tokens, true, Reduce::PerInvocation), expected, "hidden (rows)");
  }
}

}  // namespace

TEST_CASE_FIXTURE(test::GpuTest, "swiglu activation: silu(gate) * up elementwise") {
  for (size_t n : {size_t{1}, size_t{63}, size_t{5 * 1408 + 3}}) {
    CAPTURE(n);
    std::mt19937 rng{uint32_t(n)};
    std::vector<float> gate = test::random_vector(n, 8.0f, rng);
    const std::vector<float> up = test::random_vector(n, 3.0f, rng);
    // Edges: zero, large of both signs (exp overflow gives -0 / the input itself).
    const float edges[] = {0.0f, -0.0f, 30.0f, -30.0f, 100.0f, -100.0f, 1e-8f};
    for (size_t i = 0; i < n && i < std::size(edges); ++i) gate[i] = edges[i];
    const std::vector<float> got = run_swiglu(ctx, gate, up);
    for (size_t i = 0; i < n; ++i) {
      const double expected = double(gate[i]) / (1.0 + std::exp(-double(gate[i]))) * double(up[i]);
      // Vulkan allows exp() an error of 3 + 2|x| ulp; add a few ulp for the division and product.
      const double ulps = 8.0 + 2.0 * std::fabs(double(gate[i]));
      CHECK(std::fabs(got[i] - expected) <= ulps * 1.2e-7 * std::fabs(expected) + 1e-37);
    }
  }
}

TEST_CASE_FIXTURE(test::GpuTest, "swiglu_fused matches the CPU for every format and odd sizes") {
  for (DType dtype : test::all_weight_formats()) {
    check_fused(ctx, dtype, 1, 32, 1, 1);
    check_fused(ctx, dtype, 64, 96, 3, 2);
    check_fused(ctx, dtype, 5, 64, 2, 3);  // rows not a multiple of the 4 rows per group
    check_fused(ctx, dtype, 130, 256, 1, 4);
  }
  for (DType dtype : {DType::F32, DType::F16, DType::BF16}) {  // rows of any width
    check_fused(ctx, dtype, 7, 33, 2, 5);
    check_fused(ctx, dtype, 3, 1, 1, 6);
    check_fused(ctx, dtype, 9, 48, 2, 7);
  }
}

TEST_CASE_FIXTURE(test::GpuTest, "swiglu_fused at the Megrez2 shared-expert size (5632 x 2048), every format") {
  for (DType dtype : test::all_weight_formats()) check_fused(ctx, dtype, 5632, 2048, 1, 8);
}

TEST_CASE_FIXTURE(test::GpuTest, "swiglu launchers reject bad arguments") {
  Arena arena(ctx, "swiglu-errors", MemoryUse::Device, 1 << 20);
  BufferRange small = arena.allocate(64), big = arena.allocate(64 << 10);
  CommandBuffer cmd(ctx);
  cmd.begin();
  CHECK_THROWS_WITH_AS(record_swiglu(cmd, big, big, small, 100), doctest::Contains("hidden binding"), Error);
  CHECK_THROWS_WITH_AS(record_swiglu_fused(cmd, {DType::Q8_0, 1, 48, 4, 0, 4096}, big, big, big),
                       doctest::Contains("multiple of 32"), Error);
  CHECK_THROWS_WITH_AS(record_swiglu_fused(cmd, {DType::F32, 1, 64, 64, 0, 16384}, small, big, big),
                       doctest::Contains("weights binding"), Error);
  cmd.submit_and_wait();
}
