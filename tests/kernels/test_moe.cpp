// Routed experts on the GPU (moe_matvec.comp decode products, moe_matmul.comp batched
// products, moe_combine.comp) against plain C++ over the same bytes (reference_moe.h).
// Tolerance for every format: weights decode exactly on both sides, so only fp32
// accumulation separates them: NMSE <= 1e-10, every element within 1e-5 of the RMS.
#include <cstring>

#include "moe_test_util.h"
#include "runtime/runtime_test_util.h"

using namespace megrez;
using test::MoePath;

namespace {

struct MoeShape {
  uint32_t dim, inter, experts, top_k, tokens;
};

void check_against_cpu(const test::MoeProblem& p, const test::MoeGpuResult& got) {
  test::check_close(got.hidden, test::hidden_reference(p), "hidden");
  test::check_close(got.out, test::moe_reference(p), "out");
}

}  // namespace

TEST_CASE_FIXTURE(test::GpuTest, "moe decode and batched paths match the CPU, every format") {
  const std::vector<MoeShape> shapes = {
      {96, 64, 8, 2, 3},   // odd-ish sizes, several tokens
      {64, 32, 4, 4, 1},   // every expert selected
      {32, 32, 16, 1, 2},  // k = 1
      {64, 96, 8, 3, 40},  // 120 entries: experts get several batched tiles
  };
  for (DType dtype : test::all_weight_formats()) {
    for (const MoeShape& s : shapes) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(s.dim);
      CAPTURE(s.tokens);
      const test::MoeProblem p =
          test::make_moe_problem(dtype, dtype, s.dim, s.inter, s.experts, s.top_k, s.tokens, s.experts, s.dim + s.tokens);
      const test::MoeGpuResult decode = test::run_moe(ctx, p, MoePath::Decode, test::identity_placement(p));
      check_against_cpu(p, decode);
      const test::MoeGpuResult batched = test::run_moe(ctx, p, MoePath::Batched, test::identity_placement(p));
      check_against_cpu(p, batched);
      // The two paths differ by the order of fp32 sums only.
      test::check_close(batched.y, decode.y, "batched y vs decode y");
      test::check_close(batched.out, decode.out, "batched out vs decode out");
    }
  }
}

TEST_CASE_FIXTURE(test::GpuTest, "moe mixed formats and columns that are not whole blocks") {
  struct Case {
    DType gate_up, down;
    MoeShape s;
  };
  const std::vector<Case> cases = {
      {DType::Q4_0, DType::Q8_0, {64, 64, 6, 2, 5}},  // llama.cpp-style mixed quantisation
      {DType::BF16, DType::F32, {96, 32, 4, 2, 2}},
      {DType::F16, DType::F16, {48, 40, 4, 2, 3}},    // hidden 48 as in the tiny model fixtures
      {DType::F32, DType::BF16, {33, 7, 3, 2, 2}},
      {DType::BF16, DType::BF16, {1, 1, 2, 1, 3}},
  };
  for (const Case& c : cases) {
    CAPTURE(dtype_name(c.gate_up));
    CAPTURE(dtype_name(c.down));
    CAPTURE(c.s.dim);
    const test::MoeProblem p = test::make_moe_problem(c.gate_up, c.down, c.s.dim, c.s.inter, c.s.experts, c.s.top_k,
                                                      c.s.tokens, c.s.experts, 17 + c.s.dim);
    check_against_cpu(p, test::run_moe(ctx, p, MoePath::Decode, test::identity_placement(p)));
    check_against_cpu(p, test::run_moe(ctx, p, MoePath::Batched, test::identity_placement(p)));
  }
}

namespace {

// `batched`: the batched kernels too (their tiled flavour needs more than 13 invocations).
void check_decode_flavours(Context& ctx, bool batched) {
  std::vector<Reduce> flavours{Reduce::SharedMemory, Reduce::PerInvocation};
  if (ctx.caps().use_subgroup_reduce()) flavours.push_back(Reduce::Subgroup);
  for (Reduce reduce : flavours) {
    for (DType dtype : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0}) {
      CAPTURE(int(reduce));
      CAPTURE(dtype_name(dtype));
      // The per-invocation flavour reads quantized rows in steps of 128 columns.
      const uint32_t dim = reduce == Reduce::PerInvocation ? 256 : 96, inter = reduce == Reduce::PerInvocation ? 128 : 64;
      const test::MoeProblem p = test::make_moe_problem(dtype, dtype, dim, inter, 8, 3, 5, 8, 31);
      check_against_cpu(p, test::run_moe(ctx, p, MoePath::Decode, test::identity_placement(p), {}, reduce));
      // The batched kernels: tiled for the reduction flavours, per-invocation for PerInvocation.
      if (batched) check_against_cpu(p, test::run_moe(ctx, p, MoePath::Batched, test::identity_placement(p), {}, reduce));
      if (reduce == Reduce::PerInvocation) {
        // 70 tokens of 256 floats are 70 KiB of x: over a uniform buffer's 64 KiB, so the
        // storage-buffer twins (..._rows_wide for gate/up, ..._rows for down) run.
        const test::MoeProblem many = test::make_moe_problem(dtype, dtype, dim, inter, 8, 3, 70, 8, 32);
        check_against_cpu(many, test::run_moe(ctx, many, MoePath::Decode, test::identity_placement(many), {}, reduce));
      }
    }
  }
}

}  // namespace

TEST_CASE("moe decode kernel choice: 16-byte units and a uniform-buffer x where they fit") {
  DeviceCaps caps;
  caps.cpu_device = true;  // the per-invocation flavour
  caps.max_uniform_range = 65536;
  caps.uniform_offset_alignment = 16;
  const ExpertSlotLayout layout = expert_slot_layout(DType::Q8_0, DType::Q8_0, 2048, 1408);
  const ExpertSlots slots{layout, 4, {BufferRange{VK_NULL_HANDLE, 0, 4ull * layout.slot_bytes}}};
  const BufferRange x{VK_NULL_HANDLE, 256, 1 << 20};
  const MoeArgs one{1, 6, 64, {}};
  // Gate/up: 2048 columns = 8 whole 8-block steps, every matrix on 16 bytes; x 8 KiB.
  CHECK(moe_product_kernel(caps, slots, one, false, x) == "moe_gate_up_q8_0_rows_wide_ubo");
  // Down: 1408 columns (5.5 steps) stay in 8-byte units; its input is 6 x 1408 floats (33 KiB).
  CHECK(moe_product_kernel(caps, slots, one, true, x) == "moe_down_q8_0_rows_ubo");
  // Three tokens' hidden rows (99 KiB) are past 64 KiB.
  CHECK(moe_product_kernel(caps, slots, MoeArgs{3, 6, 64, {}}, true, x) == "moe_down_q8_0_rows");
  // x off the device's uniform alignment.
  caps.uniform_offset_alignment = 64;
  CHECK(moe_product_kernel(caps, slots, one, false, x) == "moe_gate_up_q8_0_rows_wide_ubo");
  CHECK(moe_product_kernel(caps, slots, one, false, BufferRange{VK_NULL_HANDLE, 256 + 32, 1 << 20}) ==
        "moe_gate_up_q8_0_rows_wide");
  // A part on an 8-byte boundary only: 8-byte units.
  const ExpertSlots shifted{layout, 4, {BufferRange{VK_NULL_HANDLE, 8, 4ull * layout.slot_bytes}}};
  CHECK(moe_product_kernel(caps, shifted, one, false, x) == "moe_gate_up_q8_0_rows_ubo");
  // Float rows are 16-byte units already; q8_0 in 16-byte units and f32 keep fewer rows in flight.
  const ExpertSlotLayout f16 = expert_slot_layout(DType::F16, DType::F16, 2048, 1408);
  CHECK(moe_product_kernel(caps, ExpertSlots{f16, 1, {BufferRange{VK_NULL_HANDLE, 0, f16.slot_bytes}}}, one, false, x) ==
        "moe_gate_up_f16_rows_ubo");
  CHECK(moe_rows_per_invocation(DType::Q8_0, true) == 2);
  CHECK(moe_rows_per_invocation(DType::Q8_0, false) == 4);
  CHECK(moe_rows_per_invocation(DType::Q4_0, true) == 4);
  CHECK(moe_rows_per_invocation(DType::F32, false) == 2);
  CHECK(moe_rows_per_invocation(DType::F16, false) == 4);
  caps.cpu_device = false;
  CHECK(moe_product_kernel(caps, slots, one, false, x) == "moe_gate_up_q8_0_shmem");
}

TEST_CASE_FIXTURE(test::GpuTest, "moe decode and batched: every flavour matches the CPU") {
  check_decode_flavours(ctx, true);
}

// 13 invocations end in a partial subgroup at every subgroup size (see test_linear_limits).
TEST_CASE("moe decode with workgroups that end in a partial subgroup") {
  auto owned = test::context_with_profile(R"({"name": "odd-workgroups", "max_workgroup_invocations": 13})");
  check_decode_flavours(*owned, false);
  test::check_no_validation_messages(*owned, 0);
}

TEST_CASE_FIXTURE(test::GpuTest, "moe slot table: permuted slots, gaps and parts give identical bits") {
  for (MoePath path : {MoePath::Decode, MoePath::Batched}) {
    CAPTURE(int(path));
    const test::MoeProblem p = test::make_moe_problem(DType::Q8_0, DType::Q4_0, 64, 32, 8, 3, 6, 8, 99);
    const test::MoeGpuResult base = test::run_moe(ctx, p, path, test::identity_placement(p));
    check_against_cpu(p, base);

    // Experts scattered over 11 slots in parts of 3 (4 separate bindings), reversed order.
    test::SlotPlacement scattered;
    scattered.n_slots = 11;
    scattered.slots_per_part = 3;
    scattered.slot_of_distinct = {10, 8, 7, 5, 4, 2, 1, 0};
    const test::MoeGpuResult moved = test::run_moe(ctx, p, path, scattered);
    CHECK(moved.out == base.out);
    CHECK(moved.y == base.y);

    // Only the parts that hold a selected expert (what a streaming host dispatches).
    std::vector<uint32_t> needed;
    for (uint32_t id : p.ids) {
      const uint32_t part = scattered.slot_of_distinct[p.data_of(id)] / scattered.slots_per_part;
      if (std::find(needed.begin(), needed.end(), part) == needed.end()) needed.push_back(part);
    }
    CHECK(test::run_moe(ctx, p, path, scattered, needed).out == base.out);
  }
}

TEST_CASE_FIXTURE(test::GpuTest, "moe decode dispatched indirectly: only parts holding a selected expert, same bits") {
  const test::MoeProblem p = test::make_moe_problem(DType::Q8_0, DType::Q4_0, 64, 32, 8, 3, 2, 8, 7);
  // 8 experts over slots 0..10 of 14 in parts of 3: part 4 (slots 12, 13) holds none.
  test::SlotPlacement scattered;
  scattered.n_slots = 14;
  scattered.slots_per_part = 3;
  scattered.slot_of_distinct = {10, 8, 7, 5, 4, 2, 1, 0};
  const test::MoeGpuResult direct = test::run_moe(ctx, p, MoePath::Decode, scattered);
  check_against_cpu(p, direct);
  const test::MoeGpuResult indirect = test::run_moe(ctx, p, MoePath::DecodeIndirect, scattered);
  CHECK(indirect.out == direct.out);
  CHECK(indirect.y == direct.y);
  CHECK(indirect.hidden == direct.hidden);
  // Per part: (K, gate/up groups, T) and (K, down groups, T), K -> 0 where nothing is selected.
  REQUIRE(indirect.part_args.size() == 5 * 6);
  std::vector<bool> selected(5, false);
  for (uint32_t id : p.ids) selected[scattered.slot_of_distinct[p.data_of(id)] / 3] = true;
  CHECK_FALSE(selected[4]);
  for (uint32_t part = 0; part < 5; ++part) {
    CAPTURE(part);
    const uint32_t* a = &indirect.part_args[part * 6];
    CHECK(a[0] == (selected[part] ? p.top_k : 0u));
    CHECK(a[3] == a[0]);
    CHECK(a[2] == p.tokens);
    CHECK(a[5] == p.tokens);
    CHECK(a[1] == indirect.part_args[1]);  // the same grid in every part
    CHECK(a[1] >= 1);
    CHECK(a[4] >= 1);
  }
}

namespace {

// Megrez2's routed experts: D 2048, I 1408, E 64, k 6. Three distinct experts behind the 64
// ids keep host memory small; the slot store is cut into parts when slots of this format do
// not all fit one binding (an f32 slot is 34.6 MB).
test::MoeProblem megrez2_problem(DType dtype, uint32_t tokens, Context& ctx, test::SlotPlacement& place) {
  test::MoeProblem p = test::make_moe_problem(dtype, dtype, 2048, 1408, 64, 6, tokens, 3, 2048);
  place = test::identity_placement(p);
  place.slots_per_part =
      std::min(place.n_slots, expert_slots_per_part(ctx.caps(), expert_slot_layout(dtype, dtype, 2048, 1408)));
  return p;
}

}  // namespace

TEST_CASE_FIXTURE(test::GpuTest, "moe decode at Megrez2 size (D 2048, I 1408, E 64, k 6), every format") {
  for (DType dtype : test::all_weight_formats()) {
    CAPTURE(dtype_name(dtype));
    test::SlotPlacement place;
    const test::MoeProblem p = megrez2_problem(dtype, 1, ctx, place);
    check_against_cpu(p, test::run_moe(ctx, p, MoePath::Decode, place));
  }
}

TEST_CASE_FIXTURE(test::GpuTest, "moe batched == decode at Megrez2 size (q4_0)") {
  // One format only: the batched kernel stages every weight block through shared memory,
  // which lavapipe runs slowly when each expert has a single token (seconds per format).
  test::SlotPlacement place;
  const test::MoeProblem p = megrez2_problem(DType::Q4_0, 1, ctx, place);
  const test::MoeGpuResult decode = test::run_moe(ctx, p, MoePath::Decode, place);
  check_against_cpu(p, decode);
  test::check_close(test::run_moe(ctx, p, MoePath::Batched, place).out, decode.out, "batched out vs decode out");
}

TEST_CASE_FIXTURE(test::GpuTest, "moe combine: weights, shared expert, overwrite or accumulate") {
  const uint32_t tokens = 3, top_k = 4, dim = 70;
  std::mt19937 rng(4);
  const std::vector<float> y = test::random_vector(size_t(tokens) * top_k * dim, 1.0f, rng);
  const std::vector<float> w = test::random_vector(size_t(tokens) * top_k, 1.0f, rng);
  const std::vector<float> shared = test::random_vector(size_t(tokens) * dim, 1.0f, rng);
  const std::vector<float> residual = test::random_vector(size_t(tokens) * dim, 1.0f, rng);
  for (bool with_shared : {false, true}) {
    for (bool accumulate : {false, true}) {
      CAPTURE(with_shared);
      CAPTURE(accumulate);
      Arena arena(ctx, "combine-test", MemoryUse::Device, 1 << 20);
      BufferRange by = test::upload_vector(ctx, arena, y), bw = test::upload_vector(ctx, arena, w);
      BufferRange bs = test::upload_vector(ctx, arena, shared), out = test::upload_vector(ctx, arena, residual);
      CommandBuffer cmd(ctx);
      cmd.begin();
      record_moe_combine(cmd, by, bw, with_shared ? std::optional<BufferRange>(bs) : std::nullopt, out, tokens, top_k,
                         dim, accumulate);
      cmd.submit_and_wait();
      const std::vector<float> got = test::download_vector<float>(ctx, out);
      // The same fp32 operations in the same order as the kernel: bit-exact.
      for (uint32_t t = 0; t < tokens; ++t) {
        for (uint32_t d = 0; d < dim; ++d) {
          volatile float routed = 0.0f;  // volatile: no contraction into fma on the host
          for (uint32_t k = 0; k < top_k; ++k) {
            volatile float term = w[t * top_k + k] * y[(size_t(t) * top_k + k) * dim + d];
            routed = routed + term;
          }
          float expected = routed;
          if (with_shared) expected = expected + shared[t * dim + d];
          if (accumulate) expected = residual[t * dim + d] + expected;
          CHECK(got[t * dim + d] == expected);
        }
      }
    }
  }
}

TEST_CASE_FIXTURE(test::GpuTest, "moe launchers reject bad arguments before recording") {
  Arena arena(ctx, "moe-errors", MemoryUse::Device, 1 << 20);
  BufferRange small = arena.allocate(256), big = arena.allocate(64 << 10);
  CommandBuffer cmd(ctx);
  cmd.begin();
  const ExpertSlotLayout q4 = expert_slot_layout(DType::Q4_0, DType::Q4_0, 48, 32);  // 48 % 32 != 0
  ExpertSlots slots{q4, 1, {arena.allocate(q4.slot_bytes)}};
  CHECK_THROWS_WITH_AS(record_moe_gate_up(cmd, slots, {1, 2, 4, {}}, big, big, big, big), doctest::Contains("multiple of 32"),
                       Error);
  const ExpertSlotLayout f32 = expert_slot_layout(DType::F32, DType::F32, 32, 32);
  ExpertSlots ok{f32, 1, {arena.allocate(f32.slot_bytes)}};
  CHECK_THROWS_WITH_AS(record_moe_down(cmd, ok, {4, 2, 4, {}}, big, big, big, small), doctest::Contains("y binding"),
                       Error);
  CHECK_THROWS_WITH_AS(record_moe_down(cmd, ok, {1, 2, 4, {3}}, big, big, big, big), doctest::Contains("part 3"), Error);
  RouterArgs r{DType::F32, 1, 32, 64, 17, 1, 1, true, 1.0f};
  CHECK_THROWS_WITH_AS(record_router(cmd, r, big, big, big, big, big, big), doctest::Contains("top_k 17"), Error);
  r.top_k = 6;
  r.n_group = 5;
  CHECK_THROWS_WITH_AS(record_router(cmd, r, big, big, big, big, big, big), doctest::Contains("n_group 5"), Error);
  cmd.submit_and_wait();
}
