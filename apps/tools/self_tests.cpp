// Self-checks of the runtime's own kernels (copy, reduce_sum), run by megrez-info and the
// runtime tests: random inputs, GPU result compared with a CPU computation.
#include <cmath>
#include <cstring>
#include <random>

#include "apps/tools/self_test.h"
#include "runtime/vk/blocking_transfers.h"
#include "runtime/vk/dispatch.h"
#include "shaders/abi/copy.h"
#include "shaders/abi/reduce_sum.h"

namespace megrez::self_tests {

namespace {

// Copies n 32-bit words with `variant` (copy: words, copy_vec4: 16-byte vectors).
SelfTestResult run_copy(Context& ctx, const char* variant, uint32_t words, uint32_t words_per_element) {
  std::mt19937 rng(1234);
  std::vector<uint32_t> input(words), output(words, 0);
  for (auto& w : input) w = rng();
  Arena arena(ctx, "self-test", MemoryUse::Device, VkDeviceSize{words} * 8 + 4096);
  BufferRange src = arena.allocate(VkDeviceSize{words} * 4);
  BufferRange dst = arena.allocate(VkDeviceSize{words} * 4);
  upload(ctx, src, std::span<const uint32_t>(input));
  upload(ctx, dst, std::span<const uint32_t>(output));

  const uint32_t workgroup = std::min(256u, ctx.caps().max_workgroup_invocations);
  const Pipeline& pipeline = ctx.pipeline(variant, Specialization{{workgroup, 1, 1}, {}});
  const uint32_t elements = words / words_per_element;
  // Fewer groups than elements: exercises the grid-stride loop.
  const uint32_t groups = std::min(group_count(elements, workgroup), 64u);
  CommandBuffer cmd(ctx);
  cmd.begin();
  dispatch(cmd, pipeline, {src, dst}, abi::CopyPush{elements}, {groups});
  cmd.submit_and_wait();
  download(ctx, dst, std::span<uint32_t>(output));
  for (uint32_t i = 0; i < words; ++i) {
    if (output[i] != input[i]) {
      return {false, std::string(variant) + ": word " + std::to_string(i) + " is " + std::to_string(output[i]) +
                         ", expected " + std::to_string(input[i])};
    }
  }
  return {true, std::string(variant) + ": " + std::to_string(words) + " words bit-exact"};
}

SelfTestResult run_reduce_sum(Context& ctx, const char* variant, uint32_t rows, uint32_t cols, uint32_t workgroup) {
  std::mt19937 rng(99);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> input(size_t{rows} * cols), output(rows, 0.0f);
  for (auto& v : input) v = dist(rng);
  Arena arena(ctx, "self-test", MemoryUse::Device, (input.size() + rows) * 4 + 4096);
  BufferRange in = arena.allocate(input.size() * 4);
  BufferRange out = arena.allocate(size_t{rows} * 4);
  upload(ctx, in, std::span<const float>(input));
  const Pipeline& pipeline = ctx.pipeline(variant, Specialization{{workgroup, 1, 1}, {}});
  CommandBuffer cmd(ctx);
  cmd.begin();
  dispatch(cmd, pipeline, {in, out}, abi::ReduceSumPush{rows, cols}, {rows});
  cmd.submit_and_wait();
  download(ctx, out, std::span<float>(output));
  for (uint32_t r = 0; r < rows; ++r) {
    double expected = 0, magnitude = 0;
    for (uint32_t c = 0; c < cols; ++c) {
      expected += input[size_t{r} * cols + c];
      magnitude += std::fabs(input[size_t{r} * cols + c]);
    }
    // fp32 summation error bound: ~cols * eps * sum|x| (any order).
    const double tolerance = 1e-6 + cols * 1.2e-7 * magnitude;
    if (!(std::fabs(output[r] - expected) <= tolerance)) {
      return {false, std::string(variant) + ": row " + std::to_string(r) + " sum " + std::to_string(output[r]) +
                         ", expected " + std::to_string(expected)};
    }
  }
  return {true, std::string(variant) + ": " + std::to_string(rows) + " rows of " + std::to_string(cols) +
                    " (workgroup " + std::to_string(workgroup) + ") within fp32 rounding"};
}

SelfTestResult combine(std::initializer_list<SelfTestResult> results) {
  SelfTestResult all{true, ""};
  for (const auto& r : results) {
    all.ok = all.ok && r.ok;
    all.detail += (all.detail.empty() ? "" : "; ") + r.detail;
  }
  return all;
}

}  // namespace

SelfTestResult copy(Context& ctx) {
  return combine({run_copy(ctx, "copy", 100003, 1), run_copy(ctx, "copy_vec4", 4 * 25001, 4)});
}

SelfTestResult reduce_sum(Context& ctx) {
  // Odd sizes and a workgroup that is not a power of two nor a whole number of subgroups
  // at any subgroup size (a partial last subgroup: see shaders/common/subgroup_count.glsl).
  const uint32_t workgroup = std::min(99u, ctx.caps().max_workgroup_invocations);
  SelfTestResult shmem = run_reduce_sum(ctx, "reduce_sum_shmem", 37, 1001, workgroup);
  if (!ctx.caps().use_subgroup_reduce()) {
    shmem.detail += "; reduce_sum (subgroup) skipped: no subgroup arithmetic";
    return shmem;
  }
  return combine({run_reduce_sum(ctx, "reduce_sum", 37, 1001, workgroup), shmem});
}

}  // namespace megrez::self_tests
