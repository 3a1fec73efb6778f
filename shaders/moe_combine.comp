#version 450
// Weighted sum of the routed experts' outputs, plus the shared expert, into the residual
// stream (abi/moe_combine.h). The k-sum runs in order 0..K-1 for every element, so the decode
// and batched paths, and any part split of the slot store, give identical bits.
#extension GL_GOOGLE_include_directive : require
#include "common/workgroup.glsl"
#include "abi/moe_combine.h"

layout(set = 0, binding = 0) readonly buffer ExpertOut { float expert_out[]; };
layout(set = 0, binding = 1) readonly buffer Weights { float weights[]; };
layout(set = 0, binding = 2) readonly buffer Shared { float shared_out[]; };
layout(set = 0, binding = 3) buffer Out { float out_values[]; };
layout(push_constant) uniform Push { MoeCombinePush pc; };

void main() {
  const uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
  const uint total = pc.tokens * pc.dim;
  for (uint i = gl_GlobalInvocationID.x; i < total; i += stride) {
    const uint token = i / pc.dim, d = i % pc.dim;
    // `precise`: no fused multiply-add, so every driver rounds exactly like the CPU check.
    precise float routed = 0.0;
    for (uint k = 0u; k < pc.top_k; ++k) {
      const uint entry = token * pc.top_k + k;
      routed += weights[entry] * expert_out[entry * pc.dim + d];
    }
    if (pc.add_shared != 0u) routed += shared_out[i];
    out_values[i] = pc.accumulate != 0u ? out_values[i] + routed : routed;
  }
}
