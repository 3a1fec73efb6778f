#ifndef MEGREZ_ABI_ATTENTION_DECODE_H
#define MEGREZ_ABI_ATTENTION_DECODE_H
// Push constants of shaders/attention_decode.comp: one query token against cache rows
// 0 .. n_ctx-1, split-K over the context. Workgroup (split s, y) handles cache rows
// [s*chunk, min((s+1)*chunk, n_ctx)) for a block of HEAD_BLOCK query heads of one kv head and
// writes unnormalised partial results that attention_combine.comp merges; with one split it
// writes the final output itself (acc * (1 / sum): the combine's arithmetic for one split, so
// the same bits) and the combine is not dispatched.
// Bindings: 0 q (float), 1 K cache, 2 V cache, 3 partials (float, [splits][q_heads][head_dim+2]:
// running max in log2 units, sum of exponentials, then head_dim accumulated values), or with
// one split the output (float, head h at out_offset + h * head_dim).
// Specialization: 0 workgroup size (= keys per tile), 3 subgroup size, 4 HEAD_DIM, 5 HEAD_BLOCK.
#include "prelude.h"

MEGREZ_ABI_BEGIN
struct AttentionDecodePush {
  uint n_ctx;     // attended cache rows
  uint q_heads;   // H
  uint kv_heads;  // Hkv, divides H; q head j reads kv head j / (H / Hkv)
  uint q_offset;  // element index of q head 0
  uint chunk;     // cache rows per split
  uint splits;    // number of splits; (splits - 1) * chunk < n_ctx <= splits * chunk
  float scale;    // softmax scale, usually 1 / sqrt(head_dim)
  uint out_offset;  // splits == 1: element index of output head 0 in binding 3
};
MEGREZ_ABI_END

MEGREZ_ABI_CHECK_SIZE(megrez::abi::AttentionDecodePush, 32)
MEGREZ_ABI_CHECK_OFFSET(megrez::abi::AttentionDecodePush, scale, 24)

#endif
