#version 450
// Weighted sum of the routed experts' outputs, plus the shared expert, into the residual
// stream (abi/moe_combine.h). The k-sum is common/combine_experts.glsl's (k in order 0..K-1).
// A pass that is followed by an RMSNorm uses rmsnorm.comp's COMBINE_EXPERTS variant instead.
#extension GL_GOOGLE_include_directive : require
#include "common/workgroup.glsl"
#include "abi/moe_combine.h"

layout(set = 0, binding = 0) readonly buffer ExpertOut { float expert_out[]; };
layout(set = 0, binding = 1) readonly buffer Weights { float route_weights[]; };
layout(set = 0, binding = 2) readonly buffer Shared { float shared_out[]; };
layout(set = 0, binding = 3) buffer Out { float out_values[]; };
layout(push_constant) uniform Push { MoeCombinePush pc; };
#include "common/combine_experts.glsl"

void main() {
  const uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
  const uint total = pc.tokens * pc.dim;
  for (uint i = gl_GlobalInvocationID.x; i < total; i += stride) {
    const uint token = i / pc.dim, d = i % pc.dim;
    precise float routed = combine_experts(token, pc.top_k, pc.dim, d);
    if (pc.add_shared != 0u) routed += shared_out[i];
    out_values[i] = pc.accumulate != 0u ? out_values[i] + routed : routed;
  }
}
