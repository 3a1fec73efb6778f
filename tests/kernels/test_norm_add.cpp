// rmsnorm, the fused add_rmsnorm and moe_combine_rmsnorm, and the plain residual add vs C++
// references.
//
// Tolerances: the residual add is one fp32 addition per element, so the GPU must match the
// CPU's float addition bit for bit. RMSNorm's only rounding is the fp32 sum of squares
// (positive terms: relative error <= ~log2(dim) ulp) and a few multiplications, so every
// output must be within 4e-6 relative (plus 1e-30 absolute) of the fp64 reference.
#include <doctest/doctest.h>

#include "common/gpu_fixture.h"
#include "kernels/linear_test_util.h"
#include "runtime/ops/moe.h"

using namespace megrez;

namespace {

constexpr double kNormTolerance = 4e-6;
constexpr float kEps = 1e-6f;

std::string compare_norm(const std::vector<float>& got, const std::vector<double>& ref) {
  size_t bad = 0;
  std::string first;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (!(std::fabs(got[i] - ref[i]) <= kNormTolerance * std::fabs(ref[i]) + 1e-30)) {
      if (bad++ == 0) first = "element " + std::to_string(i) + ": got " + std::to_string(got[i]) + ", expected " +
                              std::to_string(ref[i]);
    }
  }
  return bad ? first + " and " + std::to_string(bad - 1) + " more" : "";
}

}  // namespace

TEST_CASE_FIXTURE(test::GpuTest, "rmsnorm and add_rmsnorm match the reference, both flavours") {
  for (uint32_t dim : {1u, 35u, 2048u, 5001u}) {
    for (uint32_t rows : {1u, 3u, 7u}) {
      CAPTURE(dim);
      CAPTURE(rows);
      const size_t n = size_t{rows} * dim;
      const std::vector<float> x = test::random_vector(n, dim + rows, -3.0f, 3.0f);
      const std::vector<float> addend = test::random_vector(n, dim + rows + 1, -1.0f, 1.0f);
      const std::vector<float> weight = test::random_vector(dim, dim, 0.5f, 1.5f);
      std::vector<float> sum(n);
      for (size_t i = 0; i < n; ++i) sum[i] = x[i] + addend[i];  // fp32, as the kernel does
      const std::vector<double> ref_plain = test::ref_rmsnorm(x, weight, rows, dim, kEps);
      const std::vector<double> ref_fused = test::ref_rmsnorm(sum, weight, rows, dim, kEps);

      Arena arena(ctx, "norm-test", MemoryUse::Device, 1 << 20);
      const BufferRange xb = test::upload_vector(ctx, arena, x);
      const BufferRange ab = test::upload_vector(ctx, arena, addend);
      const BufferRange wb = test::upload_vector(ctx, arena, weight);
      const BufferRange y = arena.allocate(n * 4);
      for (Reduce reduce : test::reduce_flavours(ctx)) {
        CAPTURE(test::flavour_name(reduce));
        const BufferRange residual = test::upload_vector(ctx, arena, x);
        CommandBuffer cmd(ctx);
        cmd.begin();
        record_rmsnorm(cmd, xb, wb, y, rows, dim, kEps, reduce);
        cmd.submit_and_wait();
        std::string mismatch = compare_norm(test::download_vector<float>(ctx, y), ref_plain);
        CHECK_MESSAGE(mismatch.empty(), "rmsnorm: " << mismatch);

        cmd.begin();
        record_add_rmsnorm(cmd, residual, ab, wb, y, rows, dim, kEps, reduce);
        cmd.submit_and_wait();
        mismatch = compare_norm(test::download_vector<float>(ctx, y), ref_fused);
        CHECK_MESSAGE(mismatch.empty(), "add_rmsnorm: " << mismatch);
        CHECK(test::download_vector<float>(ctx, residual) == sum);  // the new residual, bit for bit
      }
    }
  }
}

TEST_CASE_FIXTURE(test::GpuTest, "moe_combine_rmsnorm gives moe_combine's residual and rmsnorm's output, bit for bit") {
  for (uint32_t dim : {35u, 2048u}) {
    for (uint32_t rows : {1u, 5u}) {
      for (uint32_t top_k : {1u, 6u}) {
        CAPTURE(dim);
        CAPTURE(rows);
        CAPTURE(top_k);
        const size_t n = size_t{rows} * dim;
        const uint32_t seed = dim + rows + top_k;
        const std::vector<float> x = test::random_vector(n, seed, -3.0f, 3.0f);
        const std::vector<float> expert_y = test::random_vector(n * top_k, seed + 1, -1.0f, 1.0f);
        const std::vector<float> route_w = test::random_vector(size_t{rows} * top_k, seed + 2, 0.0f, 2.0f);
        const std::vector<float> shared = test::random_vector(n, seed + 3, -1.0f, 1.0f);
        const std::vector<float> weight = test::random_vector(dim, seed + 4, 0.5f, 1.5f);
        Arena arena(ctx, "norm-test", MemoryUse::Device, 1 << 20);
        const BufferRange yb = test::upload_vector(ctx, arena, expert_y);
        const BufferRange wr = test::upload_vector(ctx, arena, route_w);
        const BufferRange sb = test::upload_vector(ctx, arena, shared);
        const BufferRange wb = test::upload_vector(ctx, arena, weight);
        for (Reduce reduce : test::reduce_flavours(ctx)) {
          CAPTURE(test::flavour_name(reduce));
          // Two passes (combine into the residual, then the norm) against one.
          const BufferRange residual_two = test::upload_vector(ctx, arena, x);
          const BufferRange residual_one = test::upload_vector(ctx, arena, x);
          const BufferRange out_two = arena.allocate(n * 4), out_one = arena.allocate(n * 4);
          CommandBuffer cmd(ctx);
          cmd.begin();
          record_moe_combine(cmd, yb, wr, sb, residual_two, rows, top_k, dim, true);
          barrier_compute_to_compute(cmd);
          record_rmsnorm(cmd, residual_two, wb, out_two, rows, dim, kEps, reduce);
          record_moe_combine_rmsnorm(cmd, residual_one, yb, wr, sb, wb, out_one, rows, top_k, dim, kEps, reduce);
          cmd.submit_and_wait();
          const std::vector<float> residual = test::download_vector<float>(ctx, residual_one);
          CHECK(residual == test::download_vector<float>(ctx, residual_two));
          CHECK(test::download_vector<float>(ctx, out_one) == test::download_vector<float>(ctx, out_two));
          // And the output is the norm of that residual (so neither pass can be a no-op).
          const std::string mismatch =
              compare_norm(test::download_vector<float>(ctx, out_one), test::ref_rmsnorm(residual, weight, rows, dim, kEps));
          CHECK_MESSAGE(mismatch.empty(), "moe_combine_rmsnorm: " << mismatch);
          CHECK(residual != x);
        }
      }
    }
  }
}

TEST_CASE_FIXTURE(test::GpuTest, "rmsnorm of a zero row is zero and eps keeps it finite") {
  const uint32_t dim = 64;
  Arena arena(ctx, "norm-test", MemoryUse::Device, 1 << 20);
  const BufferRange x = test::upload_vector(ctx, arena, std::vector<float>(dim, 0.0f));
  const BufferRange w = test::upload_vector(ctx, arena, std::vector<float>(dim, 1.0f));
  const BufferRange y = test::upload_vector(ctx, arena, std::vector<float>(dim, 7.0f));
  CommandBuffer cmd(ctx);
  cmd.begin();
  record_rmsnorm(cmd, x, w, y, 1, dim, kEps);
  cmd.submit_and_wait();
  CHECK(test::download_vector<float>(ctx, y) == std::vector<float>(dim, 0.0f));
}

TEST_CASE_FIXTURE(test::GpuTest, "add adds bit-exactly for any count") {
  Arena arena(ctx, "add-test", MemoryUse::Device, 4 << 20);
  for (uint32_t count : {1u, 255u, 2048u, 7u * 2048u + 3u}) {
    CAPTURE(count);
    const std::vector<float> a = test::random_vector(count, count), b = test::random_vector(count, count + 1);
    std::vector<float> expected(count);
    for (uint32_t i = 0; i < count; ++i) expected[i] = a[i] + b[i];
    arena.reset();
    // One element past the count stays untouched.
    std::vector<float> a_padded = a;
    a_padded.push_back(42.0f);
    const BufferRange x = test::upload_vector(ctx, arena, a_padded);
    const BufferRange y = test::upload_vector(ctx, arena, b);
    CommandBuffer cmd(ctx);
    cmd.begin();
    record_add(cmd, x, y, count);
    cmd.submit_and_wait();
    expected.push_back(42.0f);
    CHECK(test::download_vector<float>(ctx, x) == expected);
  }
}

TEST_CASE_FIXTURE(test::GpuTest, "norm and add launchers check their ranges") {
  Arena arena(ctx, "norm-test", MemoryUse::Device, 1 << 20);
  const BufferRange small = arena.allocate(64 * 4), big = arena.allocate(128 * 4);
  CommandBuffer cmd(ctx);
  cmd.begin();
  CHECK_THROWS_WITH_AS(record_rmsnorm(cmd, big, small, big, 3, 64, kEps), doctest::Contains("activation binding"),
                       Error);
  CHECK_THROWS_WITH_AS(record_rmsnorm(cmd, big, small, big, 1, 128, kEps), doctest::Contains("weight binding"), Error);
  CHECK_THROWS_AS(record_add_rmsnorm(cmd, big, small, big, big, 2, 64, kEps), Error);
  // Two rows of 64 with 2 experts each need 256 expert floats; 128 are bound.
  CHECK_THROWS_AS(record_moe_combine_rmsnorm(cmd, big, big, small, big, small, big, 2, 2, 64, kEps), Error);
  CHECK_THROWS_AS(record_moe_combine_rmsnorm(cmd, big, big, small, big, small, big, 1, 0, 64, kEps), Error);
  CHECK_THROWS_AS(record_add(cmd, small, big, 65), Error);
  CHECK_THROWS_AS(record_rmsnorm(cmd, big, big, big, 1, 64, -1.0f), Error);
  cmd.submit_and_wait();  // nothing was recorded
}
