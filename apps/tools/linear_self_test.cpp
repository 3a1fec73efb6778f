// megrez-info's check of the dense kernels on the chosen device (megrez_self_test(linear)):
// a q4_0 decode mat-vec, the argmax of its output and an rmsnorm, against plain C++ on the
// same bytes. Small enough to run in milliseconds on a phone; the full per-format, per-shape
// coverage lives in tests/kernels.
#include <cmath>
#include <cstring>
#include <random>

#include "apps/tools/self_test.h"
#include "loader/quant/quant.h"
#include "runtime/ops/linear.h"
#include "runtime/vk/blocking_transfers.h"

namespace megrez::self_tests {

namespace {

std::string failure(const char* what, size_t index, double got, double expected) {
  return std::string(what) + ": element " + std::to_string(index) + " is " + std::to_string(got) + ", expected " +
         std::to_string(expected);
}

}  // namespace

SelfTestResult linear(Context& ctx) {
  const uint32_t rows = 37, cols = 256;
  std::mt19937 rng(2024);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> weights(size_t{rows} * cols), x(cols), norm_weight(cols);
  for (auto& v : weights) v = dist(rng);
  for (auto& v : x) v = dist(rng);
  for (auto& v : norm_weight) v = 1.0f + 0.5f * dist(rng);
  std::vector<uint8_t> bytes = quantize(DType::Q4_0, weights, cols);
  const std::vector<float> decoded = [&] {
    std::vector<float> d(weights.size());
    for (uint32_t r = 0; r < rows; ++r) {
      dequantize_row(DType::Q4_0, bytes.data() + r * row_bytes(DType::Q4_0, cols), d.data() + size_t{r} * cols, cols);
    }
    return d;
  }();
  while (bytes.size() % 4) bytes.push_back(0);

  Arena arena(ctx, "self-test", MemoryUse::Device, 1 << 20);
  auto put = [&](const void* data, size_t size) {
    BufferRange r = arena.allocate(size);
    upload(ctx, r, std::span<const std::byte>(static_cast<const std::byte*>(data), size));
    return r;
  };
  const BufferRange w = put(bytes.data(), bytes.size()), xb = put(x.data(), cols * 4);
  const BufferRange nw = put(norm_weight.data(), cols * 4);
  const BufferRange y = arena.allocate(rows * 4), normed = arena.allocate(cols * 4), result = arena.allocate(8);
  const BufferRange partials = arena.allocate(argmax_partials_bytes(ctx.caps(), rows));
  CommandBuffer cmd(ctx);
  cmd.begin();
  record_matvec(cmd, DType::Q4_0, w, xb, y, abi::MatvecPush{rows, cols, 0, 0, 0, 0});
  record_rmsnorm(cmd, xb, nw, normed, 1, cols, 1e-6f);
  barrier_compute_to_compute(cmd);
  record_argmax(cmd, y, partials, result, rows);
  cmd.submit_and_wait();
  std::vector<float> got_y(rows), got_norm(cols);
  std::vector<uint32_t> got_argmax(2);
  download(ctx, y, std::span<float>(got_y));
  download(ctx, normed, std::span<float>(got_norm));
  download(ctx, result, std::span<uint32_t>(got_argmax));

  const char* flavour = ctx.caps().use_subgroup_reduce() ? "subgroup" : "shmem";
  for (uint32_t r = 0; r < rows; ++r) {
    double expected = 0, magnitude = 0;
    for (uint32_t c = 0; c < cols; ++c) {
      expected += double(decoded[size_t{r} * cols + c]) * x[c];
      magnitude += std::fabs(double(decoded[size_t{r} * cols + c]) * x[c]);
    }
    if (!(std::fabs(got_y[r] - expected) <= 1e-6 * std::sqrt(double(cols)) * magnitude)) {
      return {false, failure("matvec_q4_0", r, got_y[r], expected)};
    }
  }
  uint32_t best = 0;
  for (uint32_t r = 1; r < rows; ++r) best = got_y[r] > got_y[best] ? r : best;
  if (got_argmax[0] != best) return {false, failure("argmax", 0, got_argmax[0], best)};
  double sum_sq = 0;
  for (float v : x) sum_sq += double(v) * v;
  const double inv_rms = 1.0 / std::sqrt(sum_sq / cols + 1e-6);
  for (uint32_t c = 0; c < cols; ++c) {
    const double expected = x[c] * inv_rms * norm_weight[c];
    if (!(std::fabs(got_norm[c] - expected) <= 4e-6 * std::fabs(expected))) {
      return {false, failure("rmsnorm", c, got_norm[c], expected)};
    }
  }
  return {true, std::string("matvec_q4_0 ") + std::to_string(rows) + "x" + std::to_string(cols) +
                    ", argmax, rmsnorm (" + flavour + " reductions) match the CPU"};
}

}  // namespace megrez::self_tests
