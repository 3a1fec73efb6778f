#version 450
// Causal attention for a chunk of T queries at positions pos0 .. pos0+T-1, "per invocation"
// flavour for CPU drivers (the host picks it with DeviceCaps::cpu_device; attention_prefill.comp
// is the GPU one). Same bindings and push constants (abi/attention_prefill.h).
//
// WHY: on llvmpipe an invocation is a SIMD lane, a load whose address is the same in every lane
// is one scalar load, and one that differs per lane is a loop over the lanes (row_dot.glsl).
// So each invocation owns ONE query row (query t, query head j) and walks every key itself,
// and the invocations of a workgroup are the GROUP query heads of one kv head times QUERIES
// consecutive queries: they all read the same K and V rows at the same time (uniform loads),
// and nothing is shared or reduced across invocations (no barriers, no shared memory).
// Keys go in blocks of 4 with an online softmax in log2 units (one rescale per block); keys
// past a query's own position get no weight. Rows past the chunk compute the last query's
// row and write nothing.
//
// Workgroup size = GROUP x QUERIES (spec 0), GROUP = q_heads / kv_heads (spec 5), HEAD_DIM a
// multiple of 8 (spec 4). Grid: (ceil(T / QUERIES), kv_heads).
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "common/workgroup.glsl"
#include "abi/attention_prefill.h"

layout(constant_id = 4) const uint HEAD_DIM = 128;
layout(constant_id = 5) const uint GROUP = 4;
const uint QUERIES = gl_WorkGroupSize.x / GROUP;
const uint VECS = HEAD_DIM / 4;  // vec4s per head row
const uint KEY_BLOCK = 4;
const float NO_SCORE = -1.0e30;  // finite: (NO_SCORE - NO_SCORE) is 0 on every driver
const float LOG2_E = 1.4426950408889634;

layout(set = 0, binding = 0) readonly buffer Q { float q[]; };
#ifdef KV_F16
// Eight halves per unit (packHalf2x16 pairs, even element low).
layout(set = 0, binding = 1) readonly buffer KCache { uvec4 k_units[]; };
layout(set = 0, binding = 2) readonly buffer VCache { uvec4 v_units[]; };
const uint UNIT_ELEMENTS = 8;
vec4 unit_lo(uvec4 u) { return vec4(unpackHalf2x16(u.x), unpackHalf2x16(u.y)); }
vec4 unit_hi(uvec4 u) { return vec4(unpackHalf2x16(u.z), unpackHalf2x16(u.w)); }
#define K_VEC(unit, i) ((i) % 2u == 0u ? unit_lo(k_units[(unit) + (i) / 2u]) : unit_hi(k_units[(unit) + (i) / 2u]))
#define V_VEC(unit, i) ((i) % 2u == 0u ? unit_lo(v_units[(unit) + (i) / 2u]) : unit_hi(v_units[(unit) + (i) / 2u]))
#else
layout(set = 0, binding = 1) readonly buffer KCache { vec4 k_units[]; };
layout(set = 0, binding = 2) readonly buffer VCache { vec4 v_units[]; };
const uint UNIT_ELEMENTS = 4;
#define K_VEC(unit, i) k_units[(unit) + (i)]
#define V_VEC(unit, i) v_units[(unit) + (i)]
#endif
layout(set = 0, binding = 3) writeonly buffer Out { float out_values[]; };
layout(push_constant) uniform Push { AttentionPrefillPush pc; };

void main() {
  const uint lane = gl_LocalInvocationIndex;
  const uint kv_head = gl_WorkGroupID.y;
  const uint first_query = gl_WorkGroupID.x * QUERIES;
  if (first_query >= pc.tokens) return;
  const uint query = first_query + lane / GROUP;
  const uint head = kv_head * GROUP + lane % GROUP;
  const uint t = min(query, pc.tokens - 1u);  // rows past the chunk redo the last query
  const uint last_key = pc.pos0 + t;          // this row sees keys 0 .. last_key
  // Keys 0 .. keys_end-1: everything the workgroup's last query sees (uniform).
  const uint keys_end = pc.pos0 + min(first_query + QUERIES, pc.tokens);
  const uint row_units = pc.kv_heads * HEAD_DIM / UNIT_ELEMENTS;  // units per cache row
  const uint head_unit = kv_head * HEAD_DIM / UNIT_ELEMENTS;

  // q, scaled into log2 units.
  vec4 qv[VECS];
  const uint q_first = pc.q_offset + t * pc.q_row_stride + head * HEAD_DIM;
  const float q_scale = pc.scale * LOG2_E;
  [[unroll]] for (uint i = 0u; i < VECS; ++i) {
    const uint e = q_first + 4u * i;
    qv[i] = vec4(q[e], q[e + 1u], q[e + 2u], q[e + 3u]) * q_scale;
  }

  vec4 acc[VECS];
  [[unroll]] for (uint i = 0u; i < VECS; ++i) acc[i] = vec4(0.0);
  float running_max = NO_SCORE, running_sum = 0.0;
  for (uint key0 = 0u; key0 < keys_end; key0 += KEY_BLOCK) {
    // Scores of the block's keys (a key past the end re-reads the last one and is masked).
    float s[KEY_BLOCK];
    uint unit[KEY_BLOCK];
    [[unroll]] for (uint b = 0u; b < KEY_BLOCK; ++b) {
      unit[b] = min(key0 + b, keys_end - 1u) * row_units + head_unit;
      float dot_sum = 0.0;
      [[unroll]] for (uint i = 0u; i < VECS; ++i) dot_sum += dot(qv[i], K_VEC(unit[b], i));
      s[b] = key0 + b <= last_key ? dot_sum : NO_SCORE;
    }
    // Key 0 is in the first block and visible to every row: the max is real from then on.
    const float new_max = max(running_max, max(max(s[0], s[1]), max(s[2], s[3])));
    const float alpha = exp2(running_max - new_max);
    float p[KEY_BLOCK];
    [[unroll]] for (uint b = 0u; b < KEY_BLOCK; ++b) p[b] = exp2(s[b] - new_max);
    running_sum = running_sum * alpha + ((p[0] + p[1]) + (p[2] + p[3]));
    running_max = new_max;
    [[unroll]] for (uint i = 0u; i < VECS; ++i) {
      vec4 a = acc[i] * alpha;
      [[unroll]] for (uint b = 0u; b < KEY_BLOCK; ++b) a += p[b] * V_VEC(unit[b], i);
      acc[i] = a;
    }
  }

  if (query >= pc.tokens) return;
  const float inv_sum = 1.0 / running_sum;
  const uint out_first = t * pc.out_row_stride + head * HEAD_DIM;
  [[unroll]] for (uint i = 0u; i < VECS; ++i) {
    const vec4 value = acc[i] * inv_sum;
    const uint e = out_first + 4u * i;
    out_values[e] = value.x;
    out_values[e + 1u] = value.y;
    out_values[e + 2u] = value.z;
    out_values[e + 3u] = value.w;
  }
}
