// Causal prefill attention (attention.comp, one split) against the fp64 reference: chunk
// lengths, offsets into an existing context, head dims, GQA ratios, both cache types, and
// tile shapes other than the automatic ones.
#include "attention_test_run.h"
#include "loader/error.h"

using namespace megrez;

namespace {

// Same reasoning as decode; lavapipe measures <= 5e-7 over the matrix below.
constexpr double kTolerance = 1e-5;

const AttentionShape kShapes[] = {{16, 4, 0}, {16, 2, 0}, {8, 1, 0}, {4, 4, 0}, {3, 1, 0}};

}  // namespace

TEST_CASE_FIXTURE(test::GpuTest, "attention prefill matches fp64 over the shape matrix") {
  double worst = 0;
  for (KvType type : {KvType::F32, KvType::F16}) {
    for (uint32_t head_dim : {32u, 64u, 128u, 18u}) {
      for (AttentionShape shape : kShapes) {
        shape.head_dim = head_dim;
        for (uint32_t tokens : {1u, 5u, 64u, 130u}) {
          for (uint32_t pos0 : {0u, 17u}) {
            CAPTURE(test::kv_name(type));
            CAPTURE(head_dim);
            CAPTURE(shape.q_heads);
            CAPTURE(shape.kv_heads);
            CAPTURE(tokens);
            CAPTURE(pos0);
            const double err = test::run_prefill_case(ctx, {shape, type, tokens, pos0, tokens + pos0});
            CHECK(err <= kTolerance);
            worst = std::max(worst, err);
          }
        }
      }
    }
  }
  MESSAGE("prefill matrix: max abs error " << worst);
}

TEST_CASE_FIXTURE(test::GpuTest, "attention prefill: odd workgroups and blocks, partial head blocks, both reductions") {
  const AttentionShape shape{16, 2, 64};  // groups of 8 query heads
  std::vector<Reduction> reductions = {Reduction::Shmem};
  if (ctx.caps().use_subgroup_reduce()) reductions.push_back(Reduction::Subgroup);
  for (Reduction reduction : reductions) {
    for (uint32_t workgroup : {40u, 128u}) {  // 16 quads: 2 and 8 key groups
      for (PrefillPlan plan : {PrefillPlan{0, 3, 3}, PrefillPlan{0, 8, 2}, PrefillPlan{0, 1, 7}, PrefillPlan{0, 5, 1}}) {
        plan.workgroup = workgroup;
        plan.reduction = reduction;
        CAPTURE(reduction == Reduction::Shmem ? "shmem" : "subgroup");
        CAPTURE(workgroup);
        CAPTURE(plan.head_block);
        CAPTURE(plan.query_block);
        CHECK(test::run_prefill_case(ctx, {shape, KvType::F16, 23, 40, 9}, plan) <= kTolerance);
        CHECK(test::run_prefill_case(ctx, {shape, KvType::F32, 9, 0, 10}, plan) <= kTolerance);
      }
    }
  }
}

TEST_CASE_FIXTURE(test::GpuTest, "attention prefill at Megrez2 sizes after a long context") {
  for (uint32_t kv_heads : {2u, 4u}) {
    for (KvType type : {KvType::F16, KvType::F32}) {
      CAPTURE(kv_heads);
      CAPTURE(test::kv_name(type));
      CHECK(test::run_prefill_case(ctx, {{16, kv_heads, 128}, type, 64, 1000, 11}) <= kTolerance);
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
  PrefillPlan plan = plan_attention_prefill(ctx.caps(), shape);
  plan.head_block = 4;  // above H / Hkv = 2
  CHECK_THROWS_AS(record_attention_prefill(cmd, q, cache, cache, out, ok, plan), Error);
  plan = plan_attention_prefill(ctx.caps(), shape);
  plan.head_block = 2;
  plan.query_block = 9;  // 18 query rows: more than the kernel's 16
  CHECK_THROWS_AS(record_attention_prefill(cmd, q, cache, cache, out, ok, plan), Error);
  cmd.submit_and_wait();
}

TEST_CASE("prefill plans fit the shared memory and take about 8 query rows, heads first") {
  DeviceCaps caps;
  caps.max_workgroup_invocations = 128;
  caps.max_workgroup_size[0] = 128;
  for (uint32_t shared : {32768u, 16384u}) {
    caps.max_shared_memory = shared;
    PrefillPlan p = plan_attention_prefill(caps, {16, 4, 128});  // Megrez2, Hkv 4
    CHECK(p.workgroup == 128);
    CHECK(p.head_block == 4);
    CHECK(p.query_block == 2);
    p = plan_attention_prefill(caps, {16, 1, 128});
    CHECK(p.head_block == 8);
    CHECK(p.query_block == 1);
    p = plan_attention_prefill(caps, {3, 1, 18});
    CHECK(p.head_block == 3);
    CHECK(p.query_block == 2);
    p = plan_attention_prefill(caps, {4, 4, 32});
    CHECK(p.head_block == 1);
    CHECK(p.query_block == 8);
  }
  caps.max_shared_memory = 4096;  // 8 rows of Dh 128 need 8 KiB: fewer queries
  const PrefillPlan small = plan_attention_prefill(caps, {4, 4, 128});
  CHECK(small.head_block * small.query_block < 8);
  CHECK_THROWS_AS(plan_attention_prefill(caps, {16, 4, 8192}), Error);
  CHECK_THROWS_AS(plan_attention_prefill(caps, {4, 4, 1026}), Error);  // 257 quads > 128 invocations
}
