#pragma once
// A Megrez2 model's weights in device memory (resident mode), as plain structs with shape
// comments (llama2.c style). Every tensor keeps the format it was stored in; the kernels
// decode it. Three layout decisions follow from the kernels and from phone limits:
//   - the embedding and lm_head are split by rows so no binding exceeds caps.max_storage_range
//     (Megrez2's 128880 x 2048 tables do at any precision above ~3.9 bits);
//   - a SwiGLU MLP's gate and up share one binding (gate at 0, up at up_offset) where it fits,
//     because the fused decode kernel (swiglu_fused_<fmt>) reads both from one buffer; the
//     attention's wq, wk and wv are one matrix where they fit (one product, not three);
//   - routed experts live in "slots" of one layout (gate, up, down back to back) in a slot
//     store cut into parts of whole slots, with an expert id -> slot table per pool
//     (shaders/abi/moe.h). Resident mode fills slot e with expert e; streaming reuses the same
//     kernels with a smaller store and a changing table.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "loader/formats/config.h"
#include "loader/tensor.h"
#include "loader/weights.h"
#include "runtime/ops/moe.h"
#include "runtime/vk/memory.h"

namespace megrez {

class Context;
struct DeviceCaps;

struct DeviceTensor {             // a matrix [rows, cols] or a vector [cols] (rows = 1)
  DType dtype = DType::F32;
  uint32_t rows = 0, cols = 0;
  BufferRange range;              // the stored bytes, padded with zeros to a multiple of 4
};

struct DeviceSplitTensor {        // a matrix [rows, cols] stored as parts of whole rows
  DType dtype = DType::F32;
  uint32_t rows = 0, cols = 0;
  std::vector<BufferRange> parts;  // each <= max_storage_range, size a multiple of 4
  std::vector<uint32_t> first_row; // row index of each part's first row
};

struct DeviceMlp {                // SwiGLU: down( silu(gate x) * (up x) )
  DeviceTensor gate;              // [inter, dim]
  DeviceTensor up;                // [inter, dim] (same format as gate)
  DeviceTensor down;              // [dim, inter]
  // gate and up as ONE binding (gate at byte 0, up at up_offset), for the fused decode kernel;
  // absent when the pair exceeds the device's largest binding (then gate and up are separate).
  std::optional<BufferRange> gate_up;
  uint32_t up_offset = 0;
};

struct DeviceExpertPool {         // the routed experts one group of layers shares
  uint32_t n_experts = 0;
  ExpertSlots slots;              // formats, layout, parts: slot s holds [gate I x D, up I x D, down D x I]
  BufferRange slot_table;         // uint [n_experts]: expert id -> global slot (identity when resident)
};

struct DeviceLayer {
  DeviceTensor attn_norm;         // [D] f32
  DeviceTensor wq;                // [H*Dh, D]
  DeviceTensor wk;                // [Hkv*Dh, D]
  DeviceTensor wv;                // [Hkv*Dh, D]
  // wq, wk and wv as ONE matrix [H*Dh + 2*Hkv*Dh, D] (their rows back to back) where they
  // share a format and fit one binding, so one product computes q, k and v; wq, wk and wv
  // then keep their shapes but no ranges of their own.
  std::optional<DeviceTensor> wqkv;
  DeviceTensor wo;                // [D, H*Dh]
  DeviceTensor ffn_norm;          // [D] f32
  DeviceMlp mlp;                  // dense layers: width intermediate_size; MoE layers: the shared
                                  // experts, width n_shared * moe_intermediate
  DeviceTensor router;            // [E, D]  MoE layers only
  DeviceTensor router_bias;       // [E] f32 MoE layers only
  int pool = -1;                  // index into DeviceWeights::pools, -1 for dense layers
};

class DeviceWeights {
 public:
  // Uploads every weight. Throws megrez::Error naming the tensor when one cannot be bound
  // (too large for one binding, unsupported shape) or when device memory runs out.
  // resident_experts false (streaming): routed experts stay in the file; pools then carry only
  // their expert count and slot layout (no parts, no slot table).
  DeviceWeights(Context& ctx, const ModelConfig& config, const ModelWeights& weights, bool resident_experts = true);

  // Device bytes the weights will take on this device (alignment included), without
  // allocating anything: what the engine compares with the device's memory first.
  static uint64_t bytes_needed(const DeviceCaps& caps, const ModelConfig& config, const ModelWeights& weights,
                               bool resident_experts = true);

  DeviceSplitTensor token_embd;   // [vocab, D]
  DeviceTensor output_norm;       // [D] f32
  DeviceSplitTensor output;       // [vocab, D] lm_head (the same parts as token_embd when tied)
  std::vector<DeviceLayer> layers;          // [L]
  std::vector<DeviceExpertPool> pools;      // [n_pools]
  BufferRange rope_table;         // rope_frequency_table(rope_theta, head_dim)

  uint64_t bytes() const { return arena_.used(); }

 private:
  Arena arena_;
};

}  // namespace megrez
