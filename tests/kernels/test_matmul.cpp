// matmul (prefill) vs the fp64 reference: every weight format, odd shapes that leave partial
// tiles in rows, tokens and columns, the Megrez2 expert shapes at T = 1, 7, 64, and the
// stride / offset / accumulate options the engine uses to write into wider outputs, and where
// the per-invocation kernel reads x as a uniform buffer per token and where it cannot.
//
// Tolerance, the same for every format (weights decode exactly; only fp32 accumulation
// differs from the fp64 reference): |Y - Y_ref| <= 1e-6 * sqrt(cols) * sum_c |W[r,c] X[t,c]|.
#include <doctest/doctest.h>

#include "common/gpu_fixture.h"
#include "kernels/linear_test_util.h"

using namespace megrez;

namespace {

constexpr double kTolerance = 1e-6;

void check_matmul(Context& ctx, DType dtype, uint32_t rows, uint32_t cols, const std::vector<uint32_t>& token_counts,
                  uint32_t seed) {
  CAPTURE(dtype_name(dtype));
  CAPTURE(rows);
  CAPTURE(cols);
  const test::EncodedMatrix m = test::random_matrix(dtype, rows, cols, seed);
  const std::vector<float> decoded = m.decode();
  Arena arena(ctx, "matmul-test", MemoryUse::Device, 64 << 20);
  const BufferRange w = test::upload_vector(ctx, arena, m.words());
  for (uint32_t tokens : token_counts) {
    CAPTURE(tokens);
    const std::vector<float> x = test::random_vector(size_t{tokens} * cols, seed + tokens);
    const std::vector<test::RefDot> ref = test::ref_matmul(decoded, rows, cols, x, tokens);
    const BufferRange xb = test::upload_vector(ctx, arena, x);
    const bool rows_fit = rows_per_invocation_fit(dtype, cols, w.offset, xb.offset) && cols % 4 == 0;  // x_stride = cols
    for (MatmulKernel kernel : test::matmul_kernels(rows_fit)) {
      CAPTURE(int(kernel));
      const BufferRange y = test::upload_vector(ctx, arena, std::vector<float>(size_t{tokens} * rows, 1e30f));
      CommandBuffer cmd(ctx);
      cmd.begin();
      record_matmul(cmd, dtype, w, xb, y, abi::MatmulPush{rows, cols, tokens, 0, 0, cols, 0, rows, 0}, kernel);
      cmd.submit_and_wait();
      const std::string mismatch = test::compare_dots(test::download_vector<float>(ctx, y), ref, 0, cols, kTolerance);
      CHECK_MESSAGE(mismatch.empty(), mismatch);
    }
  }
}

}  // namespace

TEST_CASE_FIXTURE(test::GpuTest, "matmul matches the fp64 reference on odd shapes, every format") {
  for (DType dtype : test::kAllFormats) {
    // 256 and 64 also run the per-invocation kernel (whole 128-column steps, 16-byte units).
    const std::vector<uint32_t> widths = dtype_is_quantized(dtype) ? std::vector<uint32_t>{32, 96, 256}
                                                                   : std::vector<uint32_t>{1, 35, 64};
    for (uint32_t rows : {1u, 7u, 33u, 1001u}) {
      for (uint32_t cols : widths) check_matmul(ctx, dtype, rows, cols, {1, 5, 33}, rows * 7 + cols);
    }
  }
}

TEST_CASE_FIXTURE(test::GpuTest, "matmul matches the fp64 reference at the Megrez2 expert shapes") {
  for (DType dtype : test::kAllFormats) {
    check_matmul(ctx, dtype, 1408, 2048, {1, 7, 64}, 11);
    check_matmul(ctx, dtype, 2048, 1408, {1, 7, 64}, 12);
  }
}

namespace {

// weight_row, x_offset, x_stride, y_offset, y_stride and accumulate; `aligned` picks offsets
// the per-invocation kernel can read too (else the tiled kernel only), `long_rows` rows past
// 64 KiB of x per token (the per-invocation kernel then reads x as a storage buffer, not as a
// uniform buffer per token).
void check_strides(Context& ctx, DType dtype, bool aligned, bool long_rows = false) {
  CAPTURE(dtype_name(dtype));
  CAPTURE(aligned);
  CAPTURE(long_rows);
  const uint32_t rows = 40, tokens = 9, first = 3, count = 30, y_offset = 4, y_stride = 37;
  const uint32_t cols = long_rows ? (dtype_is_quantized(dtype) ? 16512 : 16392)
                        : dtype_is_quantized(dtype) ? (aligned ? 128 : 64)
                                                    : (aligned ? 64 : 35);
  const uint32_t x_offset = aligned ? 4 : 5, x_stride = cols + (aligned ? 4 : 2);
  const test::EncodedMatrix m = test::random_matrix(dtype, rows, cols, 21);
  const std::vector<float> decoded = m.decode();
  const std::vector<float> x = test::random_vector(x_offset + size_t{tokens} * x_stride, 22);
  const std::vector<float> y_initial = test::random_vector(size_t{tokens} * y_stride, 23);
  // Reference on the compacted operands.
  std::vector<float> x_dense;
  for (uint32_t t = 0; t < tokens; ++t) {
    x_dense.insert(x_dense.end(), x.begin() + x_offset + t * x_stride, x.begin() + x_offset + t * x_stride + cols);
  }
  const std::vector<float> w_used(decoded.begin() + size_t{first} * cols, decoded.begin() + size_t{first + count} * cols);
  const std::vector<test::RefDot> ref = test::ref_matmul(w_used, count, cols, x_dense, tokens);

  Arena arena(ctx, "matmul-test", MemoryUse::Device, 4 << 20);
  const BufferRange w = test::upload_vector(ctx, arena, m.words());
  const BufferRange xb = test::upload_vector(ctx, arena, x);
  const bool rows_fit =
      x_stride % 4 == 0 && rows_per_invocation_fit(dtype, cols, w.offset + first * m.row_size(), xb.offset, x_offset);
  CHECK(rows_fit == aligned);
  const abi::MatmulPush push{count, cols, tokens, first, x_offset, x_stride, y_offset, y_stride, 1};
  const DeviceCaps& caps = ctx.caps();
  if (rows_fit && caps.uniform_offset_alignment <= 16 && caps.max_uniform_range >= 65536) {  // lavapipe's
    const std::string rows_kernel = matmul_kernel(caps, dtype, push, w.offset, xb.offset, MatmulKernel::Rows);
    CHECK(is_uniform_input_kernel(rows_kernel) == !long_rows);
    // Quantized rows share x's loads through subgroup shuffles where the device has them.
    CHECK(rows_kernel.ends_with("_shuffle") == (dtype_is_quantized(dtype) && caps.subgroup_shuffle));
  }
  for (MatmulKernel kernel : test::matmul_kernels(rows_fit)) {
    CAPTURE(int(kernel));
    const BufferRange y = test::upload_vector(ctx, arena, y_initial);
    CommandBuffer cmd(ctx);
    cmd.begin();
    record_matmul(cmd, dtype, w, xb, y, push, kernel);
    cmd.submit_and_wait();
    const std::vector<float> got = test::download_vector<float>(ctx, y);
    for (uint32_t t = 0; t < tokens; ++t) {
      CAPTURE(t);
      const std::vector<test::RefDot> ref_t(ref.begin() + t * count, ref.begin() + (t + 1) * count);
      const std::string mismatch =
          test::compare_dots(got, ref_t, size_t{t} * y_stride + y_offset, cols, kTolerance, &y_initial);
      CHECK_MESSAGE(mismatch.empty(), mismatch);
      for (uint32_t i = 0; i < y_stride; ++i) {
        const size_t o = size_t{t} * y_stride + i;
        if (i < y_offset || i >= y_offset + count) CHECK(got[o] == y_initial[o]);
      }
    }
  }
}

}  // namespace

TEST_CASE_FIXTURE(test::GpuTest, "matmul honours weight_row, strides, y_offset and accumulate") {
  for (DType dtype : {DType::F16, DType::Q4_0}) {
    check_strides(ctx, dtype, false);
    check_strides(ctx, dtype, true);
    check_strides(ctx, dtype, true, true);
  }
}

TEST_CASE("matmul kernel choice: x as a uniform buffer per token where each token's row fits one") {
  DeviceCaps caps;
  caps.cpu_device = true;  // the per-invocation flavour
  caps.max_uniform_range = 65536;
  caps.uniform_offset_alignment = 16;
  using abi::MatmulPush;
  auto kernel = [&](DType dtype, MatmulPush p, uint64_t x_offset = 0) {
    return matmul_kernel(caps, dtype, p, 0, x_offset);
  };
  // Megrez2's widths: 1408 to 10944 columns (43 KiB a token), any stride on the alignment.
  CHECK(kernel(DType::Q4_0, MatmulPush{1408, 2048, 64, 0, 0, 2048, 0, 1408, 0}) == "matmul_q4_0_rows_ubo");
  CHECK(kernel(DType::Q8_0, MatmulPush{2048, 1408, 64, 0, 0, 1408, 0, 2048, 0}) == "matmul_q8_0_rows_ubo");
  CHECK(kernel(DType::Q4_0, MatmulPush{2048, 5632, 64, 0, 0, 5632, 0, 2048, 0}) == "matmul_q4_0_rows_ubo");
  CHECK(kernel(DType::BF16, MatmulPush{2048, 10944, 9, 0, 0, 10944, 0, 2048, 0}) == "matmul_bf16_rows_ubo");
  CHECK(kernel(DType::F32, MatmulPush{8, 1408, 9, 0, 4, 2052, 0, 8, 0}, 16) == "matmul_f32_rows_ubo");
  CHECK(kernel(DType::F16, MatmulPush{8, 16384, 9, 0, 0, 16384, 0, 8, 0}) == "matmul_f16_rows_ubo");  // 64 KiB
  CHECK(kernel(DType::F16, MatmulPush{8, 16392, 9, 0, 0, 16392, 0, 8, 0}) == "matmul_f16_rows");      // past it
  // Every token's row must start on the uniform alignment, not only the first one's.
  caps.uniform_offset_alignment = 256;
  CHECK(kernel(DType::F16, MatmulPush{8, 128, 2, 0, 0, 128, 0, 8, 0}) == "matmul_f16_rows_ubo");  // 512 bytes on
  CHECK(kernel(DType::F16, MatmulPush{8, 128, 2, 0, 0, 132, 0, 8, 0}) == "matmul_f16_rows");      // 528 bytes on
  CHECK(kernel(DType::F16, MatmulPush{8, 128, 1, 0, 0, 132, 0, 8, 0}) == "matmul_f16_rows_ubo");  // one token
  CHECK(kernel(DType::F16, MatmulPush{8, 128, 1, 0, 4, 128, 0, 8, 0}) == "matmul_f16_rows");      // byte 16
  CHECK(kernel(DType::F16, MatmulPush{8, 128, 1, 0, 64, 128, 0, 8, 0}) == "matmul_f16_rows_ubo");  // byte 256
  caps.max_uniform_range = 16384;  // the minimum profile
  CHECK(kernel(DType::F16, MatmulPush{8, 4096, 9, 0, 0, 4096, 0, 8, 0}) == "matmul_f16_rows_ubo");
  CHECK(kernel(DType::F16, MatmulPush{8, 4104, 9, 0, 0, 4160, 0, 8, 0}) == "matmul_f16_rows");
  CHECK(matmul_kernel(caps, DType::F16, MatmulPush{8, 512, 8, 0, 0, 512, 0, 8, 0}, 0, 0, MatmulKernel::Tiled) ==
        "matmul_f16");
  caps.cpu_device = false;  // GPUs: the tiles
  CHECK(kernel(DType::F16, MatmulPush{8, 512, 8, 0, 0, 512, 0, 8, 0}) == "matmul_f16");
}

TEST_CASE("matmul kernel choice: quantized rows share x through subgroup shuffles on whole subgroups") {
  DeviceCaps caps;
  caps.cpu_device = true;
  caps.max_uniform_range = 65536;
  caps.uniform_offset_alignment = 16;
  caps.subgroup_shuffle = true;
  caps.subgroup_size = 8;
  caps.max_workgroup_invocations = 256;
  caps.max_workgroup_size[0] = 256;
  using abi::MatmulPush;
  const MatmulPush dense{1408, 2048, 64, 0, 0, 2048, 0, 1408, 0};
  CHECK(matmul_kernel(caps, DType::Q4_0, dense, 0, 0) == "matmul_q4_0_rows_ubo_shuffle");
  CHECK(matmul_kernel(caps, DType::Q8_0, dense, 0, 0) == "matmul_q8_0_rows_ubo_shuffle");
  CHECK(matmul_kernel(caps, DType::F16, dense, 0, 0) == "matmul_f16_rows_ubo");  // float rows: no shuffle twin
  CHECK(matmul_kernel(caps, DType::Q8_0, MatmulPush{8, 16512, 9, 0, 0, 16512, 0, 8, 0}, 0, 0) ==
        "matmul_q8_0_rows_shuffle");  // a token's row past 64 KiB: storage buffer, still shared
  CHECK(is_rows_kernel("matmul_q8_0_rows_shuffle"));
  CHECK(is_uniform_input_kernel("matmul_q8_0_rows_ubo_shuffle"));
  CHECK(!is_uniform_input_kernel("matmul_q8_0_rows_shuffle"));
  CHECK(!is_wide_kernel("matmul_q8_0_rows_ubo_shuffle"));
  CHECK(rows_input_shuffle_fit(caps, DType::Q4_0));
  caps.subgroup_size = 16;  // LP_NATIVE_VECTOR_WIDTH=512: lanes 8-15 load what lanes 0-7 do
  CHECK(rows_input_shuffle_fit(caps, DType::Q4_0));
  caps.subgroup_size = 4;
  CHECK(rows_input_shuffle_fit(caps, DType::Q4_0));
  caps.subgroup_size = 2;  // the shader hands round 8 vec4s from at most 2 loads per lane
  CHECK(!rows_input_shuffle_fit(caps, DType::Q4_0));
  caps.subgroup_size = 128;  // a workgroup would not be one subgroup (at most 64 invocations)
  CHECK(!rows_input_shuffle_fit(caps, DType::Q4_0));
  caps.subgroup_size = 8;
  caps.subgroup_shuffle = false;  // the minimum profile
  CHECK(matmul_kernel(caps, DType::Q4_0, dense, 0, 0) == "matmul_q4_0_rows_ubo");
}

TEST_CASE_FIXTURE(test::GpuTest, "matmul tile shape fits the device and the launcher checks its ranges") {
  for (uint32_t tokens : {1u, 7u, 9u, 33u, 64u, 1000u}) {
    CAPTURE(tokens);
    const MatmulShape s = matmul_shape(ctx.caps(), tokens);
    CHECK(s.workgroup() <= ctx.caps().max_workgroup_invocations);
    CHECK(s.shared_bytes() <= ctx.caps().max_shared_memory);
    CHECK(s.tile_rows % s.thread_rows == 0);
    CHECK(s.tile_tokens % s.thread_tokens == 0);
  }
  // A device with 16 KiB and 128 invocations (the minimum profile) gets the 64 x 32 tile for
  // long prompts and 64 x 8 for one token.
  DeviceCaps small = ctx.caps();
  small.max_shared_memory = 16384;
  small.max_workgroup_invocations = 128;
  CHECK(matmul_shape(small, 64).tile_rows == 64);
  CHECK(matmul_shape(small, 64).tile_tokens == 32);
  CHECK(matmul_shape(small, 1).tile_tokens == 8);
  small.max_shared_memory = 4000;
  CHECK_THROWS_AS(matmul_shape(small, 1), Error);
  Arena arena(ctx, "matmul-test", MemoryUse::Device, 1 << 20);
  const BufferRange w = arena.allocate(64 * 4 * 4), x = arena.allocate(64 * 4 * 2), y = arena.allocate(4 * 2 * 4);
  CommandBuffer cmd(ctx);
  cmd.begin();
  CHECK_THROWS_WITH_AS(record_matmul(cmd, DType::F32, w, x, y, abi::MatmulPush{4, 64, 3, 0, 0, 64, 0, 4, 0}),
                       doctest::Contains("x binding"), Error);
  CHECK_THROWS_WITH_AS(record_matmul(cmd, DType::F32, w, x, y, abi::MatmulPush{4, 64, 2, 0, 0, 32, 0, 4, 0}),
                       doctest::Contains("x_stride"), Error);
  CHECK_THROWS_WITH_AS(record_matmul(cmd, DType::F32, w, x, y, abi::MatmulPush{4, 64, 2, 0, 0, 64, 1, 4, 0}),
                       doctest::Contains("y_stride"), Error);
  CHECK_THROWS_WITH_AS(record_matmul(cmd, DType::F32, w, x, y, abi::MatmulPush{5, 64, 1, 0, 0, 64, 0, 5, 0}),
                       doctest::Contains("weight binding"), Error);
  // The per-invocation kernel reads x as vec4: an x_stride of 66 floats breaks that.
  CHECK_THROWS_WITH_AS(record_matmul(cmd, DType::F32, w, x, y, abi::MatmulPush{4, 64, 1, 0, 0, 66, 0, 4, 0},
                                     MatmulKernel::Rows),
                       doctest::Contains("per-invocation"), Error);
  cmd.submit_and_wait();  // nothing was recorded
}
