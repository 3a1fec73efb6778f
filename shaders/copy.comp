#version 450
// Buffer copy: dst[i] = src[i]. The bandwidth baseline every kernel is measured against and
// megrez-info's first self-check. COPY_VEC4 moves 16-byte vectors (what a bandwidth-bound
// kernel should aim for); otherwise 32-bit words.
#extension GL_GOOGLE_include_directive : require
#include "common/workgroup.glsl"
#include "abi/copy.h"

#ifdef COPY_VEC4
#define ELEMENT uvec4
#else
#define ELEMENT uint
#endif

layout(set = 0, binding = 0) readonly buffer Src { ELEMENT src[]; };
layout(set = 0, binding = 1) writeonly buffer Dst { ELEMENT dst[]; };
layout(push_constant) uniform Push { CopyPush pc; };

void main() {
  // Grid-stride loop: correct for any count, whatever group count the host capped.
  uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
  for (uint i = gl_GlobalInvocationID.x; i < pc.count; i += stride) {
    dst[i] = src[i];
  }
}
