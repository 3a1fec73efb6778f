#ifndef MEGREZ_ABI_REDUCE_SUM_H
#define MEGREZ_ABI_REDUCE_SUM_H
// Push constants of shaders/reduce_sum.comp: out[row] = sum(in[row*cols .. row*cols+cols)),
// one workgroup per row; exercises both flavours of common/reduce.glsl.
#include "prelude.h"

MEGREZ_ABI_BEGIN
struct ReduceSumPush {
  uint rows;
  uint cols;
};
MEGREZ_ABI_END

MEGREZ_ABI_CHECK_SIZE(megrez::abi::ReduceSumPush, 8)
MEGREZ_ABI_CHECK_OFFSET(megrez::abi::ReduceSumPush, cols, 4)

#endif
