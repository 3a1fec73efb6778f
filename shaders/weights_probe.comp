#version 450
// Test kernel for common/weights.glsl: decodes rows through the entry point `mode` selects
// (see abi/weights_probe.h) so each one is checked against dequantize_row on its own.
#extension GL_GOOGLE_include_directive : require
#include "common/workgroup.glsl"
#include "abi/weights_probe.h"

layout(set = 0, binding = 0) readonly buffer Weights { uint w[]; };
layout(set = 0, binding = 1) readonly buffer X { float x[]; };
layout(set = 0, binding = 2) writeonly buffer Out { float out_values[]; };
layout(push_constant) uniform Push { WeightsProbePush pc; };

#define WEIGHT_WORD(i) w[i]
#include "common/weights.glsl"

void main() {
  uint row = gl_WorkGroupID.x;
  if (row >= pc.rows) return;
  uint tid = gl_LocalInvocationIndex;
  uint row_byte = row * WEIGHT_ROW_BYTES(pc.cols);
  uint out_row = row * pc.cols;
  uint blocks = pc.cols / 32u;
  uint decoded = 0u;  // columns written by the block/quarter entry points
  if (pc.mode == 0u) {
    for (uint b = tid; b < blocks; b += gl_WorkGroupSize.x) {
      float values[32];
      weight_block(row_byte + b * WEIGHT_BLOCK_BYTES, values);
      for (uint j = 0u; j < 32u; ++j) out_values[out_row + 32u * b + j] = values[j];
    }
    decoded = blocks * 32u;
  } else if (pc.mode == 1u) {
    for (uint u = tid; u < pc.cols / 8u; u += gl_WorkGroupSize.x) {
      uint b = u >> 2, q = u & 3u;
      vec4 lo, hi;
      weight_quarter(row_byte + b * WEIGHT_BLOCK_BYTES, q, lo, hi);
      for (uint j = 0u; j < 4u; ++j) {
        out_values[out_row + 32u * b + WEIGHT_QUARTER_LO(q) + j] = lo[j];
        out_values[out_row + 32u * b + WEIGHT_QUARTER_HI(q) + j] = hi[j];
      }
    }
    decoded = (pc.cols / 8u) * 8u;
  } else if (pc.mode == 3u) {
    for (uint b = tid; b < blocks; b += gl_WorkGroupSize.x) {
      vec4 xv[8];
      for (uint k = 0u; k < 8u; ++k) xv[k] = vec4(x[32u * b + 4u * k], x[32u * b + 4u * k + 1u], x[32u * b + 4u * k + 2u], x[32u * b + 4u * k + 3u]);
      out_values[row * blocks + b] = weight_block_dot(row_byte + b * WEIGHT_BLOCK_BYTES, xv);
    }
    return;
  }
  for (uint c = decoded + tid; c < pc.cols; c += gl_WorkGroupSize.x) out_values[out_row + c] = weight_at(row_byte, c);
}
