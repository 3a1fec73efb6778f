#version 450
// Fused K RoPE + KV cache store: for tokens t < T, writes RoPE(K row t) and V row t into cache
// row pos0 + t (RoPE position pos0 + t, NeoX rotate_half as in rope.comp). With q_heads > 0 the
// same dispatch also applies RoPE to the q heads in place (rope.comp's work, one dispatch fewer
// per layer); q sits in the K source's buffer (the fused QKV rows), bound again as binding 5.
// One invocation per pair of adjacent elements (2e, 2e+1) of one head of one token, which is
// one 32-bit word of an f16 cache, so packed halves are written whole without atomics. Each
// element computes its own rotation (element e < Dh/2 pairs with e + Dh/2, otherwise with
// e - Dh/2), which works for any even head dim, 18 included.
// KV_F16: cache words hold two halves (packHalf2x16: round to nearest on the devices we test),
// saturated to the largest finite half (+-65504): a K or V beyond f16's range would otherwise
// be stored as inf and turn every later attention score that reads it into inf or NaN, a
// silently wrong answer; saturation keeps the error to that one element. Otherwise f32.
#extension GL_GOOGLE_include_directive : require
#include "common/workgroup.glsl"
#include "common/rope_angle.glsl"
#include "abi/kv_store.h"

layout(set = 0, binding = 0) readonly buffer KSource { float k_src[]; };
layout(set = 0, binding = 1) readonly buffer VSource { float v_src[]; };
layout(set = 0, binding = 2) readonly buffer Table { uvec2 turns_per_position[]; };
#ifdef KV_F16
layout(set = 0, binding = 3) writeonly buffer KCache { uint k_cache_words[]; };
layout(set = 0, binding = 4) writeonly buffer VCache { uint v_cache_words[]; };
#else
layout(set = 0, binding = 3) writeonly buffer KCache { vec2 k_cache_pairs[]; };
layout(set = 0, binding = 4) writeonly buffer VCache { vec2 v_cache_pairs[]; };
#endif
layout(set = 0, binding = 5) buffer Q { float q_rows[]; };
layout(push_constant) uniform Push { KvStorePush pc; };

const float kHalfMax = 65504.0;  // the largest finite f16

// RoPE of element e (< head_dim) of the K head starting at `head_base`.
float rotated_k(uint head_base, uint e, uint pos) {
  const uint half_dim = pc.head_dim / 2;
  const bool low = e < half_dim;
  const uint i = low ? e : e - half_dim;
  const vec2 cs = rope_cos_sin(pos, turns_per_position[i]);
  const float self_value = k_src[head_base + e];
  const float partner = k_src[head_base + (low ? e + half_dim : e - half_dim)];
  // low:  x[i] cos - x[i+half] sin;  high: x[i+half] cos + x[i] sin
  return self_value * cs.x + (low ? -partner : partner) * cs.y;
}

// RoPE of q pair `item` (token, head, i < Dh/2: elements i and i + Dh/2), in place.
void rotate_q(uint item) {
  const uint half_dim = pc.head_dim / 2;
  const uint pairs_per_token = pc.q_heads * half_dim;
  const uint token = item / pairs_per_token;
  const uint within = item - token * pairs_per_token;
  const uint head = within / half_dim;
  const uint i = within - head * half_dim;
  const vec2 cs = rope_cos_sin(pc.pos0 + token, turns_per_position[i]);
  const uint first = pc.q_offset + token * pc.src_row_stride + head * pc.head_dim + i;
  const float a = q_rows[first];
  const float b = q_rows[first + half_dim];
  q_rows[first] = a * cs.x - b * cs.y;
  q_rows[first + half_dim] = b * cs.x + a * cs.y;
}

void main() {
  const uint half_dim = pc.head_dim / 2;
  const uint pairs_per_token = pc.kv_heads * half_dim;  // = words per cache row
  const uint total = pc.tokens * pairs_per_token;
  const uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
  // Items total .. total + q pairs - 1 rotate q.
  const uint q_total = pc.tokens * pc.q_heads * half_dim;
  for (uint item = gl_GlobalInvocationID.x; item < total + q_total; item += stride) {
    if (item >= total) {
      rotate_q(item - total);
      continue;
    }
    const uint token = item / pairs_per_token;
    const uint within = item - token * pairs_per_token;  // pair index within the cache row
    const uint head = within / half_dim;
    const uint e = 2 * (within - head * half_dim);       // even element within the head
    const uint pos = pc.pos0 + token;
    const uint k_head = pc.k_offset + token * pc.src_row_stride + head * pc.head_dim;
    const uint v_first = pc.v_offset + token * pc.src_row_stride + head * pc.head_dim + e;
    const vec2 k = vec2(rotated_k(k_head, e, pos), rotated_k(k_head, e + 1, pos));
    const vec2 v = vec2(v_src[v_first], v_src[v_first + 1]);
    const uint word = pos * pairs_per_token + within;
#ifdef KV_F16
    k_cache_words[word] = packHalf2x16(clamp(k, vec2(-kHalfMax), vec2(kHalfMax)));
    v_cache_words[word] = packHalf2x16(clamp(v, vec2(-kHalfMax), vec2(kHalfMax)));
#else
    k_cache_pairs[word] = k;
    v_cache_pairs[word] = v;
#endif
  }
}
