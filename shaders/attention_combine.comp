#version 450
// Merges the split-K partials of attention_decode.comp: for query head h (one workgroup each),
//   M = max_s m_s,  w_s = exp2(m_s - M),  out = sum_s w_s acc_s / sum_s w_s l_s.
// Each invocation owns output elements d and walks the splits itself (splits are few), so
// there is no reduction across invocations and a single variant serves every device.
#extension GL_GOOGLE_include_directive : require
#include "common/workgroup.glsl"
#include "abi/attention_combine.h"

layout(set = 0, binding = 0) readonly buffer Partials { float partials[]; };
layout(set = 0, binding = 1) writeonly buffer Out { float out_values[]; };
layout(push_constant) uniform Push { AttentionCombinePush pc; };

void main() {
  const uint head = gl_WorkGroupID.x;
  const uint record = pc.head_dim + 2;          // [m, l, acc[head_dim]]
  const uint split_stride = pc.q_heads * record;
  const uint head_base = head * record;
  float global_max = partials[head_base];
  for (uint s = 1; s < pc.splits; ++s) global_max = max(global_max, partials[head_base + s * split_stride]);
  float total = 0.0;
  for (uint s = 0; s < pc.splits; ++s) {
    const uint base = head_base + s * split_stride;
    total += exp2(partials[base] - global_max) * partials[base + 1];
  }
  const float inv_total = 1.0 / total;
  for (uint d = gl_LocalInvocationIndex; d < pc.head_dim; d += gl_WorkGroupSize.x) {
    float value = 0.0;
    for (uint s = 0; s < pc.splits; ++s) {
      const uint base = head_base + s * split_stride;
      value += exp2(partials[base] - global_max) * partials[base + 2 + d];
    }
    out_values[pc.out_offset + head * pc.head_dim + d] = value * inv_total;
  }
}
