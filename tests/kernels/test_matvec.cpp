// matvec (decode) vs the fp64 reference, every weight format and reduction flavour, over odd
// shapes and the real Megrez2 sizes; the row-offset / output-offset / accumulate options; a
// matrix split by rows; and the launcher's argument checks.
//
// Tolerance, the same for every format: the kernel decodes weights exactly (equal to
// dequantize_row bit for bit, test_embed checks that), so the only error left is fp32
// accumulation. Per output: |y - y_ref| <= 1e-6 * sqrt(cols) * sum_c |W[r,c] x[c]|, where
// y_ref is the fp64 product of the decoded weights. A single wrong weight at 2048 columns
// is ~5e-4 of that sum, ten times the tolerance.
#include <doctest/doctest.h>

#include "common/gpu_fixture.h"
#include "kernels/linear_test_util.h"

using namespace megrez;

namespace {

constexpr double kTolerance = 1e-6;

struct MatvecRun {
  std::vector<float> y;
  std::vector<test::RefDot> ref;
};

// Uploads W and x once, runs every flavour, checks each against the reference.
void check_matvec(Context& ctx, DType dtype, uint32_t rows, uint32_t cols, uint32_t seed) {
  CAPTURE(dtype_name(dtype));
  CAPTURE(rows);
  CAPTURE(cols);
  const test::EncodedMatrix m = test::random_matrix(dtype, rows, cols, seed);
  const std::vector<float> x = test::random_vector(cols, seed + 1);
  const std::vector<test::RefDot> ref = test::ref_matvec(m.decode(), rows, cols, x);

  Arena arena(ctx, "matvec-test", MemoryUse::Device, 128 << 20);
  const BufferRange w = test::upload_vector(ctx, arena, m.words());
  const BufferRange xb = test::upload_vector(ctx, arena, x);
  const BufferRange y = arena.allocate(size_t{rows} * 4);
  const bool rows_fit = rows_per_invocation_fit(dtype, cols, w.offset, xb.offset);
  for (Reduce reduce : test::matvec_flavours(ctx, rows_fit)) {
    CAPTURE(test::flavour_name(reduce));
    upload(ctx, y, std::span<const float>(std::vector<float>(rows, 1e30f)));  // must be overwritten
    CommandBuffer cmd(ctx);
    cmd.begin();
    record_matvec(cmd, dtype, w, xb, y, abi::MatvecPush{rows, cols, 0, 0, 0, 0}, reduce);
    cmd.submit_and_wait();
    const std::string mismatch = test::compare_dots(test::download_vector<float>(ctx, y), ref, 0, cols, kTolerance);
    CHECK_MESSAGE(mismatch.empty(), mismatch);
  }
}

}  // namespace

TEST_CASE_FIXTURE(test::GpuTest, "matvec matches the fp64 reference on odd shapes, every format and flavour") {
  for (DType dtype : test::kAllFormats) {
    // Quantized rows are whole blocks; float rows may be any width (tails of 1..7 columns).
    // 64, 256 and 640 fit the per-invocation flavour (whole 16-byte units; whole 128-column
    // steps), 256 in its 16-byte quantized form (whole 256-column steps), 640 in 8-byte units.
    const std::vector<uint32_t> widths = dtype_is_quantized(dtype) ? std::vector<uint32_t>{32, 96, 256, 640, 1056}
                                                                   : std::vector<uint32_t>{1, 35, 64, 1001};
    for (uint32_t rows : {1u, 7u, 33u, 1001u}) {
      for (uint32_t cols : widths) check_matvec(ctx, dtype, rows, cols, rows * 131 + cols);
    }
  }
}

TEST_CASE_FIXTURE(test::GpuTest, "matvec with an x too long for a uniform buffer reads it as a storage buffer") {
  // Over 16384 columns x exceeds 64 KiB (MEGREZ_ROW_INPUT_UNIFORM_BYTES), so the per-invocation
  // flavour runs its storage-buffer variants (..._rows, ..._rows_wide) instead of ..._ubo.
  for (DType dtype : test::kAllFormats) {
    const std::vector<uint32_t> widths =
        dtype_is_quantized(dtype) ? std::vector<uint32_t>{16512, 16640} : std::vector<uint32_t>{16392};
    for (uint32_t cols : widths) {
      const std::string kernel = matvec_kernel(ctx.caps(), dtype, abi::MatvecPush{7, cols, 0, 0, 0, 0}, 0, 0);
      CAPTURE(kernel);
      if (ctx.caps().sum_rows_per_invocation()) CHECK((kernel.ends_with("_rows") || kernel.ends_with("_rows_wide")));
      check_matvec(ctx, dtype, 7, cols, cols);
    }
  }
}

TEST_CASE_FIXTURE(test::GpuTest, "matvec matches the fp64 reference at the Megrez2 sizes") {
  // [out, in]: expert gate/up, expert down, shared expert gate/up, its down, dense layer 0.
  const uint32_t shapes[][2] = {{1408, 2048}, {2048, 1408}, {5632, 2048}, {2048, 5632}, {10944, 2048}};
  for (DType dtype : test::kAllFormats) {
    for (const auto& s : shapes) check_matvec(ctx, dtype, s[0], s[1], s[0] + s[1]);
  }
}

namespace {

// weight_row `first`, x_offset, y_offset and accumulate over `count` of `rows` rows.
void check_offsets(Context& ctx, DType dtype, uint32_t cols, uint32_t x_offset) {
  CAPTURE(dtype_name(dtype));
  CAPTURE(cols);
  CAPTURE(x_offset);
  const uint32_t rows = 33, first = 5, count = 20, y_offset = 7, y_size = 40;
  const test::EncodedMatrix m = test::random_matrix(dtype, rows, cols, 77);
  const std::vector<float> x = test::random_vector(x_offset + cols, 78);
  const std::vector<float> y_initial = test::random_vector(y_size, 79);
  const std::vector<float> decoded = m.decode();
  const std::vector<float> rows_used(decoded.begin() + size_t{first} * cols, decoded.begin() + size_t{first + count} * cols);
  const std::vector<test::RefDot> ref =
      test::ref_matvec(rows_used, count, cols, std::vector<float>(x.begin() + x_offset, x.end()));

  Arena arena(ctx, "matvec-test", MemoryUse::Device, 1 << 20);
  const BufferRange w = test::upload_vector(ctx, arena, m.words());
  const BufferRange xb = test::upload_vector(ctx, arena, x);
  const bool rows_fit =
      rows_per_invocation_fit(dtype, cols, w.offset + uint64_t{first} * m.row_size(), xb.offset, x_offset);
  for (Reduce reduce : test::matvec_flavours(ctx, rows_fit)) {
    CAPTURE(test::flavour_name(reduce));
    const BufferRange y = test::upload_vector(ctx, arena, y_initial);
    CommandBuffer cmd(ctx);
    cmd.begin();
    record_matvec(cmd, dtype, w, xb, y, abi::MatvecPush{count, cols, first, x_offset, y_offset, 1}, reduce);
    cmd.submit_and_wait();
    const std::vector<float> got = test::download_vector<float>(ctx, y);
    const std::string mismatch = test::compare_dots(got, ref, y_offset, cols, kTolerance, &y_initial);
    CHECK_MESSAGE(mismatch.empty(), mismatch);
    for (uint32_t i = 0; i < y_size; ++i) {
      if (i < y_offset || i >= y_offset + count) CHECK(got[i] == y_initial[i]);  // untouched, bit for bit
    }
  }
}

}  // namespace

TEST_CASE_FIXTURE(test::GpuTest, "matvec honours weight_row, x_offset, y_offset and accumulate") {
  for (DType dtype : {DType::F16, DType::BF16, DType::Q4_0, DType::Q8_0, DType::F32}) {
    // 35 f16/bf16 columns put every other row at a 2 mod 4 byte offset.
    check_offsets(ctx, dtype, dtype_is_quantized(dtype) ? 96 : 35, 3);
    // Rows and x that fit the per-invocation flavour's 8/16-byte reads, so it runs too.
    check_offsets(ctx, dtype, dtype_is_quantized(dtype) ? 128 : 64, 4);
  }
}

TEST_CASE_FIXTURE(test::GpuTest, "matvec over a matrix split by rows places each part's rows") {
  const uint32_t rows = 27, cols = 64;
  const test::EncodedMatrix m = test::random_matrix(DType::Q8_0, rows, cols, 5);
  const std::vector<float> x = test::random_vector(cols, 6);
  const std::vector<test::RefDot> ref = test::ref_matvec(m.decode(), rows, cols, x);
  Arena arena(ctx, "matvec-test", MemoryUse::Device, 1 << 20);
  // Parts of 10, 10 and 7 rows in separate ranges, as Arena::allocate_split makes them for
  // tensors over maxStorageBufferRange.
  SplitBuffer split;
  split.size = m.bytes.size();
  split.part_bytes = 10 * m.row_size();
  for (size_t done = 0; done < split.size; done += split.part_bytes) {
    const size_t n = std::min<size_t>(split.part_bytes, split.size - done);
    split.parts.push_back(arena.allocate(n));
    upload(ctx, split.parts.back(), std::span<const uint8_t>(m.bytes.data() + done, n));
  }
  REQUIRE(split.parts.size() == 3);
  const BufferRange xb = test::upload_vector(ctx, arena, x);
  const BufferRange y = test::upload_vector(ctx, arena, std::vector<float>(rows, 0.0f));
  CommandBuffer cmd(ctx);
  cmd.begin();
  record_matvec(cmd, DType::Q8_0, split, rows, cols, xb, y, false);
  cmd.submit_and_wait();
  const std::string mismatch = test::compare_dots(test::download_vector<float>(ctx, y), ref, 0, cols, kTolerance);
  CHECK_MESSAGE(mismatch.empty(), mismatch);
}

TEST_CASE("matvec kernel choice: quantized rows of whole 8-block steps on 16-byte boundaries read 16-byte units") {
  DeviceCaps caps;
  caps.cpu_device = true;  // the per-invocation flavour
  using abi::MatvecPush;
  CHECK(matvec_kernel(caps, DType::Q4_0, MatvecPush{1408, 2048, 0, 0, 0, 0}, 0, 0) == "matvec_q4_0_rows_wide");
  CHECK(matvec_kernel(caps, DType::Q8_0, MatvecPush{5632, 2048, 0, 0, 0, 0}, 256, 64) == "matvec_q8_0_rows_wide");
  CHECK(matvec_kernel(caps, DType::Q8_0, MatvecPush{2048, 1408, 0, 0, 0, 0}, 0, 0) == "matvec_q8_0_rows");  // 5.5 steps
  CHECK(matvec_kernel(caps, DType::Q4_0, MatvecPush{8, 256, 0, 0, 0, 0}, 8, 0) == "matvec_q4_0_rows");       // 8-byte aligned
  CHECK(matvec_kernel(caps, DType::Q4_0, MatvecPush{8, 256, 3, 0, 0, 0}, 0, 0) == "matvec_q4_0_rows_wide");  // 3 rows of 144 bytes in
  CHECK(matvec_kernel(caps, DType::F16, MatvecPush{8, 2048, 0, 0, 0, 0}, 0, 0) == "matvec_f16_rows");        // float rows: 16-byte units already
  CHECK(matvec_kernel(caps, DType::Q4_0, MatvecPush{8, 96, 0, 0, 0, 0}, 0, 0) != "matvec_q4_0_rows_wide");   // no per-invocation flavour at all
  // x as a uniform buffer where the columns read start on the device's uniform alignment and
  // fit its range (and 64 KiB).
  caps.max_uniform_range = 65536;
  caps.uniform_offset_alignment = 64;
  CHECK(matvec_kernel(caps, DType::Q4_0, MatvecPush{1408, 2048, 0, 0, 0, 0}, 0, 0) == "matvec_q4_0_rows_wide_ubo");
  CHECK(matvec_kernel(caps, DType::Q8_0, MatvecPush{2048, 1408, 0, 0, 0, 0}, 0, 0) == "matvec_q8_0_rows_ubo");
  CHECK(matvec_kernel(caps, DType::F16, MatvecPush{8, 2048, 0, 16, 0, 0}, 0, 0) == "matvec_f16_rows_ubo");   // byte 64
  CHECK(matvec_kernel(caps, DType::F16, MatvecPush{8, 2048, 0, 4, 0, 0}, 0, 0) == "matvec_f16_rows");        // byte 16
  CHECK(matvec_kernel(caps, DType::F16, MatvecPush{8, 2048, 0, 0, 0, 0}, 0, 32) == "matvec_f16_rows");       // binding at 32
  CHECK(matvec_kernel(caps, DType::F16, MatvecPush{8, 16384, 0, 0, 0, 0}, 0, 0) == "matvec_f16_rows_ubo");   // 64 KiB
  CHECK(matvec_kernel(caps, DType::F16, MatvecPush{8, 16392, 0, 0, 0, 0}, 0, 0) == "matvec_f16_rows");       // past it
  caps.max_uniform_range = 16384;
  CHECK(matvec_kernel(caps, DType::F16, MatvecPush{8, 4096, 0, 0, 0, 0}, 0, 0) == "matvec_f16_rows_ubo");
  CHECK(matvec_kernel(caps, DType::F16, MatvecPush{8, 4104, 0, 0, 0, 0}, 0, 0) == "matvec_f16_rows");
  caps.cpu_device = false;  // only the per-invocation variants have uniform twins
  CHECK(matvec_kernel(caps, DType::F16, MatvecPush{8, 2048, 0, 0, 0, 0}, 0, 0) == "matvec_f16_shmem");
  // 4 rows per invocation where a step holds many words per row (f32, q8_0 in 16-byte units).
  CHECK(matvec_rows_per_invocation(DType::F32) == 4);
  CHECK(matvec_rows_per_invocation(DType::Q8_0, true) == 4);
  CHECK(matvec_rows_per_invocation(DType::Q8_0) == 8);
  CHECK(matvec_rows_per_invocation(DType::Q4_0, true) == 8);
  CHECK(matvec_rows_per_invocation(DType::BF16) == 8);
}

TEST_CASE_FIXTURE(test::GpuTest, "matvec launcher rejects bad shapes and ranges before recording") {
  Arena arena(ctx, "matvec-test", MemoryUse::Device, 1 << 20);
  const BufferRange w = arena.allocate(18 * 4 * 8);  // 8 rows of 4 q4_0 blocks
  const BufferRange x = arena.allocate(128 * 4);
  const BufferRange y = arena.allocate(8 * 4);
  CommandBuffer cmd(ctx);
  cmd.begin();
  using abi::MatvecPush;
  CHECK_THROWS_WITH_AS(record_matvec(cmd, DType::Q4_0, w, x, y, MatvecPush{8, 100, 0, 0, 0, 0}),
                       doctest::Contains("multiple of 32"), Error);
  CHECK_THROWS_WITH_AS(record_matvec(cmd, DType::Q4_0, w, x, y, MatvecPush{9, 128, 0, 0, 0, 0}),
                       doctest::Contains("weight binding holds 576 bytes, needs 648"), Error);
  CHECK_THROWS_WITH_AS(record_matvec(cmd, DType::Q4_0, w, x, y, MatvecPush{8, 128, 0, 1, 0, 0}),
                       doctest::Contains("x binding"), Error);
  CHECK_THROWS_WITH_AS(record_matvec(cmd, DType::Q4_0, w, x, y, MatvecPush{8, 128, 0, 0, 1, 0}),
                       doctest::Contains("y binding"), Error);
  CHECK_THROWS_WITH_AS(record_matvec(cmd, DType::F16, w.slice(0, 70), x, y, MatvecPush{1, 35, 0, 0, 0, 0}),
                       doctest::Contains("not a multiple of 4"), Error);
  CHECK_THROWS_AS(record_matvec(cmd, DType::F32, w, x, y, MatvecPush{0, 4, 0, 0, 0, 0}), Error);
  // What the per-invocation flavour can read: vec4s counted from x's binding, 16-byte float
  // rows, quantized rows of 128-column steps on 8-byte boundaries.
  CHECK(rows_per_invocation_fit(DType::F16, 64, 128, 16, 4));
  CHECK_FALSE(rows_per_invocation_fit(DType::F16, 64, 128, 8, 2));  // 16 bytes in, but not from the binding's start
  CHECK_FALSE(rows_per_invocation_fit(DType::F16, 60, 0, 0));       // 120-byte rows
  CHECK(rows_per_invocation_fit(DType::Q4_0, 128, 72, 0));
  CHECK_FALSE(rows_per_invocation_fit(DType::Q4_0, 96, 0, 0));
  CHECK_FALSE(rows_per_invocation_fit(DType::Q8_0, 128, 4, 0));
  // The per-invocation flavour reads x as vec4 and quantized rows in 128-column steps.
  CHECK_THROWS_WITH_AS(record_matvec(cmd, DType::Q4_0, w, x, y, MatvecPush{4, 128, 0, 1, 0, 0}, Reduce::PerInvocation),
                       doctest::Contains("per-invocation"), Error);
  CHECK_THROWS_WITH_AS(record_matvec(cmd, DType::Q4_0, w, x, y, MatvecPush{4, 96, 0, 0, 0, 0}, Reduce::PerInvocation),
                       doctest::Contains("per-invocation"), Error);
  if (!ctx.caps().use_subgroup_reduce()) {
    CHECK_THROWS_WITH_AS(record_matvec(cmd, DType::F32, w, x, y, MatvecPush{1, 4, 0, 0, 0, 0}, Reduce::Subgroup),
                         doctest::Contains("subgroup"), Error);
  }
  cmd.submit_and_wait();  // nothing was recorded
}
