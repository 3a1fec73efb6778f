#version 450
// RMSNorm over rows, one workgroup per row: y = x / sqrt(mean(x^2) + eps) * w, fp32.
// ADD_RESIDUAL (variants add_rmsnorm[_shmem]) first adds the addend into the residual
// stream and writes it back, then normalises the sum: the "x = x + a Wo^T; h2 = RMSNorm(x)"
// pair of the forward pass in one read of each operand instead of an add pass plus a norm pass.
// COMBINE_EXPERTS (variants moe_combine_rmsnorm[_shmem]): the addend is a MoE layer's output,
// sum_k w[k] * y_k + shared (common/combine_experts.glsl, moe_combine.comp's arithmetic), so
// the layer's combine and the next layer's (or the final) norm are one dispatch.
// The sum of squares goes through common/reduce.glsl (REDUCE_SUBGROUP or REDUCE_SHMEM).
#extension GL_GOOGLE_include_directive : require
#include "common/workgroup.glsl"
#include "common/reduce.glsl"
#include "abi/rmsnorm.h"

#if defined(COMBINE_EXPERTS)
layout(set = 0, binding = 0) buffer Residual { float x[]; };
layout(set = 0, binding = 1) readonly buffer ExpertOut { float expert_out[]; };
layout(set = 0, binding = 2) readonly buffer RouteWeights { float route_weights[]; };
layout(set = 0, binding = 3) readonly buffer Shared { float shared_out[]; };
layout(set = 0, binding = 4) readonly buffer Weight { float weight[]; };
layout(set = 0, binding = 5) writeonly buffer Out { float y[]; };
#include "common/combine_experts.glsl"
#elif defined(ADD_RESIDUAL)
layout(set = 0, binding = 0) buffer Residual { float x[]; };
layout(set = 0, binding = 1) readonly buffer Addend { float addend[]; };
layout(set = 0, binding = 2) readonly buffer Weight { float weight[]; };
layout(set = 0, binding = 3) writeonly buffer Out { float y[]; };
#else
layout(set = 0, binding = 0) readonly buffer In { float x[]; };
layout(set = 0, binding = 1) readonly buffer Weight { float weight[]; };
layout(set = 0, binding = 2) writeonly buffer Out { float y[]; };
#endif
layout(push_constant) uniform Push { RmsnormPush pc; };

void main() {
  uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  if (row >= pc.rows) return;  // uniform per workgroup: safe before the barriers
  uint base = row * pc.dim;
  float sum_sq = 0.0;
  for (uint c = gl_LocalInvocationIndex; c < pc.dim; c += gl_WorkGroupSize.x) {
#if defined(COMBINE_EXPERTS)
    precise float routed = combine_experts(row, pc.top_k, pc.dim, c);
    routed += shared_out[base + c];
    float v = x[base + c] + routed;
    x[base + c] = v;  // read back below by this same invocation
#elif defined(ADD_RESIDUAL)
    float v = x[base + c] + addend[base + c];
    x[base + c] = v;  // read back below by this same invocation
#else
    float v = x[base + c];
#endif
    sum_sq += v * v;
  }
  float total = reduce_sum(sum_sq);
  float inv_rms = 1.0 / sqrt(total / float(pc.dim) + pc.eps);
  for (uint c = gl_LocalInvocationIndex; c < pc.dim; c += gl_WorkGroupSize.x) {
    y[base + c] = x[base + c] * inv_rms * weight[c];
  }
}
