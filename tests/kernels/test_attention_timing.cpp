// Timings of the attention kernels at Megrez2 decode sizes (H 16, Dh 128, Hkv 4 and 2), for
// the benchmark table: GPU timestamps plus the process CPU time (on lavapipe with
// LP_NUM_THREADS=1 the CPU time is the kernel's cost, unaffected by other load on the host).
// Skipped by default: test-kernels -tc="attention timings*" --no-skip
#include <ctime>
#include <cstdio>

#include "attention_test_util.h"
#include "common/gpu_fixture.h"
#include "runtime/profiler.h"

using namespace megrez;

namespace {

struct Timing {
  double gpu_ms, cpu_ms;
};

// Median GPU ms and mean CPU ms of `reps` recordings of `record`, each its own submission.
template <class Record>
Timing measure(Context& ctx, Record record, int reps = 7) {
  GpuProfiler profiler(ctx, 1);
  CommandBuffer cmd(ctx);
  std::vector<double> gpu;
  cmd.begin();
  record(cmd);  // warm-up: pipeline creation, first touch
  cmd.submit_and_wait();
  const std::clock_t start = std::clock();
  for (int i = 0; i < reps; ++i) {
    cmd.begin();
    profiler.reset(cmd);
    const uint32_t scope = profiler.begin(cmd, "run");
    record(cmd);
    profiler.end(cmd, scope);
    cmd.submit_and_wait();
    gpu.push_back(profiler.results()[0].ms);
  }
  const double cpu_ms = 1000.0 * double(std::clock() - start) / CLOCKS_PER_SEC / reps;
  std::sort(gpu.begin(), gpu.end());
  return {gpu[gpu.size() / 2], cpu_ms};
}

}  // namespace

TEST_CASE_FIXTURE(test::GpuTest, "attention timings at Megrez2 sizes" * doctest::skip()) {
  const uint32_t H = 16, Dh = 128, max_ctx = 4096;
  std::mt19937 rng(5);
  Arena arena(ctx, "attention-timing", MemoryUse::Device, 96 << 20);
  const BufferRange table = test::upload_vector(ctx, arena, rope_frequency_table(1e6, Dh));
  const BufferRange q = test::upload_vector(ctx, arena, test::random_floats(64 * H * Dh, rng));
  const BufferRange out = arena.allocate(64 * H * Dh * 4);
  std::printf("| kernel | cache | shape | variant | GPU ms | CPU ms |\n|---|---|---|---|---:|---:|\n");
  const Timing rope = measure(ctx, [&](CommandBuffer& cmd) { record_rope(cmd, q, table, {1, H, Dh, 0, H * Dh, 100}); });
  std::printf("| rope | - | q 16x128, 1 token | - | %.3f | %.3f |\n", rope.gpu_ms, rope.cpu_ms);
  for (uint32_t Hkv : {4u, 2u}) {
    const AttentionShape shape{H, Hkv, Dh};
    const BufferRange partials = arena.allocate(attention_decode_max_partials_bytes(ctx.caps(), shape, max_ctx));
    for (KvType type : {KvType::F16, KvType::F32}) {
      const size_t elements = size_t{max_ctx} * Hkv * Dh;
      const BufferRange k_cache = test::upload_vector(ctx, arena, test::random_cache(type, elements, rng).words);
      const BufferRange v_cache = test::upload_vector(ctx, arena, test::random_cache(type, elements, rng).words);
      const Timing store = measure(ctx, [&](CommandBuffer& cmd) {
        record_kv_store(cmd, q, q, table, k_cache, v_cache, {type, 1, Hkv, Dh, 100, 0, Hkv * Dh, H * Dh});
      });
      std::printf("| kv_store | %s | Hkv %u, 1 token | - | %.3f | %.3f |\n", test::kv_name(type), Hkv, store.gpu_ms,
                  store.cpu_ms);
      for (uint32_t n_ctx : {512u, 4096u}) {
        for (Reduction reduction : {Reduction::Subgroup, Reduction::Shmem}) {
          if (reduction == Reduction::Subgroup && !ctx.caps().use_subgroup_reduce()) continue;
          DecodePlan plan = plan_attention_decode(ctx.caps(), shape, n_ctx);
          plan.reduction = reduction;
          const Timing t = measure(ctx, [&](CommandBuffer& cmd) {
            record_attention_decode(cmd, q, k_cache, v_cache, partials, out, {shape, type, n_ctx, 0, 0, 0.088f}, plan);
          });
          std::printf("| attention_decode + combine | %s | Hkv %u, n_ctx %u | %s, %u splits | %.3f | %.3f |\n",
                      test::kv_name(type), Hkv, n_ctx, reduction == Reduction::Subgroup ? "subgroup" : "shmem",
                      plan.splits, t.gpu_ms, t.cpu_ms);
        }
      }
      for (uint32_t pos0 : {0u, 448u}) {
        const Timing t = measure(ctx, [&](CommandBuffer& cmd) {
          record_attention_prefill(cmd, q, k_cache, v_cache, out, {shape, type, 64, pos0, 0, H * Dh, H * Dh, 0.088f});
        }, 3);
        std::printf("| attention_prefill | %s | Hkv %u, 64 tokens at %u | - | %.3f | %.3f |\n", test::kv_name(type), Hkv,
                    pos0, t.gpu_ms, t.cpu_ms);
      }
    }
  }
}
