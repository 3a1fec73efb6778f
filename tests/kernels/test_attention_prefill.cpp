// Causal prefill attention, both flavours (attention_prefill.comp tiled, attention_prefill_rows
// .comp per invocation) against the fp64 reference: chunk lengths, offsets into an existing
// context, head dims, GQA ratios, both cache types, and tile shapes other than the automatic
// ones.
#include "attention_test_run.h"
#include "loader/error.h"

using namespace megrez;

namespace {

// Same reasoning as decode; lavapipe measures <= 5e-7 over the matrix below.
constexpr double kTolerance = 1e-5;

const AttentionShape kShapes[] = {{16, 4, 0}, {16, 2, 0}, {8, 1, 0}, {4, 4, 0}, {3, 1, 0}};

// Every flavour the shape allows (the per-invocation one needs head_dim % 8 == 0).
std::vector<PrefillKernel> kernels(const AttentionShape& shape) {
  if (shape.head_dim % 8 != 0) return {PrefillKernel::Tiled};
  return {PrefillKernel::Tiled, PrefillKernel::Rows};
}
const char* kernel_name(PrefillKernel k) { return k == PrefillKernel::Rows ? "rows" : "tiled"; }

}  // namespace

TEST_CASE_FIXTURE(test::GpuTest, "attention prefill matches fp64 over the shape matrix") {
  double worst = 0;
  for (KvType type : {KvType::F32, KvType::F16}) {
    for (uint32_t head_dim : {32u, 64u, 128u, 18u}) {
      for (AttentionShape shape : kShapes) {
        shape.head_dim = head_dim;
        for (uint32_t tokens : {1u, 5u, 64u, 130u}) {
          for (uint32_t pos0 : {0u, 17u}) {
            for (PrefillKernel kernel : kernels(shape)) {
              CAPTURE(test::kv_name(type));
              CAPTURE(head_dim);
              CAPTURE(shape.q_heads);
              CAPTURE(shape.kv_heads);
              CAPTURE(tokens);
              CAPTURE(pos0);
              CAPTURE(kernel_name(kernel));
              const double err = test::run_prefill_case(ctx, {shape, type, tokens, pos0, tokens + pos0},
                                                        plan_attention_prefill(ctx.caps(), shape, kernel));
              CHECK(err <= kTolerance);
              worst = std::max(worst, err);
            }
          }
        }
      }
    }
  }
  MESSAGE("prefill matrix: max abs error " << worst);
}

TEST_CASE_FIXTURE(test::GpuTest, "attention prefill: odd tiles, workgroups and partial head blocks") {
  const AttentionShape shape{16, 2, 64};  // groups of 8 query heads
  for (uint32_t workgroup : {40u, 128u}) {  // 32 output pairs
    for (PrefillPlan plan : {PrefillPlan{0, 3, 3, 5}, PrefillPlan{0, 8, 1, 4}, PrefillPlan{0, 1, 7, 32}}) {
      plan.workgroup = workgroup;
      CAPTURE(workgroup);
      CAPTURE(plan.head_block);
      CAPTURE(plan.query_block);
      CAPTURE(plan.key_tile);
      CHECK(test::run_prefill_case(ctx, {shape, KvType::F16, 23, 40, 9}, plan) <= kTolerance);
      CHECK(test::run_prefill_case(ctx, {shape, KvType::F32, 9, 0, 10}, plan) <= kTolerance);
    }
  }
}

TEST_CASE_FIXTURE(test::GpuTest, "attention prefill at Megrez2 sizes after a long context") {
  for (uint32_t kv_heads : {2u, 4u}) {
    for (KvType type : {KvType::F16, KvType::F32}) {
      CAPTURE(kv_heads);
      CAPTURE(test::kv_name(type));
      for (PrefillKernel kernel : kernels({16, kv_heads, 128})) {
        CAPTURE(kernel_name(kernel));
        CHECK(test::run_prefill_case(ctx, {{16, kv_heads, 128}, type, 64, 1000, 11},
                                     plan_attention_prefill(ctx.caps(), {16, kv_heads, 128}, kernel)) <= kTolerance);
      }
    }
  }
}

TEST_CASE_FIXTURE(test::GpuTest, "record_attention_prefill rejects bad shapes, plans and buffers") {
  Arena arena(ctx, "attention-test", MemoryUse::Device, 4 << 20);
  const AttentionShape shape{4, 2, 32};
  BufferRange q = arena.allocate(4 * 128 * 3);  // 3 tokens
  BufferRange cache = arena.allocate(10 * 2 * 32 * 4);  // 10 f32 rows
  BufferRange out = arena.allocate(4 * 128 * 3);
  const PrefillArgs ok{shape, KvType::F32, 3, 7, 0, 128, 128, 0.17f};
  CommandBuffer cmd(ctx);
  cmd.begin();
  PrefillArgs a = ok;
  a.pos0 = 8;  // rows up to 10 needed, cache has 10 -> 11 would overflow
  CHECK_THROWS_AS(record_attention_prefill(cmd, q, cache, cache, out, a), Error);
  a = ok;
  a.q_row_stride = 100;  // rows overlap
  CHECK_THROWS_AS(record_attention_prefill(cmd, q, cache, cache, out, a), Error);
  a = ok;
  a.tokens = 4;  // q holds 3 rows
  CHECK_THROWS_AS(record_attention_prefill(cmd, q, cache, cache, out, a), Error);
  PrefillPlan plan = plan_attention_prefill(ctx.caps(), shape, PrefillKernel::Tiled);
  plan.head_block = 4;  // above H / Hkv = 2
  CHECK_THROWS_AS(record_attention_prefill(cmd, q, cache, cache, out, ok, plan), Error);
  plan = plan_attention_prefill(ctx.caps(), shape, PrefillKernel::Tiled);
  plan.key_tile = 4096;  // far over the shared memory
  CHECK_THROWS_AS(record_attention_prefill(cmd, q, cache, cache, out, ok, plan), Error);
  // Per invocation: the workgroup must hold the whole group of query heads, head_dim % 8 == 0.
  plan = plan_attention_prefill(ctx.caps(), shape, PrefillKernel::Rows);
  plan.head_block = 1;
  CHECK_THROWS_AS(record_attention_prefill(cmd, q, cache, cache, out, ok, plan), Error);
  plan = plan_attention_prefill(ctx.caps(), shape, PrefillKernel::Rows);
  plan.workgroup += 1;
  CHECK_THROWS_AS(record_attention_prefill(cmd, q, cache, cache, out, ok, plan), Error);
  CHECK_THROWS_AS(plan_attention_prefill(ctx.caps(), {4, 2, 36}, PrefillKernel::Rows), Error);
  cmd.submit_and_wait();
}

TEST_CASE("prefill plans fit the shared memory and prefer many rows") {
  DeviceCaps caps;
  caps.max_workgroup_invocations = 128;
  caps.max_workgroup_size[0] = 128;
  caps.max_shared_memory = 32768;
  PrefillPlan p = plan_attention_prefill(caps, {16, 4, 128});
  CHECK(p.head_block == 4);
  CHECK(p.head_block * p.query_block == 32);
  CHECK(p.key_tile == 16);
  caps.max_shared_memory = 16384;
  p = plan_attention_prefill(caps, {16, 4, 128});
  CHECK(p.head_block * p.query_block == 16);
  CHECK(p.key_tile == 8);
  p = plan_attention_prefill(caps, {3, 1, 18});
  CHECK(p.head_block == 3);
  CHECK(p.query_block == 10);
  CHECK_THROWS_AS(plan_attention_prefill(caps, {16, 4, 8192}), Error);
  CHECK_THROWS_AS(plan_attention_prefill(caps, {4, 4, 258}), Error);  // 129 pairs > 128 invocations
  CHECK(p.kernel == PrefillKernel::Tiled);
  // A CPU device takes the per-invocation flavour where head_dim % 8 == 0: the whole group of
  // query heads times enough queries for 32 invocations.
  caps.cpu_device = true;
  p = plan_attention_prefill(caps, {16, 4, 128});
  CHECK(p.kernel == PrefillKernel::Rows);
  CHECK(p.head_block == 4);
  CHECK(p.query_block == 8);
  CHECK(p.workgroup == 32);
  CHECK(plan_attention_prefill(caps, {3, 1, 18}).kernel == PrefillKernel::Tiled);
  // One query (decode on a CPU device): one group of query heads per workgroup.
  p = plan_attention_prefill(caps, {16, 4, 128}, 1);
  CHECK(p.kernel == PrefillKernel::Rows);
  CHECK(p.query_block == 1);
  CHECK(p.workgroup == 4);
  CHECK(plan_attention_prefill(caps, {16, 4, 128}, 3).query_block == 3);
}

TEST_CASE_FIXTURE(test::GpuTest, "per-invocation prefill kernel with one query matches fp64 (decode on CPU devices)") {
  for (KvType type : {KvType::F32, KvType::F16}) {
    for (AttentionShape shape : {AttentionShape{16, 4, 128}, AttentionShape{8, 2, 32}, AttentionShape{4, 4, 64}}) {
      for (uint32_t pos0 : {0u, 1u, 37u, 1000u}) {
        CAPTURE(test::kv_name(type));
        CAPTURE(shape.q_heads);
        CAPTURE(shape.head_dim);
        CAPTURE(pos0);
        const PrefillPlan plan = plan_attention_prefill(ctx.caps(), shape, PrefillKernel::Rows, 1);
        CHECK(test::run_prefill_case(ctx, {shape, type, 1, pos0, 13}, plan) <= kTolerance);
      }
    }
  }
}
