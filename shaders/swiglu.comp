#version 450
// SwiGLU activation on precomputed products: h = silu(gate) * up, fp32 (abi/swiglu.h).
// silu(v) = v / (1 + exp(-v)): for very negative v, exp overflows to +inf and h is -0.
#extension GL_GOOGLE_include_directive : require
#include "common/workgroup.glsl"
#include "abi/swiglu.h"

layout(set = 0, binding = 0) readonly buffer Gate { float gate[]; };
layout(set = 0, binding = 1) readonly buffer Up { float up[]; };
layout(set = 0, binding = 2) writeonly buffer Hidden { float hidden[]; };
layout(push_constant) uniform Push { SwigluPush pc; };

void main() {
  const uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
  for (uint i = gl_GlobalInvocationID.x; i < pc.count; i += stride) {
    float g = gate[i];
    hidden[i] = g / (1.0 + exp(-g)) * up[i];
  }
}
