// Split-K decode attention (attention_decode.comp + attention_combine.comp) against the fp64
// reference, over head dims, GQA ratios, context lengths, both cache types and both
// reduction flavours.
#include "attention_test_run.h"
#include "loader/error.h"

using namespace megrez;

namespace {

// Tolerance: outputs are softmax-weighted averages of values in [-1, 1]; the GPU rounds
// scores and sums in fp32 (relative ~1e-6 over Dh = 128 and 4K keys). Lavapipe measures
// <= 6e-7 for the whole matrix below; 1e-5 leaves room for other devices.
constexpr double kTolerance = 1e-5;

const AttentionShape kShapes[] = {{16, 4, 0}, {16, 2, 0}, {8, 1, 0}, {4, 4, 0}, {3, 1, 0}};

std::vector<Reduction> reductions(const Context& ctx) {
  if (ctx.caps().use_subgroup_reduce()) return {Reduction::Subgroup, Reduction::Shmem};
  return {Reduction::Shmem};
}

}  // namespace

TEST_CASE_FIXTURE(test::GpuTest, "attention decode matches fp64 over the shape matrix") {
  double worst = 0;
  for (KvType type : {KvType::F32, KvType::F16}) {
    for (uint32_t head_dim : {32u, 64u, 128u, 18u}) {
      for (AttentionShape shape : kShapes) {
        shape.head_dim = head_dim;
        for (uint32_t n_ctx : {1u, 2u, 37u, 300u, 4099u}) {
          for (Reduction reduction : reductions(ctx)) {
            CAPTURE(test::kv_name(type));
            CAPTURE(head_dim);
            CAPTURE(shape.q_heads);
            CAPTURE(shape.kv_heads);
            CAPTURE(n_ctx);
            CAPTURE(reduction == Reduction::Shmem ? "shmem" : "subgroup");
            DecodePlan plan = plan_attention_decode(ctx.caps(), shape, n_ctx);
            plan.reduction = reduction;
            const double err = test::run_decode_case(ctx, {shape, type, 1, n_ctx - 1, n_ctx}, plan);
            CHECK(err <= kTolerance);
            worst = std::max(worst, err);
          }
        }
      }
    }
  }
  MESSAGE("decode matrix: max abs error " << worst);
}

TEST_CASE_FIXTURE(test::GpuTest, "attention decode: odd workgroups, many or one split, partial head blocks") {
  const AttentionShape shape{16, 2, 64};  // groups of 8 query heads
  for (Reduction reduction : reductions(ctx)) {
    CAPTURE(reduction == Reduction::Shmem ? "shmem" : "subgroup");
    // 32 output pairs: 1, 3 and 4 key groups; 33 and 40 end in a partial subgroup.
    for (uint32_t workgroup : {33u, 40u, 96u, 128u}) {
      for (uint32_t head_block : {8u, 3u, 1u}) {
        CAPTURE(workgroup);
        CAPTURE(head_block);
        const uint32_t n_ctx = 1000;
        // Every split one tile long (the most partials), and one split for everything.
        DecodePlan many{workgroup, head_block, workgroup, (n_ctx + workgroup - 1) / workgroup, reduction};
        DecodePlan one{workgroup, head_block, n_ctx, 1, reduction};
        CHECK(test::run_decode_case(ctx, {shape, KvType::F16, 1, n_ctx - 1, 7}, many) <= kTolerance);
        CHECK(test::run_decode_case(ctx, {shape, KvType::F32, 1, n_ctx - 1, 8}, one) <= kTolerance);
      }
    }
  }
}

TEST_CASE_FIXTURE(test::GpuTest, "attention decode at Megrez2 sizes and a long context") {
  for (uint32_t kv_heads : {2u, 4u}) {
    for (KvType type : {KvType::F16, KvType::F32}) {
      CAPTURE(kv_heads);
      CAPTURE(test::kv_name(type));
      CHECK(test::run_decode_case(ctx, {{16, kv_heads, 128}, type, 1, 511, 3}) <= kTolerance);
      CHECK(test::run_decode_case(ctx, {{16, kv_heads, 128}, type, 1, 4095, 4}) <= kTolerance);
    }
  }
  // 8192 rows (the 32768-row case takes ~6 s on a loaded lavapipe, mostly the GPU part).
  CHECK(test::run_decode_case(ctx, {{16, 4, 128}, KvType::F16, 1, 8191, 5}) <= kTolerance);
}

TEST_CASE_FIXTURE(test::GpuTest, "record_attention_decode rejects bad shapes, plans and buffers") {
  Arena arena(ctx, "attention-test", MemoryUse::Device, 4 << 20);
  const AttentionShape shape{4, 2, 32};
  BufferRange q = arena.allocate(4 * 128);
  BufferRange cache = arena.allocate(10 * 2 * 32 * 4);  // 10 f32 rows
  BufferRange partials = arena.allocate(1 << 16);
  BufferRange out = arena.allocate(4 * 128);
  const DecodeArgs ok{shape, KvType::F32, 10, 0, 0, 0.17f};
  CommandBuffer cmd(ctx);
  cmd.begin();
  DecodeArgs a = ok;
  a.n_ctx = 11;  // one row past the cache
  CHECK_THROWS_AS(record_attention_decode(cmd, q, cache, cache, partials, out, a), Error);
  a = ok;
  a.shape.kv_heads = 3;  // does not divide 4
  CHECK_THROWS_AS(record_attention_decode(cmd, q, cache, cache, partials, out, a), Error);
  a = ok;
  a.q_offset = 1;  // q too short
  CHECK_THROWS_AS(record_attention_decode(cmd, q, cache, cache, partials, out, a), Error);
  a = ok;
  a.n_ctx = 0;
  CHECK_THROWS_AS(record_attention_decode(cmd, q, cache, cache, partials, out, a), Error);
  DecodePlan plan = plan_attention_decode(ctx.caps(), shape, 10);
  plan.splits = 2;  // the second split would be empty
  CHECK_THROWS_AS(record_attention_decode(cmd, q, cache, cache, partials, out, ok, plan), Error);
  plan = plan_attention_decode(ctx.caps(), shape, 10);
  plan.head_block = 3;  // above H / Hkv = 2
  CHECK_THROWS_AS(record_attention_decode(cmd, q, cache, cache, partials, out, ok, plan), Error);
  cmd.submit_and_wait();
}

TEST_CASE("decode plans cover the context with non-empty splits and fit the shared memory") {
  DeviceCaps caps;
  caps.max_shared_memory = 16384;
  caps.max_workgroup_invocations = 128;
  caps.max_workgroup_size[0] = 128;
  for (AttentionShape shape : {AttentionShape{16, 4, 128}, AttentionShape{16, 1, 128}, AttentionShape{3, 1, 18}}) {
    for (uint32_t n_ctx : {1u, 255u, 256u, 257u, 4099u, 32768u}) {
      CAPTURE(shape.kv_heads);
      CAPTURE(n_ctx);
      const DecodePlan p = plan_attention_decode(caps, shape, n_ctx);
      CHECK(p.workgroup == 128);
      CHECK(uint64_t{p.splits} * p.chunk >= n_ctx);
      CHECK(uint64_t{p.splits - 1} * p.chunk < n_ctx);
      CHECK(p.chunk % p.workgroup == 0);
      CHECK(attention_decode_partials_bytes(shape, p) <=
            attention_decode_max_partials_bytes(caps, shape, 32768));
    }
  }
  // The partials bound holds for every shorter context (the split recount is not monotonic).
  for (AttentionShape shape : {AttentionShape{16, 4, 128}, AttentionShape{16, 2, 64}}) {
    const VkDeviceSize bound = attention_decode_max_partials_bytes(caps, shape, 40000);
    size_t over = 0;
    for (uint32_t n_ctx = 1; n_ctx <= 40000; ++n_ctx) {
      over += attention_decode_partials_bytes(shape, plan_attention_decode(caps, shape, n_ctx)) > bound;
    }
    CHECK(over == 0);
  }
  // q (16 x 128 floats) plus 16 x 128 scores fill 16 KiB exactly; at Dh 256 they do not,
  // and the 16 query heads of a kv head go in two blocks of 8.
  CHECK(plan_attention_decode(caps, {16, 1, 128}, 100).head_block == 16);
  CHECK(plan_attention_decode(caps, {16, 1, 256}, 100).head_block == 8);
  CHECK(plan_attention_decode(caps, {16, 4, 128}, 100).head_block == 4);
  CHECK_THROWS_AS(plan_attention_decode(caps, {16, 4, 4096}, 100), Error);
  CHECK_THROWS_AS(plan_attention_decode(caps, {4, 4, 258}, 100), Error);  // 129 pairs > 128 invocations
}
