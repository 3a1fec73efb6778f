#pragma once
// Recording the attention kernels: RoPE, the fused RoPE + KV-cache store, split-K decode
// attention (+ combine) and causal prefill attention. Each record_* function checks its
// arguments against the buffers (megrez::Error naming the kernel and the mismatch), picks
// the variant and tile shape from DeviceCaps, and records the dispatches into `cmd`.
// Callers add barriers between dependent calls (record_attention_decode puts one between
// its own two dispatches).
//
// KV cache (one layer): two buffers, K and V, each [rows][kv_heads * head_dim] elements.
// KvType::F32 stores floats; KvType::F16 stores IEEE halves packed two per 32-bit word, the
// even element in the low half (GLSL packHalf2x16), so no 16-bit storage feature is needed.
// Cache row p holds the token at position p (K already rotated by RoPE).
#include <cstdint>
#include <vector>

#include "runtime/vk/commands.h"
#include "runtime/vk/device_caps.h"
#include "runtime/vk/memory.h"

namespace megrez {

enum class KvType { F32, F16 };

struct AttentionShape {
  uint32_t q_heads = 0;   // H
  uint32_t kv_heads = 0;  // Hkv; q head j reads kv head j / (H / Hkv)
  uint32_t head_dim = 0;  // Dh, even
};

// Bytes of one cache row (all kv heads of one position) for `type`.
VkDeviceSize kv_cache_row_bytes(KvType type, uint32_t kv_heads, uint32_t head_dim);

// The RoPE frequency table rope and kv_store read (binding "table"), head_dim / 2 entries
// of two words: the turns per position g_i = theta^(-2i/head_dim) / (2 pi) as a 64-bit
// fixed-point fraction (low word, high word). Computed in long double, so angles stay
// accurate to ~1e-7 rad at any position (see shaders/common/rope_angle.glsl).
std::vector<uint32_t> rope_frequency_table(double theta, uint32_t head_dim);

// ---- RoPE (in place) -------------------------------------------------------------------
struct RopeArgs {
  uint32_t tokens = 0;
  uint32_t heads = 0;
  uint32_t head_dim = 0;
  uint32_t offset = 0;      // element index of head 0 of token 0 in x
  uint32_t row_stride = 0;  // elements between tokens (e.g. heads * head_dim)
  uint32_t pos0 = 0;        // position of token 0; token t sits at pos0 + t
};
// x: floats, rotated in place; table: rope_frequency_table(theta, head_dim).
void record_rope(CommandBuffer& cmd, const BufferRange& x, const BufferRange& table, const RopeArgs& args);

// ---- RoPE(K) + KV cache store ------------------------------------------------------------
struct KvStoreArgs {
  KvType type = KvType::F32;
  uint32_t tokens = 0;
  uint32_t kv_heads = 0;
  uint32_t head_dim = 0;
  uint32_t pos0 = 0;            // cache row and RoPE position of token 0
  uint32_t k_offset = 0;        // element index of K head 0 of token 0 in k_src
  uint32_t v_offset = 0;        // element index of V head 0 of token 0 in v_src
  uint32_t src_row_stride = 0;  // elements between tokens in k_src and v_src
  // q_heads > 0: the same dispatch applies RoPE to that many q heads in place (record_rope's
  // work); they sit in k_src's buffer from element q_offset, with src_row_stride, apart from K
  // and V (the fused QKV rows).
  uint32_t q_heads = 0;
  uint32_t q_offset = 0;
};
// k_src, v_src: floats (may be the same fused QKV buffer); caches: `type` rows as above.
void record_kv_store(CommandBuffer& cmd, const BufferRange& k_src, const BufferRange& v_src,
                     const BufferRange& table, const BufferRange& k_cache, const BufferRange& v_cache,
                     const KvStoreArgs& args);

// ---- Decode: one query token, split-K over the context -----------------------------------
enum class Reduction { Auto, Subgroup, Shmem };  // Auto: DeviceCaps::use_subgroup_reduce()

struct DecodePlan {
  uint32_t workgroup = 0;   // invocations = keys per tile
  uint32_t head_block = 0;  // query heads per workgroup (<= H / Hkv)
  uint32_t chunk = 0;       // cache rows per split
  uint32_t splits = 0;      // (splits - 1) * chunk < n_ctx <= splits * chunk
  Reduction reduction = Reduction::Auto;
};
// Tile shape from the caps and a split count that gives the device enough workgroups.
DecodePlan plan_attention_decode(const DeviceCaps& caps, const AttentionShape& shape, uint32_t n_ctx);
// Bytes of the partials buffer a plan needs, and the most any n_ctx <= max_ctx needs.
VkDeviceSize attention_decode_partials_bytes(const AttentionShape& shape, const DecodePlan& plan);
VkDeviceSize attention_decode_max_partials_bytes(const DeviceCaps& caps, const AttentionShape& shape,
                                                 uint32_t max_ctx);

struct DecodeArgs {
  AttentionShape shape;
  KvType type = KvType::F32;
  uint32_t n_ctx = 0;       // attend cache rows 0 .. n_ctx-1 (the new token's row included)
  uint32_t q_offset = 0;    // element index of q head 0 in q
  uint32_t out_offset = 0;  // element index of output head 0 in out
  float scale = 0;          // usually 1 / sqrt(head_dim)
};
// q: floats [H*Dh] (from q_offset); partials: scratch floats; out: floats [H*Dh] (from
// out_offset). Records decode, a compute barrier, combine; with one split (a short context)
// decode alone, writing out itself (the same bits).
void record_attention_decode(CommandBuffer& cmd, const BufferRange& q, const BufferRange& k_cache,
                             const BufferRange& v_cache, const BufferRange& partials, const BufferRange& out,
                             const DecodeArgs& args);
// Same with an explicit plan (tests use it to force many splits or one reduction flavour).
void record_attention_decode(CommandBuffer& cmd, const BufferRange& q, const BufferRange& k_cache,
                             const BufferRange& v_cache, const BufferRange& partials, const BufferRange& out,
                             const DecodeArgs& args, const DecodePlan& plan);

// ---- Prefill: T queries, causal over the cache -------------------------------------------
// Tiled (attention_prefill.comp): workgroups share K/V tiles through shared memory (GPUs).
// Rows (attention_prefill_rows.comp): each invocation walks one query row's keys alone, the
// invocations of a workgroup reading the same K/V rows (CPU drivers; head_dim % 8 == 0).
enum class PrefillKernel { Tiled, Rows };
struct PrefillPlan {
  uint32_t workgroup = 0;    // Rows: head_block * query_block
  uint32_t head_block = 0;   // query heads per workgroup (Rows: the whole group, H / Hkv)
  uint32_t query_block = 0;  // queries per workgroup
  uint32_t key_tile = 0;     // keys per shared-memory tile (Tiled only)
  PrefillKernel kernel = PrefillKernel::Tiled;
};
// The device's choice: Rows where DeviceCaps::sum_rows_per_invocation() and the shape allow it.
// `tokens` (0: any) caps a Rows workgroup's queries, so one query (decode) runs on one group of
// query heads: on a CPU driver that beats the split-K decode kernels (2-4x on lavapipe), and
// the engine uses it for decode wherever this picks Rows.
PrefillPlan plan_attention_prefill(const DeviceCaps& caps, const AttentionShape& shape, uint32_t tokens = 0);
// The one flavour asked for (Error when the shape or device does not allow it).
PrefillPlan plan_attention_prefill(const DeviceCaps& caps, const AttentionShape& shape, PrefillKernel kernel,
                                   uint32_t tokens = 0);

struct PrefillArgs {
  AttentionShape shape;
  KvType type = KvType::F32;
  uint32_t tokens = 0;          // T; query t sits at pos0 + t and sees cache rows 0 .. pos0+t
  uint32_t pos0 = 0;
  uint32_t q_offset = 0;        // element index of q head 0 of token 0
  uint32_t q_row_stride = 0;    // elements between tokens in q
  uint32_t out_row_stride = 0;  // elements between tokens in out (head h at h * head_dim)
  float scale = 0;
};
void record_attention_prefill(CommandBuffer& cmd, const BufferRange& q, const BufferRange& k_cache,
                              const BufferRange& v_cache, const BufferRange& out, const PrefillArgs& args);
void record_attention_prefill(CommandBuffer& cmd, const BufferRange& q, const BufferRange& k_cache,
                              const BufferRange& v_cache, const BufferRange& out, const PrefillArgs& args,
                              const PrefillPlan& plan);

}  // namespace megrez
