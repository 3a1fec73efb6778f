// One whole MoE layer on the GPU with routing kept on the GPU: router -> routed experts
// (decode and batched products) + shared expert (swiglu_fused, then the dense matvec) ->
// combine into the residual, against the CPU router oracle and plain C++ experts.
#include <algorithm>
#include <numeric>

#include "loader/formats/config.h"
#include "loader/reference/reference_router.h"
#include "moe_test_util.h"

using namespace megrez;
using test::MoePath;

TEST_CASE_FIXTURE(test::GpuTest, "moe layer: GPU router feeds the expert kernels directly") {
  const uint32_t dim = 64, inter = 32, shared_width = 96, experts = 16, top_k = 4, tokens = 5;
  ModelConfig cfg;
  cfg.n_routed_experts = experts;
  cfg.num_experts_per_tok = top_k;
  cfg.n_group = 4;
  cfg.topk_group = 2;
  cfg.norm_topk_prob = true;
  cfg.routed_scaling_factor = 2.5;

  for (MoePath path : {MoePath::Decode, MoePath::Batched}) {
    CAPTURE(int(path));
    std::mt19937 rng(21);
    // Router on the exact grid (reference_moe.cpp) so the expert choice is the oracle's.
    const test::HostMatrix router = test::exact_matrix(DType::F32, experts, dim, rng);
    const std::vector<float> bias = test::random_vector(experts, 0.05f, rng);
    const std::vector<float> pre_gate = test::exact_inputs(size_t(tokens) * dim, rng);
    test::MoeProblem p = test::make_moe_problem(DType::Q4_0, DType::Q8_0, dim, inter, experts, top_k, tokens, experts, 5);
    const test::HostMatrix shared_gate = test::random_matrix(DType::BF16, shared_width, dim, 0.25f, rng);
    const test::HostMatrix shared_up = test::random_matrix(DType::BF16, shared_width, dim, 0.25f, rng);
    const test::HostMatrix shared_down = test::random_matrix(DType::BF16, dim, shared_width, 0.2f, rng);

    // CPU: routing from the oracle, shared MLP, experts.
    TensorView bias_view{"bias", DType::F32, {experts}, {reinterpret_cast<const uint8_t*>(bias.data()), bias.size() * 4}};
    p.ids.clear();
    p.weights.clear();
    p.shared.clear();
    for (uint32_t t = 0; t < tokens; ++t) {
      const RouteResult r = route(std::span(pre_gate).subspan(size_t(t) * dim, dim), router.view("router"), bias_view, cfg);
      p.ids.insert(p.ids.end(), r.ids.begin(), r.ids.end());
      p.weights.insert(p.weights.end(), r.weights.begin(), r.weights.end());
      const std::vector<float> h = test::swiglu_mlp_hidden(shared_gate, shared_up, &p.x[size_t(t) * dim]);
      const std::vector<float> y = test::matvec(shared_down, h.data());
      p.shared.insert(p.shared.end(), y.begin(), y.end());
    }
    const std::vector<float> expected = test::moe_reference(p);

    // GPU: nothing of the routing goes through the host.
    Arena arena(ctx, "moe-layer", MemoryUse::Device, 16 << 20);
    const ExpertSlotLayout layout = expert_slot_layout(p.gate_up, p.down, dim, inter);
    std::vector<uint32_t> slot_of(experts);
    std::iota(slot_of.begin(), slot_of.end(), 0u);
    std::reverse(slot_of.begin(), slot_of.end());
    ExpertSlots slots{layout, experts, {test::upload_vector(ctx, arena, test::to_words(test::pack_slots(p.distinct, slot_of, experts, layout)))}};
    std::vector<uint8_t> shared_gate_up = shared_gate.bytes;
    shared_gate_up.insert(shared_gate_up.end(), shared_up.bytes.begin(), shared_up.bytes.end());
    BufferRange w_router = test::upload_vector(ctx, arena, test::to_words(router.bytes));
    BufferRange w_bias = test::upload_vector(ctx, arena, bias);
    BufferRange w_shared_gate_up = test::upload_vector(ctx, arena, test::to_words(shared_gate_up));
    BufferRange w_shared_down = test::upload_vector(ctx, arena, test::to_words(shared_down.bytes));
    BufferRange pg = test::upload_vector(ctx, arena, pre_gate);
    BufferRange x = test::upload_vector(ctx, arena, p.x);
    BufferRange table = test::upload_vector(ctx, arena, slot_of);
    BufferRange out = test::upload_vector(ctx, arena, p.residual);
    BufferRange ids = arena.allocate(tokens * top_k * 4), weights = arena.allocate(tokens * top_k * 4);
    BufferRange scores = arena.allocate(tokens * experts * 4);
    BufferRange shared_h = arena.allocate(tokens * shared_width * 4), shared_y = arena.allocate(tokens * dim * 4);
    BufferRange hidden = arena.allocate(tokens * top_k * inter * 4), y = arena.allocate(tokens * top_k * dim * 4);
    const MoeArgs args{tokens, top_k, experts, {}};

    CommandBuffer cmd(ctx);
    cmd.begin();
    record_router(cmd, {DType::F32, tokens, dim, experts, top_k, 4, 2, true, 2.5f}, pg, w_router, w_bias, ids, weights,
                  scores);
    record_swiglu_fused(cmd, {DType::BF16, tokens, dim, shared_width, 0, uint32_t(shared_gate.bytes.size())},
                        w_shared_gate_up, x, shared_h);
    barrier_compute_to_compute(cmd);
    record_matmul(cmd, DType::BF16, w_shared_down, shared_h, shared_y,
                  abi::MatmulPush{dim, shared_width, tokens, 0, 0, shared_width, 0, dim, 0});
    if (path == MoePath::Decode) {
      record_moe_gate_up(cmd, slots, args, x, ids, table, hidden);
      barrier_compute_to_compute(cmd);
      record_moe_down(cmd, slots, args, hidden, ids, table, y);
    } else {
      const MoeBatchScratch scratch = allocate_moe_batch_scratch(arena, ctx.caps(), tokens * top_k, experts);
      record_moe_sort(cmd, ids, scratch);
      barrier_compute_to_compute(cmd);
      record_moe_gate_up_batched(cmd, slots, args, x, table, scratch, hidden);
      barrier_compute_to_compute(cmd);
      record_moe_down_batched(cmd, slots, args, hidden, table, scratch, y);
    }
    barrier_compute_to_compute(cmd);
    record_moe_combine(cmd, y, weights, shared_y, out, tokens, top_k, dim, true);
    cmd.submit_and_wait();

    CHECK(test::download_vector<uint32_t>(ctx, ids) == p.ids);
    CHECK(test::max_rel_error(test::download_vector<float>(ctx, weights), p.weights, 0.0) <= 1e-6);
    test::check_close(test::download_vector<float>(ctx, out), expected, "layer output");
  }
}
