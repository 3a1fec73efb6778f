#ifndef MEGREZ_ABI_SWIGLU_H
#define MEGREZ_ABI_SWIGLU_H
// Push constants of shaders/swiglu.comp (variant swiglu): h[i] = silu(gate[i]) * up[i] for
// i < count, fp32, one invocation per element (grid-stride, so any group count works).
// Bindings: 0 gate [count] f32, 1 up [count] f32, 2 h [count] f32 (may alias neither input).
// For fused gate/up products from the weights see swiglu_fused_<fmt> in abi/moe.h.
#include "prelude.h"

MEGREZ_ABI_BEGIN
struct SwigluPush {
  uint count;  // T * intermediate width
};
MEGREZ_ABI_END

MEGREZ_ABI_CHECK_SIZE(megrez::abi::SwigluPush, 4)

#endif
