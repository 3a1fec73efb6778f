#ifndef MEGREZ_ABI_KV_STORE_H
#define MEGREZ_ABI_KV_STORE_H
// Push constants of shaders/kv_store.comp: RoPE on K, then K and V rows written into the
// KV cache at rows pos0 .. pos0+tokens-1.
// Bindings: 0 K source (float), 1 V source (float) (both may be the same fused QKV buffer),
// 2 frequency table (uvec2 per frequency), 3 K cache, 4 V cache, 5 q (read-write; the K
// source's buffer, used when q_heads > 0). Cache layout (one layer):
// [rows][kv_heads * head_dim] elements, f32, or f16 packed two per 32-bit word (even element
// in the low half, as packHalf2x16).
#include "prelude.h"

MEGREZ_ABI_BEGIN
struct KvStorePush {
  uint tokens;          // T
  uint kv_heads;        // Hkv
  uint head_dim;        // Dh, even
  uint pos0;            // cache row of token 0 (its RoPE position too)
  uint k_offset;        // element index of K head 0 of token 0 in the K source
  uint v_offset;        // element index of V head 0 of token 0 in the V source
  uint src_row_stride;  // elements from one token's row to the next in both sources
  uint q_heads;         // 0, or q heads to rotate in place (binding 5: the K source's buffer)
  uint q_offset;        // element index of q head 0 of token 0 there (same row stride)
};
MEGREZ_ABI_END

MEGREZ_ABI_CHECK_SIZE(megrez::abi::KvStorePush, 36)
MEGREZ_ABI_CHECK_OFFSET(megrez::abi::KvStorePush, src_row_stride, 24)
MEGREZ_ABI_CHECK_OFFSET(megrez::abi::KvStorePush, q_offset, 32)

#endif
