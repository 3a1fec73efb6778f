#ifndef MEGREZ_ABI_ATTENTION_PREFILL_H
#define MEGREZ_ABI_ATTENTION_PREFILL_H
// Push constants of shaders/attention_prefill.comp: T queries at positions pos0 .. pos0+T-1,
// query t attending causally to cache rows 0 .. pos0+t (the chunk's own K/V already stored).
// Workgroup (x, y): QUERY_BLOCK consecutive queries x*QUERY_BLOCK.. times HEAD_BLOCK query
// heads of one kv head.
// Bindings: 0 q (float), 1 K cache, 2 V cache, 3 out (float).
// Specialization: 0 workgroup size, 3 subgroup size, 4 HEAD_DIM, 5 HEAD_BLOCK, 6 QUERY_BLOCK,
// 7 KEY_TILE.
#include "prelude.h"

MEGREZ_ABI_BEGIN
struct AttentionPrefillPush {
  uint tokens;          // T
  uint pos0;            // position of query 0
  uint q_heads;         // H
  uint kv_heads;        // Hkv, divides H
  uint q_offset;        // element index of q head 0 of token 0
  uint q_row_stride;    // elements from one token's q row to the next
  uint out_row_stride;  // elements from one token's output row to the next (head h at h*head_dim)
  float scale;          // softmax scale, usually 1 / sqrt(head_dim)
};
MEGREZ_ABI_END

MEGREZ_ABI_CHECK_SIZE(megrez::abi::AttentionPrefillPush, 32)
MEGREZ_ABI_CHECK_OFFSET(megrez::abi::AttentionPrefillPush, scale, 28)

#endif
