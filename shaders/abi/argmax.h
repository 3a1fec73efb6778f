#ifndef MEGREZ_ABI_ARGMAX_H
#define MEGREZ_ABI_ARGMAX_H
// Push constants of shaders/argmax.comp (variants argmax, argmax_shmem): index of the largest
// of `count` fp32 logits, ties to the lower index, NaN counted as -infinity.
// Two dispatches of the same pipeline with a compute barrier between them:
//   stage 0: grid {partials}; workgroup g reduces its share of the logits into partial[g];
//   stage 1: grid {1}; reduces the `partials` pairs into result.
// Bindings: 0 logits (fp32 [count]), 1 partial (uvec2 [partials]: index, value bits),
//           2 result (uvec2: index, value bits).
#include "prelude.h"

MEGREZ_ABI_BEGIN
struct ArgmaxPush {
  uint count;     // logits
  uint partials;  // workgroups of stage 0 (= pairs read by stage 1)
  uint stage;     // 0 or 1
};
MEGREZ_ABI_END

MEGREZ_ABI_CHECK_SIZE(megrez::abi::ArgmaxPush, 12)
MEGREZ_ABI_CHECK_OFFSET(megrez::abi::ArgmaxPush, stage, 8)

#endif
