#ifndef MEGREZ_ABI_ATTENTION_COMBINE_H
#define MEGREZ_ABI_ATTENTION_COMBINE_H
// Push constants of shaders/attention_combine.comp: merges the split-K partials of
// attention_decode.comp into the normalised output, one workgroup per query head.
// Bindings: 0 partials (float, [splits][q_heads][head_dim+2]), 1 out (float): head h at
// out[out_offset + h*head_dim ...].
#include "prelude.h"

MEGREZ_ABI_BEGIN
struct AttentionCombinePush {
  uint splits;
  uint q_heads;
  uint head_dim;
  uint out_offset;
};
MEGREZ_ABI_END

MEGREZ_ABI_CHECK_SIZE(megrez::abi::AttentionCombinePush, 16)
MEGREZ_ABI_CHECK_OFFSET(megrez::abi::AttentionCombinePush, out_offset, 12)

#endif
