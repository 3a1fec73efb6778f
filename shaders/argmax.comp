#version 450
// Greedy sampling: index of the largest logit, ties to the lower index, NaN counted as
// -infinity (so an all-NaN vector gives index 0, never garbage). Two stages of one pipeline
// (abi/argmax.h): stage 0 reduces interleaved shares of the logits into one (index, value)
// pair per workgroup, stage 1 reduces those pairs in a single workgroup. The pairwise
// rule "larger value, else lower index" is associative and commutative, so the result is
// exact and independent of the reduction order, subgroup size and flavour.
#extension GL_GOOGLE_include_directive : require
#include "common/workgroup.glsl"
#include "abi/argmax.h"

#if defined(REDUCE_SUBGROUP) == defined(REDUCE_SHMEM)
#error "define exactly one of REDUCE_SUBGROUP, REDUCE_SHMEM"
#endif
#ifdef REDUCE_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#include "common/subgroup_count.glsl"
#endif

layout(set = 0, binding = 0) readonly buffer Logits { float logits[]; };
layout(set = 0, binding = 1) buffer Partial { uvec2 partial[]; };
layout(set = 0, binding = 2) writeonly buffer Result { uvec2 result[]; };
layout(push_constant) uniform Push { ArgmaxPush pc; };

const uint NO_INDEX = 0xffffffffu;  // loses every tie: an empty share

shared float best_values[gl_WorkGroupSize.x];
shared uint best_indices[gl_WorkGroupSize.x];

bool beats(float v, uint i, float best_v, uint best_i) { return v > best_v || (v == best_v && i < best_i); }

// Workgroup-wide best pair; valid in invocation 0.
void reduce_best(inout float v, inout uint i) {
  uint tid = gl_LocalInvocationIndex;
  uint n;
#ifdef REDUCE_SUBGROUP
  float m = subgroupMax(v);
  uint mi = subgroupMin(v == m ? i : NO_INDEX);
  if (subgroupElect()) {
    best_values[gl_SubgroupID] = m;
    best_indices[gl_SubgroupID] = mi;
  }
  n = subgroup_count();
#else
  best_values[tid] = v;
  best_indices[tid] = i;
  n = gl_WorkGroupSize.x;
#endif
  barrier();
  uint half_width = 1u;
  while (half_width < n) half_width <<= 1;
  for (half_width >>= 1; half_width > 0u; half_width >>= 1) {
    if (tid < half_width && tid + half_width < n) {
      float ov = best_values[tid + half_width];
      uint oi = best_indices[tid + half_width];
      if (beats(ov, oi, best_values[tid], best_indices[tid])) {
        best_values[tid] = ov;
        best_indices[tid] = oi;
      }
    }
    barrier();
    n = min(n, half_width);
  }
  v = best_values[0];
  i = best_indices[0];
}

void main() {
  uint tid = gl_LocalInvocationIndex;
  float best_v = uintBitsToFloat(0xff800000u);  // -infinity
  uint best_i = NO_INDEX;
  if (pc.stage == 0u) {
    // Each invocation walks its indices in increasing order, so ">" alone keeps the lowest
    // index among equal values; "beats" also handles the first -infinity.
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint i = gl_GlobalInvocationID.x; i < pc.count; i += stride) {
      float v = logits[i];
      if (isnan(v)) v = uintBitsToFloat(0xff800000u);
      if (beats(v, i, best_v, best_i)) {
        best_v = v;
        best_i = i;
      }
    }
  } else {
    for (uint g = tid; g < pc.partials; g += gl_WorkGroupSize.x) {
      float v = uintBitsToFloat(partial[g].y);
      uint i = partial[g].x;
      if (beats(v, i, best_v, best_i)) {
        best_v = v;
        best_i = i;
      }
    }
  }
  reduce_best(best_v, best_i);
  if (tid == 0u) {
    uvec2 pair = uvec2(best_i, floatBitsToUint(best_v));
    if (pc.stage == 0u) {
      partial[gl_WorkGroupID.x] = pair;
    } else {
      result[0] = pair;
    }
  }
}
