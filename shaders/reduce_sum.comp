#version 450
// Row sums, one workgroup per row: out[row] = sum of in[row*cols + c]. Exists to test both
// flavours of common/reduce.glsl (variants reduce_sum and reduce_sum_shmem).
#extension GL_GOOGLE_include_directive : require
#include "common/workgroup.glsl"
#include "common/reduce.glsl"
#include "abi/reduce_sum.h"

layout(set = 0, binding = 0) readonly buffer In { float in_values[]; };
layout(set = 0, binding = 1) writeonly buffer Out { float out_values[]; };
layout(push_constant) uniform Push { ReduceSumPush pc; };

void main() {
  uint row = gl_WorkGroupID.x;
  // Uniform per workgroup, so returning before the barriers inside reduce_sum is safe.
  if (row >= pc.rows) return;
  float partial = 0.0;
  for (uint c = gl_LocalInvocationIndex; c < pc.cols; c += gl_WorkGroupSize.x) {
    partial += in_values[row * pc.cols + c];
  }
  float total = reduce_sum(partial);
  if (gl_LocalInvocationIndex == 0) out_values[row] = total;
}
