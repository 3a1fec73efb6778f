#ifndef MEGREZ_ABI_MOE_COMBINE_H
#define MEGREZ_ABI_MOE_COMBINE_H
// Push constants of shaders/moe_combine.comp (variant moe_combine), one invocation per
// output element:
//   out[t, d] = (accumulate ? out[t, d] : 0) + (sum_k w[t, k] * y[t, k, d] + shared[t, d])
// with k summed in order 0..K-1 (the same result for every batch split and schedule).
// Bindings: 0 y [T, K, dim] f32 (expert outputs), 1 weights [T, K] f32 (router),
//           2 shared [T, dim] f32 (shared-expert output; bind anything when add_shared = 0),
//           3 out [T, dim] f32 (the residual stream when accumulate = 1)
#include "prelude.h"

MEGREZ_ABI_BEGIN
struct MoeCombinePush {
  uint tokens;
  uint top_k;
  uint dim;
  uint add_shared;  // 1: add shared[t, :]
  uint accumulate;  // 1: add into out, 0: overwrite out
};
MEGREZ_ABI_END

MEGREZ_ABI_CHECK_SIZE(megrez::abi::MoeCombinePush, 20)
MEGREZ_ABI_CHECK_OFFSET(megrez::abi::MoeCombinePush, accumulate, 16)

#endif
