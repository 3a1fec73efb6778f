// GPU timestamps of the MoE kernels at Megrez2 sizes (D 2048, I 1408, E 64, k 6, shared
// width 5632), with the dense matvec/matmul of the same sizes for comparison. A measurement,
// not a check: skipped unless run explicitly, e.g.
//   test-kernels -tc="moe kernel timings*" --no-skip
// Knobs (environment): MOE_FORMAT=q4_0 (one format), MOE_BATCH=128 (tokens for the batched
// kernels; 1 skips them), MOE_REPEATS=5 (runs per kernel; the best is printed).
#include <cstdio>
#include <functional>
#include <map>
#include <cstdlib>

#include "moe_test_util.h"
#include "runtime/vk/profiler.h"

using namespace megrez;

namespace {

constexpr uint32_t kDim = 2048, kInter = 1408, kExperts = 64, kTopK = 6, kSharedWidth = 5632;

std::vector<uint8_t> random_bytes(size_t n, std::mt19937& rng) {
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = uint8_t(rng());
  return v;
}

// Quantised bytes straight from the generator (the numbers do not matter for timing, but
// f16/bf16/f32 patterns must stay finite: build them from small random floats).
std::vector<uint8_t> weight_bytes(DType dtype, size_t rows, size_t cols, std::mt19937& rng) {
  if (dtype_is_quantized(dtype)) {
    std::vector<uint8_t> bytes = random_bytes(rows * row_bytes(dtype, int64_t(cols)), rng);
    const size_t block = dtype == DType::Q8_0 ? 34 : 18;
    for (size_t at = 0; at < bytes.size(); at += block) {  // finite scales: f16 0x2000 = 2^-7
      bytes[at] = 0x00;
      bytes[at + 1] = 0x20;
    }
    return bytes;
  }
  return test::random_matrix(dtype, int64_t(rows), int64_t(cols), 0.02f, rng).bytes;
}

}  // namespace

TEST_CASE_FIXTURE(test::GpuTest, "moe kernel timings at Megrez2 decode sizes" * doctest::skip(true)) {
  const uint32_t batch = uint32_t(std::getenv("MOE_BATCH") ? std::max(1, std::atoi(std::getenv("MOE_BATCH"))) : 128);
  for (DType dtype : test::all_weight_formats()) {
    if (std::getenv("MOE_FORMAT") && std::string(std::getenv("MOE_FORMAT")) != dtype_name(dtype)) continue;
    std::mt19937 rng(1);
    const ExpertSlotLayout layout = expert_slot_layout(dtype, dtype, kDim, kInter);
    const uint32_t per_part = std::min(expert_slots_per_part(ctx.caps(), layout), kTopK);
    Arena arena(ctx, "moe-timing", MemoryUse::Device, 256 << 20);
    // Six slots with distinct (random) weights: the six selected experts of a decode step.
    std::vector<uint8_t> one_slot(layout.slot_bytes, 0);
    ExpertSlots slots{layout, per_part, {}};
    for (uint32_t first = 0; first < kTopK; first += per_part) {
      const uint32_t n = std::min(per_part, kTopK - first);
      BufferRange part = arena.allocate(uint64_t(n) * layout.slot_bytes);
      for (uint32_t s = 0; s < n; ++s) {
        const std::vector<uint8_t> gate = weight_bytes(dtype, kInter, kDim, rng);
        const std::vector<uint8_t> down = weight_bytes(dtype, kDim, kInter, rng);
        std::copy(gate.begin(), gate.end(), one_slot.begin() + layout.gate_offset);
        std::copy(gate.begin(), gate.end(), one_slot.begin() + layout.up_offset);
        std::copy(down.begin(), down.end(), one_slot.begin() + layout.down_offset);
        upload(ctx, part.slice(uint64_t(s) * layout.slot_bytes, layout.slot_bytes), std::span<const uint8_t>(one_slot));
      }
      slots.parts.push_back(part);
    }
    std::vector<uint32_t> table(kExperts, 0xFFFFFFFFu), ids(batch * kTopK);
    for (uint32_t k = 0; k < kTopK; ++k) table[10 * k + 3] = k;  // experts 3, 13, ..., 53
    for (uint32_t i = 0; i < ids.size(); ++i) ids[i] = 10 * ((i + i / kTopK) % kTopK) + 3;
    const std::vector<uint8_t> shared_bytes = weight_bytes(dtype, 2 * kSharedWidth, kDim, rng);
    const std::vector<uint8_t> router_bytes = weight_bytes(dtype, kExperts, kDim, rng);

    BufferRange x = test::upload_vector(ctx, arena, test::random_vector(size_t(batch) * kDim, 1.0f, rng));
    BufferRange w_router = test::upload_vector(ctx, arena, test::to_words(router_bytes));
    BufferRange bias = test::upload_vector(ctx, arena, std::vector<float>(kExperts, 0.0f));
    BufferRange w_shared = test::upload_vector(ctx, arena, test::to_words(shared_bytes));
    BufferRange ids_buf = test::upload_vector(ctx, arena, ids);
    BufferRange table_buf = test::upload_vector(ctx, arena, table);
    BufferRange router_ids = arena.allocate(kTopK * 4), router_w = arena.allocate(kTopK * 4);
    BufferRange scores = arena.allocate(kExperts * 4);
    BufferRange weights = test::upload_vector(ctx, arena, std::vector<float>(size_t(batch) * kTopK, 0.1f));
    BufferRange shared_h = arena.allocate(uint64_t(batch) * kSharedWidth * 4);
    BufferRange hidden = arena.allocate(uint64_t(batch) * kTopK * kInter * 4);
    BufferRange y = arena.allocate(uint64_t(batch) * kTopK * kDim * 4);
    BufferRange out = arena.allocate(uint64_t(batch) * kDim * 4);
    const MoeBatchScratch scratch = allocate_moe_batch_scratch(arena, ctx.caps(), batch * kTopK, kExperts);
    const uint64_t shared_matrix = uint64_t(row_bytes(dtype, kDim)) * kSharedWidth;

    // Each kernel runs MOE_REPEATS times back to back (barriers between); the best time is
    // reported, as lavapipe shares the CPU with everything else on the machine.
    const int repeats = std::getenv("MOE_REPEATS") ? std::atoi(std::getenv("MOE_REPEATS")) : 5;
    GpuProfiler prof(ctx, 512);
    std::map<std::string, double> best;
    std::vector<std::string> order;
    for (int round = 0; round < 2; ++round) {  // the first round compiles and warms up
      CommandBuffer cmd(ctx);
      cmd.begin();
      prof.reset(cmd);
      auto timed = [&](const std::string& name, const std::function<void()>& record) {
        for (int r = 0; r < repeats; ++r) {
          const uint32_t s = prof.begin(cmd, name);
          record();
          prof.end(cmd, s);
          barrier_compute_to_compute(cmd);
        }
      };
      timed("router (E 64)", [&] {
        record_router(cmd, {dtype, 1, kDim, kExperts, kTopK, 1, 1, true, 1.0f}, x, w_router, bias, router_ids, router_w,
                      scores);
      });
      timed("swiglu_fused shared (5632)", [&] {
        record_swiglu_fused(cmd, {dtype, 1, kDim, kSharedWidth, 0, uint32_t(shared_matrix)}, w_shared, x, shared_h);
      });
      timed("matvec 1408x2048 (linear)", [&] {
        record_matvec(cmd, dtype, slots.parts[0].slice(0, layout.up_offset), x, y, abi::MatvecPush{kInter, kDim, 0, 0, 0, 0});
      });
      timed("matvec 5632x2048 (linear)", [&] {
        record_matvec(cmd, dtype, w_shared.slice(0, (shared_matrix + 3) / 4 * 4), x, shared_h,
                      abi::MatvecPush{kSharedWidth, kDim, 0, 0, 0, 0});
      });
      timed("moe_gate_up (6 experts)",
            [&] { record_moe_gate_up(cmd, slots, {1, kTopK, kExperts, {}}, x, ids_buf, table_buf, hidden); });
      timed("moe_down (6 experts)",
            [&] { record_moe_down(cmd, slots, {1, kTopK, kExperts, {}}, hidden, ids_buf, table_buf, y); });
      timed("moe_combine", [&] { record_moe_combine(cmd, y, weights, std::nullopt, out, 1, kTopK, kDim, true); });
      if (batch > 1) {
        const MoeArgs batched{batch, kTopK, kExperts, {}};
        timed("matmul 5632x2048 (linear, T " + std::to_string(batch) + ")", [&] {
          record_matmul(cmd, dtype, w_shared.slice(0, (shared_matrix + 3) / 4 * 4), x, shared_h,
                        abi::MatmulPush{kSharedWidth, kDim, batch, 0, 0, kDim, 0, kSharedWidth, 0});
        });
        timed("moe_sort (T " + std::to_string(batch) + ")", [&] { record_moe_sort(cmd, ids_buf, scratch); });
        timed("moe_gate_up_mm (T " + std::to_string(batch) + ")",
              [&] { record_moe_gate_up_batched(cmd, slots, batched, x, table_buf, scratch, hidden); });
        timed("moe_down_mm (T " + std::to_string(batch) + ")",
              [&] { record_moe_down_batched(cmd, slots, batched, hidden, table_buf, scratch, y); });
      }
      cmd.submit_and_wait();
    }
    for (const GpuProfiler::Scope& scope : prof.results()) {
      if (!best.count(scope.name)) {
        order.push_back(scope.name);
        best[scope.name] = scope.ms;
      }
      best[scope.name] = std::min(best[scope.name], scope.ms);
    }
    for (const std::string& name : order) std::printf("%-6s %-28s %9.3f ms\n", dtype_name(dtype), name.c_str(), best[name]);
  }
}
