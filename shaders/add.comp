#version 450
// Residual add: x[i] += y[i]. The plain kernel for adds no other kernel fuses (matvec and
// matmul have an accumulate flag; add_rmsnorm adds and normalises in one pass).
#extension GL_GOOGLE_include_directive : require
#include "common/workgroup.glsl"
#include "abi/add.h"

layout(set = 0, binding = 0) buffer X { float x[]; };
layout(set = 0, binding = 1) readonly buffer Y { float y[]; };
layout(push_constant) uniform Push { AddPush pc; };

void main() {
  // Grid-stride loop: any count with whatever group count the host chose.
  uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
  for (uint i = gl_GlobalInvocationID.x; i < pc.count; i += stride) x[i] += y[i];
}
