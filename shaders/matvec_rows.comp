#version 450
// Matrix-vector product for decode, "per invocation" flavour (common/row_dot.glsl says why):
// y[y_offset + r] (+)= sum_c W[weight_row + r, c] * x[x_offset + c], each invocation summing
// ROWS_PER_INVOCATION whole rows alone (abi/matvec.h). Same push constants and bindings as
// matvec.comp (abi/matvec.h; x a uniform buffer in the *_ubo variants), weights read as 16-byte
// (float formats, and quantized in *_rows_wide) or 8-byte (quantized) units; the host picks
// this flavour only where the rows, weight_row and x_offset fit those units.
#extension GL_GOOGLE_include_directive : require
#include "common/workgroup.glsl"
#include "abi/matvec.h"

#if defined(WEIGHT_F32) || (defined(WEIGHT_Q8_0) && defined(ROW_WIDE))
#define ROWS_PER_INVOCATION kMatvecRowsPerInvocationFew
#else
#define ROWS_PER_INVOCATION kMatvecRowsPerInvocation
#endif
#define ROW_STREAMS ROWS_PER_INVOCATION

#include "common/row_dot.glsl"  // bindings 0 (W) and 1 (x)
layout(set = 0, binding = 2) buffer Y { float y[]; };
layout(push_constant) uniform Push { MatvecPush pc; };

void main() {
  const uint group = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  const uint first_row = (group * gl_WorkGroupSize.x + gl_LocalInvocationIndex) * ROWS_PER_INVOCATION;
  if (first_row >= pc.rows) return;  // no barriers or subgroup ops below
  const uint row_units = WEIGHT_ROW_BYTES(pc.cols) / ROW_UNIT_BYTES;
  // Rows past the end re-read the last row; their sums are never written.
  uint first_unit[ROW_STREAMS];
  float sums[ROW_STREAMS];
  for (uint r = 0u; r < ROW_STREAMS; ++r) {
    first_unit[r] = (pc.weight_row + min(first_row + r, pc.rows - 1u)) * row_units;
    sums[r] = 0.0;
  }
  const uint x_first[1] = uint[1](pc.x_offset / 4u);
  row_dots(first_unit, x_first, pc.cols, sums);
  for (uint r = 0u; r < ROW_STREAMS; ++r) {
    if (first_row + r < pc.rows) {
      const uint i = pc.y_offset + first_row + r;
      y[i] = pc.accumulate != 0u ? y[i] + sums[r] : sums[r];
    }
  }
}
