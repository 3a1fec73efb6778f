#pragma once
// The forward pass's working buffers ("State" in llama2.c terms), sized once for the largest
// pass (`tokens` rows: the prefill chunk) and reused by every pass. Shapes per pass of
// T <= tokens rows; D hidden, H heads, Hkv kv heads, Dh head dim, F the widest SwiGLU (dense
// intermediate or fused shared experts), E routed experts, K experts per token, I one
// expert's width, V vocabulary.
#include <array>
#include <cstdint>
#include <memory>

#include "loader/formats/config.h"
#include "runtime/ops/moe.h"
#include "runtime/vk/memory.h"

namespace megrez {

class Context;

struct Activations {
  Activations(Context& ctx, const ModelConfig& config, uint32_t tokens, uint32_t context_length);
  ~Activations();

  // Device bytes the buffers take (alignment included), for the engine's memory check.
  static uint64_t bytes_needed(const Context& ctx, const ModelConfig& config, uint32_t tokens,
                               uint32_t context_length);

  // Buffers for `rows` positions of logits at once (prefill returning every position's
  // logits); allocated on first use, reused while `rows` does not grow.
  void reserve_logit_rows(uint32_t rows);
  uint32_t logit_rows() const { return logit_rows_; }

  const BufferRange& h2(int64_t layer) const { return layer % 2 == 0 ? h2_even : h2_odd; }
  // Layer i's router runs before layer i-1's experts are combined, so ids and weights
  // alternate between two buffers by layer parity too.
  const BufferRange& route_ids(int64_t layer) const { return layer % 2 == 0 ? route_ids_even : route_ids_odd; }
  const BufferRange& route_w(int64_t layer) const { return layer % 2 == 0 ? route_w_even : route_w_odd; }
  // Resident decode over slot stores of several parts: the experts' indirect workgroup counts
  // (record_moe_part_args), written with the ids one layer ahead.
  const BufferRange& part_args(int64_t layer) const { return layer % 2 == 0 ? part_args_even : part_args_odd; }
  // Where the host reads a layer's ids (streaming): route_ids itself on unified memory.
  const BufferRange& route_ids_host(int64_t layer) const {
    return layer % 2 == 0 ? route_ids_host_even : route_ids_host_odd;
  }

  uint32_t tokens;          // rows every [T, ...] buffer holds

  BufferRange x;            // f32 [T, D]       the residual stream
  BufferRange h;            // f32 [T, D]       RMSNorm(x) before attention and before lm_head
  BufferRange h2_even;      // f32 [T, D]       post-attention norm of even layers
  BufferRange h2_odd;       // f32 [T, D]       ... and odd ones: layer i-1's is layer i's pre-gate
  BufferRange qkv;          // f32 [T, H*Dh + 2*Hkv*Dh]  one row per token: q | k | v (one
                            //                  product of DeviceLayer::wqkv writes all three)
  BufferRange attn;         // f32 [T, H*Dh]    attention output before Wo
  BufferRange partials;     // f32              split-K decode partials for the longest context
  BufferRange mlp_gate;     // f32 [T, F]       prefill only (decode fuses gate, up and silu)
  BufferRange mlp_up;       // f32 [T, F]
  BufferRange mlp_h;        // f32 [T, F]       silu(gate) * up
  BufferRange mlp_out;      // f32 [T, D]       dense MLP or shared-expert output
  BufferRange route_ids_even, route_ids_odd;  // u32 [T, K]  the router's expert ids (route_ids())
  BufferRange route_w_even, route_w_odd;      // f32 [T, K]  their weights (route_w())
  BufferRange part_args_even, part_args_odd;  // u32 [parts <= E][6] (part_args())
  BufferRange route_scores; // f32 [T, E]       sigmoid scores
  BufferRange expert_h;     // f32 [T, K, I]    silu(gate_e x) * (up_e x) per (token, choice)
  BufferRange expert_y;     // f32 [T, K, D]    down_e expert_h
  MoeBatchScratch moe_batch;// prefill: entries grouped by expert
  BufferRange logits;       // f32 [logit_rows, V] device
  BufferRange argmax_partials;
  // Host-visible: the host writes ids before a submission and reads results after it.
  BufferRange ids;          // u32 [T]
  BufferRange logits_host;  // f32 [logit_rows, V] (the same memory as `logits` on unified memory)
  // u32 [2] each: index, value bits. Two, so that a chained greedy pass (TokenIo) writes one
  // while the host reads the other.
  std::array<BufferRange, 2> argmax_results;
  BufferRange route_ids_host_even, route_ids_host_odd;  // u32 [T, K] (route_ids_host())

 private:
  Context& ctx_;
  uint32_t vocab_;
  uint32_t logit_rows_ = 0;
  std::unique_ptr<Arena> device_, host_, logits_device_, logits_readback_;
};

}  // namespace megrez
