#pragma once
// Host side of the MoE kernels (shaders/router.comp, swiglu.comp, moe_matvec.comp,
// moe_matmul.comp, moe_sort.comp, moe_combine.comp). Each record_* function checks its
// arguments against the bound ranges (megrez::Error naming the kernel, expected vs got),
// picks the variant and launch shape from DeviceCaps and records the dispatches into `cmd`.
// Callers put barrier_compute_to_compute() between dependent calls; none is inserted here.
//
// One MoE layer, decode (T = 1) or any T, everything on the GPU:
//   record_router(pre_gate -> ids, weights)                      [layer i-1's h2, pre-gating]
//   record_swiglu_fused(shared gate/up, h2 -> shared_h); record_matvec(shared down -> shared_y)
//   record_moe_gate_up(slots, h2, ids, table -> h [T, K, inter])
//   record_moe_down(slots, h, ids, table -> y [T, K, dim])
//   record_moe_combine(y, weights, shared_y -> x += ...)
// Batched (prefill chunk): record_moe_sort(ids -> grouping), then record_moe_gate_up_batched
// and record_moe_down_batched in place of the two decode products; the combine is the same.
#include <cstdint>
#include <optional>
#include <vector>

#include "loader/tensor.h"
#include "runtime/ops/linear.h"  // Reduce
#include "runtime/vk/dispatch.h"

namespace megrez {

struct DeviceCaps;

// ---- Router -----------------------------------------------------------------------------
struct RouterArgs {
  DType weight_type = DType::F32;  // router weight [n_experts, dim]
  uint32_t tokens = 0, dim = 0;
  uint32_t n_experts = 0;          // <= 256
  uint32_t top_k = 0;              // <= 16
  uint32_t n_group = 1, topk_group = 1;
  bool norm_topk_prob = true;
  float routed_scaling_factor = 1.0f;
};
// pre_gate [tokens, dim] f32, weight [n_experts, dim], bias [n_experts] f32 ->
// ids [tokens, top_k] u32 (best biased score first), weights [tokens, top_k] f32,
// scores [tokens, n_experts] f32 (unbiased sigmoid scores; for checks and statistics).
void record_router(CommandBuffer& cmd, const RouterArgs& args, const BufferRange& pre_gate, const BufferRange& weight,
                   const BufferRange& bias, const BufferRange& ids, const BufferRange& weights,
                   const BufferRange& scores, Reduce reduce = Reduce::Auto);

// ---- SwiGLU -----------------------------------------------------------------------------
// hidden[i] = silu(gate[i]) * up[i], i < count.
void record_swiglu(CommandBuffer& cmd, const BufferRange& gate, const BufferRange& up, const BufferRange& hidden,
                   uint32_t count);

struct SwigluFusedArgs {
  DType weight_type = DType::F32;
  uint32_t tokens = 0, dim = 0, inter = 0;
  uint32_t gate_offset = 0, up_offset = 0;  // byte offsets of gate and up [inter, dim] in `weights`
};
// hidden [tokens, inter] = silu(gate x) * (up x), x [tokens, dim]: gate and up in ONE binding.
void record_swiglu_fused(CommandBuffer& cmd, const SwigluFusedArgs& args, const BufferRange& weights,
                         const BufferRange& x, const BufferRange& hidden, Reduce reduce = Reduce::Auto);

// ---- Expert slots (layout: shaders/abi/moe.h) ---------------------------------------------
struct ExpertSlotLayout {
  DType gate_up = DType::F32, down = DType::F32;
  uint32_t dim = 0, inter = 0;
  uint32_t gate_offset = 0, up_offset = 0, down_offset = 0;  // bytes inside a slot
  uint32_t slot_bytes = 0;                                   // slot stride
};
// gate, up, down back to back, each 16-byte aligned; slot stride a multiple of 256 bytes.
ExpertSlotLayout expert_slot_layout(DType gate_up, DType down, uint32_t dim, uint32_t inter);
// Whole slots per binding on this device (>= 1; megrez::Error when one slot is too large).
uint32_t expert_slots_per_part(const DeviceCaps& caps, const ExpertSlotLayout& layout);

// The slot store as the kernels see it: parts[p] holds global slots
// p * slots_per_part .. (p + 1) * slots_per_part - 1 (the last part may hold fewer).
struct ExpertSlots {
  ExpertSlotLayout layout;
  uint32_t slots_per_part = 0;
  std::vector<BufferRange> parts;
};

struct MoeArgs {
  uint32_t tokens = 0;     // T
  uint32_t top_k = 0;      // K
  uint32_t n_experts = 0;  // slot-table entries
  // Parts to dispatch: empty = all (the ids are on the GPU), or only those holding selected
  // experts when the host knows them (streaming mode).
  std::vector<uint32_t> parts;
  // Decode products only, with `parts` empty: the workgroup counts record_moe_part_args wrote
  // for these slots and args (a barrier before); each part is dispatched indirectly from
  // them, so parts without a selected expert launch nothing. Unset (no buffer): direct.
  BufferRange indirect = {};
};

// Whether the per-invocation flavour (Reduce::PerInvocation, variants *_rows) can read the
// gate/up (`down` false) or down matrices of these slots with this input: every row of every
// slot of every part starts on its 16- or 8-byte unit, the input on a vec4
// (rows_per_invocation_fit, ops/linear.h).
bool expert_rows_fit(const ExpertSlots& slots, bool down, const BufferRange& input);
// The variant record_moe_gate_up / record_moe_down launch for `args` over `input`:
// reduce_variant's choice; "_rows_wide" (16-byte units in 8-block steps, as
// matvec_<q>_rows_wide) for quantized rows of whole 256-column steps where the slot stride,
// the parts and the matrices all lie on 16-byte boundaries; either + "_ubo" where the input
// read fits row_input_uniform_fit.
std::string moe_product_kernel(const DeviceCaps& caps, const ExpertSlots& slots, const MoeArgs& args, bool down,
                               const BufferRange& input, Reduce reduce = Reduce::Auto);
// Bytes of the indirect arguments record_moe_part_args writes for a store of `parts` parts.
uint64_t moe_part_args_bytes(size_t parts);
// args_out = for each part of `slots`, the workgroup counts record_moe_gate_up (over x) and
// record_moe_down (over hidden) launch there for `args` (Reduce::Auto, args.indirect unset),
// with none where no expert ids[] selects has its slot in that part (abi/moe_part_args.h).
// Pass the range as MoeArgs::indirect to the products after a barrier.
void record_moe_part_args(CommandBuffer& cmd, const ExpertSlots& slots, const MoeArgs& args, const BufferRange& ids,
                          const BufferRange& slot_table, const BufferRange& x, const BufferRange& hidden,
                          const BufferRange& args_out);
// Rows per matrix one invocation of the per-invocation decode products sums (abi/moe.h).
uint32_t moe_rows_per_invocation(DType weights, bool wide);

// h [T, K, inter] = silu(G_e x) * (U_e x), e = ids[t, k] via slot_table [n_experts] u32.
void record_moe_gate_up(CommandBuffer& cmd, const ExpertSlots& slots, const MoeArgs& args, const BufferRange& x,
                        const BufferRange& ids, const BufferRange& slot_table, const BufferRange& hidden,
                        Reduce reduce = Reduce::Auto);
// y [T, K, dim] = D_e h[t, k].
void record_moe_down(CommandBuffer& cmd, const ExpertSlots& slots, const MoeArgs& args, const BufferRange& hidden,
                     const BufferRange& ids, const BufferRange& slot_table, const BufferRange& y,
                     Reduce reduce = Reduce::Auto);

// out [T, dim] = (accumulate ? out : 0) + sum_k weights[t, k] * y[t, k] (+ shared [T, dim]).
void record_moe_combine(CommandBuffer& cmd, const BufferRange& y, const BufferRange& weights,
                        const std::optional<BufferRange>& shared, const BufferRange& out, uint32_t tokens,
                        uint32_t top_k, uint32_t dim, bool accumulate);

// ---- Batched experts ------------------------------------------------------------------------
struct MoeMatmulShape {
  uint32_t tile_rows = 0, tile_tokens = 0;      // output tile of one workgroup (rows x entries)
  uint32_t thread_rows = 0, thread_tokens = 0;  // register tile of one invocation
  uint32_t workgroup() const { return (tile_rows / thread_rows) * (tile_tokens / thread_tokens); }
  // gate and up weight tiles plus the input tile, 32 columns deep, padded by one.
  uint32_t shared_bytes() const { return (2u * 32u * (tile_rows + 1u) + 32u * (tile_tokens + 1u) + tile_tokens) * 4u; }
};
MoeMatmulShape moe_matmul_shape(const DeviceCaps& caps);

// Scratch of the grouping for `entries` = T * K entries.
struct MoeBatchScratch {
  BufferRange expert_offsets;  // [n_experts + 1] u32
  BufferRange sorted;          // [entries] u32
  BufferRange tiles;           // [1 + 3 * max_tiles] u32
  uint32_t entries = 0, n_experts = 0, tile_tokens = 0, max_tiles = 0;
};
uint32_t moe_max_tiles(uint32_t entries, uint32_t n_experts, uint32_t tile_tokens);
// Allocates the scratch from `arena` sized for the device's tile shape.
MoeBatchScratch allocate_moe_batch_scratch(Arena& arena, const DeviceCaps& caps, uint32_t entries, uint32_t n_experts);

// Groups ids [entries] by expert into `scratch` (one workgroup).
void record_moe_sort(CommandBuffer& cmd, const BufferRange& ids, const MoeBatchScratch& scratch);
// Same products as record_moe_gate_up / record_moe_down (same output layout), per expert over
// its tokens; needs record_moe_sort's output (after a barrier). `kernel` as for record_matmul:
// Auto takes the per-invocation variant (*_mm_<fmt>_rows) where caps.sum_rows_per_invocation()
// and expert_rows_fit.
void record_moe_gate_up_batched(CommandBuffer& cmd, const ExpertSlots& slots, const MoeArgs& args,
                                const BufferRange& x, const BufferRange& slot_table, const MoeBatchScratch& scratch,
                                const BufferRange& hidden, MatmulKernel kernel = MatmulKernel::Auto);
void record_moe_down_batched(CommandBuffer& cmd, const ExpertSlots& slots, const MoeArgs& args,
                             const BufferRange& hidden, const BufferRange& slot_table,
                             const MoeBatchScratch& scratch, const BufferRange& y,
                             MatmulKernel kernel = MatmulKernel::Auto);

}  // namespace megrez
