// common/weights.glsl entry by entry (through the weights_probe test kernel): weight_block,
// weight_quarter and weight_at must equal dequantize_row bit for bit in every format, at
// rows that start 2 bytes into a word (odd f16 widths, odd q4_0/q8_0 block counts);
// weight_block_dot must equal the fp64 dot of the decoded block within fp32 rounding.
#include <doctest/doctest.h>

#include <cstring>

#include "common/gpu_fixture.h"
#include "kernels/linear_test_util.h"
#include "shaders/abi/weights_probe.h"

using namespace megrez;

namespace {

std::vector<float> probe(Context& ctx, Arena& arena, const test::EncodedMatrix& m, const BufferRange& w,
                         const BufferRange& x, uint32_t mode) {
  const size_t outputs = mode == 3 ? size_t{m.rows} * (m.cols / 32) : size_t{m.rows} * m.cols;
  const BufferRange out = test::upload_vector(ctx, arena, std::vector<float>(std::max<size_t>(outputs, 1), -1.0f));
  const uint32_t workgroup = std::min(32u, ctx.caps().max_workgroup_invocations);
  const Pipeline& p = ctx.pipeline(std::string("weights_probe_") + dtype_name(m.dtype),
                                   Specialization{{workgroup, 1, 1}, {ctx.caps().subgroup_size}});
  CommandBuffer cmd(ctx);
  cmd.begin();
  dispatch(cmd, p, {w, x, out}, abi::WeightsProbePush{m.rows, m.cols, mode}, {m.rows});
  cmd.submit_and_wait();
  std::vector<float> got = test::download_vector<float>(ctx, out);
  got.resize(outputs);
  return got;
}

}  // namespace

TEST_CASE_FIXTURE(test::GpuTest, "weights.glsl entry points decode exactly like dequantize_row") {
  for (DType dtype : test::kAllFormats) {
    const std::vector<uint32_t> widths = dtype_is_quantized(dtype) ? std::vector<uint32_t>{32, 96, 160}
                                                                   : std::vector<uint32_t>{1, 7, 33, 35, 64, 100};
    for (uint32_t cols : widths) {
      const uint32_t rows = 7;
      CAPTURE(dtype_name(dtype));
      CAPTURE(cols);
      const test::EncodedMatrix m = test::random_matrix(dtype, rows, cols, cols * 3 + 1);
      const std::vector<float> decoded = m.decode();
      const std::vector<float> x = test::random_vector(cols, cols);
      Arena arena(ctx, "weights-test", MemoryUse::Device, 1 << 20);
      const BufferRange w = test::upload_vector(ctx, arena, m.words());
      const BufferRange xb = test::upload_vector(ctx, arena, x);
      for (uint32_t mode : {0u, 1u, 2u}) {
        CAPTURE(mode);
        const std::vector<float> got = probe(ctx, arena, m, w, xb, mode);
        CHECK(std::memcmp(got.data(), decoded.data(), decoded.size() * 4) == 0);
      }
      if (cols >= 32) {
        const std::vector<float> dots = probe(ctx, arena, m, w, xb, 3);
        const uint32_t blocks = cols / 32;
        for (uint32_t r = 0; r < rows; ++r) {
          for (uint32_t b = 0; b < blocks; ++b) {
            double expected = 0, magnitude = 0;
            for (uint32_t j = 0; j < 32; ++j) {
              const double p = double(decoded[size_t{r} * cols + 32 * b + j]) * double(x[32 * b + j]);
              expected += p;
              magnitude += std::fabs(p);
            }
            CHECK(std::fabs(dots[size_t{r} * blocks + b] - expected) <= 1e-6 * std::sqrt(32.0) * magnitude + 1e-30);
          }
        }
      }
    }
  }
}
