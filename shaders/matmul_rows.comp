#version 450
// Prefill product, "per invocation" flavour for CPU drivers (common/row_dot.glsl says why):
//   Y[t * y_stride + y_offset + r] (+)= sum_c W[weight_row + r, c] * X[x_offset + t * x_stride + c]
// Each invocation sums ROWS_PER_INVOCATION rows x TOKENS_PER_INVOCATION tokens alone (4 x 8,
// abi/matmul.h says why).
// Same push constants and bindings as matmul.comp (abi/matmul.h); the host picks this flavour
// only where W and X fit its 16/8-byte reads. Grid: {ceil(rows / (workgroup * 4)), ceil(tokens / 8)}.
// Variants *_shuffle (quantized formats, ROW_INPUT_SHUFFLE) share x's loads across the
// subgroup through shuffles (common/row_dot.glsl): up to 1.5x faster again on lavapipe.
// Variant matmul_<fmt>_rows_ubo (ROW_INPUT_UNIFORM_PER_TOKEN) reads X as 8 uniform buffers, one
// token's row each (bindings 1 and 3-9): the host dispatches each group of 8 tokens alone
// (grid y = 1, x_offset = x_stride = 0). On lavapipe x's loads outnumber the weights' 2:1 here,
// and uniform ones are one gather instead of a loop over lanes: 1.5-2x faster at Megrez2's shapes.
#extension GL_GOOGLE_include_directive : require
#include "common/workgroup.glsl"
#include "abi/matmul.h"

#define ROWS_PER_INVOCATION MEGREZ_MATMUL_ROWS_PER_INVOCATION
#define TOKENS_PER_INVOCATION MEGREZ_MATMUL_TOKENS_PER_INVOCATION
#define ROW_STREAMS ROWS_PER_INVOCATION
#define ROW_TOKENS TOKENS_PER_INVOCATION
#include "common/row_dot.glsl"  // bindings 0 (W) and 1 (X; _ubo: 1 and 3-9)
layout(set = 0, binding = 2) buffer Y { float y[]; };
layout(push_constant) uniform Push { MatmulPush pc; };

void main() {
  const uint first_row = (gl_WorkGroupID.x * gl_WorkGroupSize.x + gl_LocalInvocationIndex) * ROWS_PER_INVOCATION;
  const uint first_token = gl_WorkGroupID.y * TOKENS_PER_INVOCATION;
#ifdef ROW_INPUT_SHUFFLE
  if (first_token >= pc.tokens) return;  // whole workgroups only: every lane takes part in the shuffles
#else
  if (first_row >= pc.rows || first_token >= pc.tokens) return;  // no barriers below
#endif
  const uint row_units = WEIGHT_ROW_BYTES(pc.cols) / ROW_UNIT_BYTES;
  // Rows and tokens past the end re-read the last one; their sums are never written.
  uint first_unit[ROW_STREAMS];
  for (uint r = 0u; r < ROW_STREAMS; ++r) first_unit[r] = (pc.weight_row + min(first_row + r, pc.rows - 1u)) * row_units;
  uint x_first[ROW_TOKENS];
  for (uint t = 0u; t < ROW_TOKENS; ++t) x_first[t] = (pc.x_offset + min(first_token + t, pc.tokens - 1u) * pc.x_stride) / 4u;
  float sums[ROW_STREAMS * ROW_TOKENS];
  for (uint i = 0u; i < ROW_STREAMS * ROW_TOKENS; ++i) sums[i] = 0.0;
  row_dots(first_unit, x_first, pc.cols, sums);
  for (uint r = 0u; r < ROW_STREAMS; ++r) {
    for (uint t = 0u; t < ROW_TOKENS; ++t) {
      if (first_row + r < pc.rows && first_token + t < pc.tokens) {
        const uint i = (first_token + t) * pc.y_stride + pc.y_offset + first_row + r;
        const float v = sums[r * ROW_TOKENS + t];
        y[i] = pc.accumulate != 0u ? y[i] + v : v;
      }
    }
  }
}
