#version 450
// NeoX / rotate_half rotary embedding, in place (Megrez2 applies it to q and k over the whole
// head dim): for i < Dh/2, with a = pos * theta^(-2i/Dh),
//   x'[i]        = x[i] * cos a - x[i + Dh/2] * sin a
//   x'[i + Dh/2] = x[i + Dh/2] * cos a + x[i] * sin a
// One invocation per (token, head, i): it reads and writes both elements of its pair, so no
// two invocations touch the same element. K usually goes through kv_store.comp instead, which
// fuses this with the cache write.
#extension GL_GOOGLE_include_directive : require
#include "common/workgroup.glsl"
#include "common/rope_angle.glsl"
#include "abi/rope.h"

layout(set = 0, binding = 0) buffer X { float x[]; };
layout(set = 0, binding = 1) readonly buffer Table { uvec2 turns_per_position[]; };
layout(push_constant) uniform Push { RopePush pc; };

void main() {
  const uint half_dim = pc.head_dim / 2;
  const uint pairs_per_token = pc.heads * half_dim;
  const uint total = pc.tokens * pairs_per_token;
  // Grid-stride loop: correct for whatever group count the host capped.
  const uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
  for (uint item = gl_GlobalInvocationID.x; item < total; item += stride) {
    const uint token = item / pairs_per_token;
    const uint within = item - token * pairs_per_token;
    const uint head = within / half_dim;
    const uint i = within - head * half_dim;
    const vec2 cs = rope_cos_sin(pc.pos0 + token, turns_per_position[i]);
    const uint first = pc.offset + token * pc.row_stride + head * pc.head_dim + i;
    const float a = x[first];
    const float b = x[first + half_dim];
    x[first] = a * cs.x - b * cs.y;
    x[first + half_dim] = b * cs.x + a * cs.y;
  }
}
