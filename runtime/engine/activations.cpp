#include "runtime/engine/activations.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "loader/error.h"
#include "runtime/ops/attention.h"
#include "runtime/ops/linear.h"
#include "runtime/vk/context.h"

namespace megrez {

namespace {

// Every device buffer of Activations with its size in bytes: one list for sizing and allocating.
std::vector<std::pair<BufferRange Activations::*, uint64_t>> device_buffers(const DeviceCaps& caps,
                                                                            const ModelConfig& c, uint64_t T,
                                                                            uint32_t context_length) {
  const uint64_t D = c.hidden_size, Dh = c.head_dim, H = c.num_attention_heads, Hkv = c.num_key_value_heads;
  const uint64_t F = std::max<uint64_t>(c.intermediate_size, c.shared_width());
  const uint64_t K = std::max<int64_t>(c.num_experts_per_tok, 1), E = std::max<int64_t>(c.n_routed_experts, 1);
  const uint64_t I = std::max<int64_t>(c.moe_intermediate_size, 1);
  const AttentionShape shape{uint32_t(H), uint32_t(Hkv), uint32_t(Dh)};
  return {
      {&Activations::x, T * D * 4},
      {&Activations::h, T * D * 4},
      {&Activations::h2_even, T * D * 4},
      {&Activations::h2_odd, T * D * 4},
      {&Activations::qkv, T * (H + 2 * Hkv) * Dh * 4},
      {&Activations::attn, T * H * Dh * 4},
      {&Activations::partials, attention_decode_max_partials_bytes(caps, shape, context_length)},
      {&Activations::mlp_gate, T * F * 4},
      {&Activations::mlp_up, T * F * 4},
      {&Activations::mlp_h, T * F * 4},
      {&Activations::mlp_out, T * D * 4},
      {&Activations::route_ids_even, T * K * 4},
      {&Activations::route_ids_odd, T * K * 4},
      {&Activations::route_w_even, T * K * 4},
      {&Activations::route_w_odd, T * K * 4},
      {&Activations::part_args_even, moe_part_args_bytes(E)},  // a part holds at least one expert
      {&Activations::part_args_odd, moe_part_args_bytes(E)},
      {&Activations::route_scores, T * E * 4},
      {&Activations::expert_h, T * K * I * 4},
      {&Activations::expert_y, T * K * D * 4},
      {&Activations::argmax_partials, argmax_partials_bytes(caps, uint32_t(c.vocab_size))},
  };
}

uint64_t aligned(const DeviceCaps& caps, uint64_t bytes) {
  const uint64_t a = std::max<uint64_t>(caps.storage_offset_alignment, 4);
  return (bytes + a - 1) / a * a;
}

uint64_t moe_scratch_bytes(const DeviceCaps& caps, const ModelConfig& c, uint64_t T) {
  const uint64_t entries = T * std::max<int64_t>(c.num_experts_per_tok, 1);
  const uint64_t E = std::max<int64_t>(c.n_routed_experts, 1);
  const uint32_t tiles = moe_max_tiles(uint32_t(entries), uint32_t(E), moe_matmul_shape(caps).tile_tokens);
  return aligned(caps, (E + 1) * 4) + aligned(caps, entries * 4) + aligned(caps, (1 + 3 * uint64_t{tiles}) * 4);
}

}  // namespace

uint64_t Activations::bytes_needed(const Context& ctx, const ModelConfig& config, uint32_t tokens,
                                   uint32_t context_length) {
  const DeviceCaps& caps = ctx.caps();
  uint64_t total = moe_scratch_bytes(caps, config, tokens) + aligned(caps, uint64_t(config.vocab_size) * 4);
  for (const auto& [member, bytes] : device_buffers(caps, config, tokens, context_length)) total += aligned(caps, bytes);
  return total;
}

Activations::Activations(Context& ctx, const ModelConfig& config, uint32_t tokens_, uint32_t context_length)
    : tokens(tokens_), ctx_(ctx), vocab_(uint32_t(config.vocab_size)) {
  const DeviceCaps& caps = ctx.caps();
  const auto buffers = device_buffers(caps, config, tokens, context_length);
  for (const auto& [member, bytes] : buffers) {
    if (bytes > caps.max_storage_range) {
      throw Error("activations: a buffer of " + format_bytes(bytes) + " for " + std::to_string(tokens) +
                  " tokens exceeds the device's largest binding (" + format_bytes(caps.max_storage_range) +
                  "); use a smaller prefill chunk");
    }
  }
  device_ = std::make_unique<Arena>(ctx, "activations", MemoryUse::Device,
                                    bytes_needed(ctx, config, tokens, context_length));
  for (const auto& [member, bytes] : buffers) this->*member = device_->allocate(bytes);
  if (config.n_routed_experts > 0) {
    moe_batch = allocate_moe_batch_scratch(*device_, caps, tokens * uint32_t(config.num_experts_per_tok),
                                           uint32_t(config.n_routed_experts));
  }
  host_ = std::make_unique<Arena>(ctx, "activations-host", MemoryUse::Readback, 64 << 10);
  ids = host_->allocate(uint64_t{tokens} * 4);
  const uint64_t id_bytes = uint64_t{tokens} * uint64_t(std::max<int64_t>(config.num_experts_per_tok, 1)) * 4;
  route_ids_host_even = route_ids_even.host_visible() ? route_ids_even : host_->allocate(id_bytes);
  route_ids_host_odd = route_ids_odd.host_visible() ? route_ids_odd : host_->allocate(id_bytes);
  for (BufferRange& r : argmax_results) r = host_->allocate(8);
  reserve_logit_rows(1);
}

Activations::~Activations() = default;

void Activations::reserve_logit_rows(uint32_t rows) {
  if (rows <= logit_rows_) return;
  const uint64_t bytes = uint64_t{rows} * vocab_ * 4;
  if (bytes > ctx_.caps().max_storage_range) {
    throw Error("activations: " + std::to_string(rows) + " rows of logits (" + format_bytes(bytes) +
                ") exceed the device's largest binding");
  }
  // Everything new is allocated before anything old is let go: a failed allocation leaves
  // the current buffers in place and in use.
  auto device = std::make_unique<Arena>(ctx_, "logits", MemoryUse::Device, bytes);
  const BufferRange new_logits = device->allocate(bytes);
  std::unique_ptr<Arena> readback;
  BufferRange new_host = new_logits;  // unified memory: read the device buffer directly
  if (!new_logits.host_visible()) {
    readback = std::make_unique<Arena>(ctx_, "logits-readback", MemoryUse::Readback, bytes);
    new_host = readback->allocate(bytes);
  }
  logits_device_ = std::move(device);
  logits_readback_ = std::move(readback);
  logits = new_logits;
  logits_host = new_host;
  logit_rows_ = rows;
}

}  // namespace megrez
