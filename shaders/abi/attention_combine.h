#ifndef MEGREZ_ABI_ATTENTION_COMBINE_H
#define MEGREZ_ABI_ATTENTION_COMBINE_H
// Push constants of shaders/attention_combine.comp: merges the split-K partials of
// attention.comp into the normalised output, one workgroup per (query head, token).
// Bindings: 0 partials (float, [splits][tokens][q_heads][head_dim+2]), 1 out (float): head h
// of token t at out[out_offset + t*out_row_stride + h*head_dim ...].
#include "prelude.h"

MEGREZ_ABI_BEGIN
struct AttentionCombinePush {
  uint splits;
  uint tokens;
  uint q_heads;
  uint head_dim;
  uint out_offset;
  uint out_row_stride;
};
MEGREZ_ABI_END

MEGREZ_ABI_CHECK_SIZE(megrez::abi::AttentionCombinePush, 24)
MEGREZ_ABI_CHECK_OFFSET(megrez::abi::AttentionCombinePush, out_row_stride, 20)

#endif
