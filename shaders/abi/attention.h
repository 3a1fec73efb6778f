#ifndef MEGREZ_ABI_ATTENTION_H
#define MEGREZ_ABI_ATTENTION_H
// Push constants of shaders/attention.comp: causal GQA attention of T queries at positions
// pos0 .. pos0+T-1 over the KV cache (query t sees cache rows 0 .. pos0+t), optionally split
// over the keys (split-K). Decode is T = 1, pos0 = n_ctx - 1.
// Workgroup (s, y, z): split s (keys [s*chunk, (s+1)*chunk)), kv head y / head_blocks with
// HEAD_BLOCK of its query heads, and QUERY_BLOCK queries z*QUERY_BLOCK ...
// Bindings: 0 q (float), 1 K cache, 2 V cache, 3 destination (float):
//   splits == 1: the normalised output, head h of token t at out_offset + t*out_row_stride + h*Dh;
//   splits > 1:  partials [splits][tokens][q_heads][head_dim + 2] (running max in log2 units,
//                sum of exponentials, head_dim accumulated values) for attention_combine.comp.
// Specialization: 0 workgroup size (= keys per tile), 3 subgroup size, 4 HEAD_DIM,
// 5 HEAD_BLOCK, 6 QUERY_BLOCK.
#include "prelude.h"

MEGREZ_ABI_BEGIN
struct AttentionPush {
  uint tokens;          // T
  uint pos0;            // position of query 0
  uint q_heads;         // H
  uint kv_heads;        // Hkv, divides H; q head j reads kv head j / (H / Hkv)
  uint q_offset;        // element index of q head 0 of token 0
  uint q_row_stride;    // elements from one token's q row to the next
  uint chunk;           // keys per split
  uint splits;          // (splits - 1) * chunk < pos0 + T <= splits * chunk
  uint out_offset;      // splits == 1: element index of output head 0 of token 0
  uint out_row_stride;  // splits == 1: elements from one token's output row to the next
  float scale;          // softmax scale, usually 1 / sqrt(head_dim)
};
MEGREZ_ABI_END

MEGREZ_ABI_CHECK_SIZE(megrez::abi::AttentionPush, 44)
MEGREZ_ABI_CHECK_OFFSET(megrez::abi::AttentionPush, scale, 40)

#endif
