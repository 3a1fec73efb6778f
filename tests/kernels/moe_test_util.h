#pragma once
// A routed-MoE problem (experts, routing, activations) and its GPU run through
// runtime/ops/moe.h, shared by the MoE kernel tests.
#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include "common/gpu_fixture.h"
#include "reference_moe.h"
#include "runtime/ops/moe.h"

namespace megrez::test {

struct MoeProblem {
  uint32_t dim = 0, inter = 0, n_experts = 0, top_k = 0, tokens = 0;
  DType gate_up = DType::F32, down = DType::F32;
  // Distinct expert weights; expert id e uses distinct[e % distinct.size()] (keeps real-size
  // problems small in host memory while the slot table still spans all n_experts ids).
  std::vector<HostExpert> distinct;
  std::vector<uint32_t> ids;    // [tokens, top_k], distinct per token
  std::vector<float> weights;   // [tokens, top_k]
  std::vector<float> x;         // [tokens, dim]
  std::vector<float> shared;    // [tokens, dim] shared-expert output
  std::vector<float> residual;  // [tokens, dim]

  uint32_t data_of(uint32_t expert) const { return expert % uint32_t(distinct.size()); }
  std::vector<const HostExpert*> expert_of() const {
    std::vector<const HostExpert*> v(n_experts);
    for (uint32_t e = 0; e < n_experts; ++e) v[e] = &distinct[data_of(e)];
    return v;
  }
};

inline MoeProblem make_moe_problem(DType gate_up, DType down, uint32_t dim, uint32_t inter, uint32_t n_experts,
                                   uint32_t top_k, uint32_t tokens, uint32_t n_distinct, uint32_t seed) {
  std::mt19937 rng(seed);
  MoeProblem p;
  p.dim = dim;
  p.inter = inter;
  p.n_experts = n_experts;
  p.top_k = top_k;
  p.tokens = tokens;
  p.gate_up = gate_up;
  p.down = down;
  for (uint32_t i = 0; i < std::min(n_distinct, n_experts); ++i)
    p.distinct.push_back(random_expert(gate_up, down, dim, inter, rng));
  std::vector<uint32_t> all(n_experts);
  std::iota(all.begin(), all.end(), 0u);
  std::uniform_real_distribution<float> weight(0.05f, 1.0f);
  for (uint32_t t = 0; t < tokens; ++t) {
    std::shuffle(all.begin(), all.end(), rng);
    for (uint32_t k = 0; k < top_k; ++k) {
      p.ids.push_back(all[k]);
      p.weights.push_back(weight(rng));
    }
  }
  p.x = random_vector(size_t(tokens) * dim, 1.0f, rng);
  p.shared = random_vector(size_t(tokens) * dim, 0.5f, rng);
  p.residual = random_vector(size_t(tokens) * dim, 2.0f, rng);
  return p;
}

// Where the distinct experts sit in the slot store.
struct SlotPlacement {
  std::vector<uint32_t> slot_of_distinct;
  uint32_t n_slots = 0, slots_per_part = 0;
};

inline SlotPlacement identity_placement(const MoeProblem& p) {
  SlotPlacement s;
  s.n_slots = s.slots_per_part = uint32_t(p.distinct.size());
  s.slot_of_distinct.resize(p.distinct.size());
  std::iota(s.slot_of_distinct.begin(), s.slot_of_distinct.end(), 0u);
  return s;
}

// DecodeIndirect: the decode products dispatched indirectly from record_moe_part_args.
enum class MoePath { Decode, DecodeIndirect, Batched };

struct MoeGpuResult {
  std::vector<float> out;     // residual + routed + shared  [tokens, dim]
  std::vector<float> hidden;  // [tokens, top_k, inter]
  std::vector<float> y;       // [tokens, top_k, dim]
  std::vector<uint32_t> part_args;  // DecodeIndirect: the indirect workgroup counts per part
};

// Runs one MoE layer's routed part on the GPU: products by `path`, then the combine into the
// residual. Each part of the slot store is its own allocation (as in a budgeted cache).
inline MoeGpuResult run_moe(Context& ctx, const MoeProblem& p, MoePath path, const SlotPlacement& place,
                            const std::vector<uint32_t>& parts_to_run = {}, Reduce reduce = Reduce::Auto) {
  const ExpertSlotLayout layout = expert_slot_layout(p.gate_up, p.down, p.dim, p.inter);
  const std::vector<uint8_t> store = pack_slots(p.distinct, place.slot_of_distinct, place.n_slots, layout);
  const uint64_t entries = uint64_t(p.tokens) * p.top_k;
  Arena arena(ctx, "moe-test", MemoryUse::Device, 64 << 20);

  ExpertSlots slots{layout, place.slots_per_part, {}};
  for (uint32_t first = 0; first < place.n_slots; first += place.slots_per_part) {
    const uint32_t n = std::min(place.slots_per_part, place.n_slots - first);
    const size_t begin = size_t(first) * layout.slot_bytes, bytes = size_t(n) * layout.slot_bytes;
    BufferRange part = arena.allocate(bytes);
    upload(ctx, part, std::span<const uint8_t>(store.data() + begin, bytes));
    slots.parts.push_back(part);
  }
  std::vector<uint32_t> table(p.n_experts);
  for (uint32_t e = 0; e < p.n_experts; ++e) table[e] = place.slot_of_distinct[p.data_of(e)];

  BufferRange x = upload_vector(ctx, arena, p.x);
  BufferRange ids = upload_vector(ctx, arena, p.ids);
  BufferRange weights = upload_vector(ctx, arena, p.weights);
  BufferRange slot_table = upload_vector(ctx, arena, table);
  BufferRange shared = upload_vector(ctx, arena, p.shared);
  BufferRange out = upload_vector(ctx, arena, p.residual);
  BufferRange hidden = arena.allocate(entries * p.inter * 4);
  BufferRange y = arena.allocate(entries * p.dim * 4);
  MoeArgs args{p.tokens, p.top_k, p.n_experts, parts_to_run};

  BufferRange part_args;
  CommandBuffer cmd(ctx);
  cmd.begin();
  if (path == MoePath::DecodeIndirect) {
    part_args = arena.allocate(moe_part_args_bytes(slots.parts.size()));
    record_moe_part_args(cmd, slots, args, ids, slot_table, x, hidden, part_args);
    barrier_compute_to_compute(cmd);
    args.indirect = part_args;
  }
  if (path != MoePath::Batched) {
    record_moe_gate_up(cmd, slots, args, x, ids, slot_table, hidden, reduce);
    barrier_compute_to_compute(cmd);
    record_moe_down(cmd, slots, args, hidden, ids, slot_table, y, reduce);
  } else {
    const MoeBatchScratch scratch = allocate_moe_batch_scratch(arena, ctx.caps(), uint32_t(entries), p.n_experts);
    record_moe_sort(cmd, ids, scratch);
    barrier_compute_to_compute(cmd);
    // The flavour picks the batched kernel too: per-invocation, tiled (the reductions), or Auto.
    const MatmulKernel kernel = reduce == Reduce::PerInvocation ? MatmulKernel::Rows
                                : reduce == Reduce::Auto        ? MatmulKernel::Auto
                                                                : MatmulKernel::Tiled;
    record_moe_gate_up_batched(cmd, slots, args, x, slot_table, scratch, hidden, kernel);
    barrier_compute_to_compute(cmd);
    record_moe_down_batched(cmd, slots, args, hidden, slot_table, scratch, y, kernel);
  }
  barrier_compute_to_compute(cmd);
  record_moe_combine(cmd, y, weights, shared, out, p.tokens, p.top_k, p.dim, true);
  cmd.submit_and_wait();
  return {download_vector<float>(ctx, out), download_vector<float>(ctx, hidden), download_vector<float>(ctx, y),
          part_args.buffer ? download_vector<uint32_t>(ctx, part_args) : std::vector<uint32_t>{}};
}

// CPU: residual + moe_token for every token.
inline std::vector<float> moe_reference(const MoeProblem& p) {
  const std::vector<const HostExpert*> expert_of = p.expert_of();
  std::vector<float> out;
  for (uint32_t t = 0; t < p.tokens; ++t) {
    std::vector<float> y = moe_token(expert_of, &p.ids[t * p.top_k], &p.weights[t * p.top_k], p.top_k,
                                     &p.x[size_t(t) * p.dim], &p.shared[size_t(t) * p.dim]);
    for (uint32_t d = 0; d < p.dim; ++d) out.push_back(float(double(p.residual[size_t(t) * p.dim + d]) + double(y[d])));
  }
  return out;
}

// CPU hidden [T, K, inter] of every entry.
inline std::vector<float> hidden_reference(const MoeProblem& p) {
  std::vector<float> all;
  for (uint32_t t = 0; t < p.tokens; ++t) {
    for (uint32_t k = 0; k < p.top_k; ++k) {
      const HostExpert& e = p.distinct[p.data_of(p.ids[t * p.top_k + k])];
      const std::vector<float> h = swiglu_mlp_hidden(e.gate, e.up, &p.x[size_t(t) * p.dim]);
      all.insert(all.end(), h.begin(), h.end());
    }
  }
  return all;
}

inline double rms(const std::vector<float>& v) {
  double s = 0;
  for (float f : v) s += double(f) * double(f);
  return v.empty() ? 0.0 : std::sqrt(s / double(v.size()));
}

// fp32-accumulation tolerance shared by every format (decoding is exact, see weights.glsl):
// NMSE <= 1e-10 and no element off by more than 1e-5 of the vector's RMS.
inline void check_close(const std::vector<float>& got, const std::vector<float>& expected, const char* what) {
  CAPTURE(what);
  REQUIRE(got.size() == expected.size());
  CHECK(nmse(got, expected) <= 1e-10);
  CHECK(max_rel_error(got, expected, rms(expected) + 1e-30) <= 1e-5);
}

}  // namespace megrez::test
