#version 450
// Matrix-vector product for decode: y[y_offset + r] (+)= sum_c W[weight_row + r, c] * x[c],
// W in any weight format (common/weights.glsl), x and the accumulation in fp32.
//
// Work split: each workgroup owns ROWS_PER_GROUP consecutive rows. A row is cut into
// "quarters" (8 weights, see weights.glsl) and the invocations stride over the quarters, so a
// 2048-wide row keeps 256 invocations busy even in q4_0 (64 blocks). Each x quarter is loaded
// once and used for all the workgroup's rows. Float formats may have any width: the last
// cols % 8 columns are added one by one.
// The per-row partial sums are then reduced across the workgroup, either with subgroup adds
// plus shared memory (REDUCE_SUBGROUP) or through shared memory alone (REDUCE_SHMEM, for
// drivers without usable subgroup arithmetic). The order is fixed for a given workgroup and
// subgroup size, so results are deterministic.
#extension GL_GOOGLE_include_directive : require
#include "common/workgroup.glsl"
#include "abi/matvec.h"

#if defined(REDUCE_SUBGROUP) == defined(REDUCE_SHMEM)
#error "define exactly one of REDUCE_SUBGROUP, REDUCE_SHMEM"
#endif
#ifdef REDUCE_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#include "common/subgroup_count.glsl"
#endif

layout(set = 0, binding = 0) readonly buffer Weights { uint w[]; };
layout(set = 0, binding = 1) readonly buffer X { float x[]; };
layout(set = 0, binding = 2) buffer Y { float y[]; };
layout(push_constant) uniform Push { MatvecPush pc; };
layout(constant_id = 4) const uint ROWS_PER_GROUP = 2;

#define WEIGHT_WORD(i) w[i]
#include "common/weights.glsl"

// One slot per (row, invocation): the most the shared-memory tree needs; the subgroup
// flavour uses the first ROWS_PER_GROUP * subgroup_count() slots.
shared float row_partials[ROWS_PER_GROUP * gl_WorkGroupSize.x];

vec4 load_x4(uint i) { return vec4(x[i], x[i + 1u], x[i + 2u], x[i + 3u]); }

// Sums acc[r] over the workgroup; invocation r < ROWS_PER_GROUP gets row r's total.
float reduce_rows(float acc[ROWS_PER_GROUP]) {
  uint tid = gl_LocalInvocationIndex;
#ifdef REDUCE_SUBGROUP
  for (uint r = 0u; r < ROWS_PER_GROUP; ++r) {
    float s = subgroupAdd(acc[r]);
    if (subgroupElect()) row_partials[r * subgroup_count() + gl_SubgroupID] = s;
  }
  barrier();
  float total = 0.0;
  if (tid < ROWS_PER_GROUP) {
    for (uint i = 0u; i < subgroup_count(); ++i) total += row_partials[tid * subgroup_count() + i];
  }
  return total;
#else
  const uint width = gl_WorkGroupSize.x;
  for (uint r = 0u; r < ROWS_PER_GROUP; ++r) row_partials[r * width + tid] = acc[r];
  barrier();
  // Tree over any width (not only powers of two), all rows at once.
  uint n = width;
  uint half_width = 1u;
  while (half_width < n) half_width <<= 1;
  for (half_width >>= 1; half_width > 0u; half_width >>= 1) {
    if (tid < half_width && tid + half_width < n) {
      for (uint r = 0u; r < ROWS_PER_GROUP; ++r) row_partials[r * width + tid] += row_partials[r * width + tid + half_width];
    }
    barrier();
    n = min(n, half_width);
  }
  return tid < ROWS_PER_GROUP ? row_partials[tid * width] : 0.0;
#endif
}

void main() {
  uint group = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  uint first_row = group * ROWS_PER_GROUP;
  // Uniform per workgroup, so leaving before the barriers is safe.
  if (first_row >= pc.rows) return;
  uint tid = gl_LocalInvocationIndex;
  uint row_bytes = WEIGHT_ROW_BYTES(pc.cols);
  // Rows past the end (last group) recompute the last row; their sums are never written.
  uint row_byte[ROWS_PER_GROUP];
  float acc[ROWS_PER_GROUP];
  for (uint r = 0u; r < ROWS_PER_GROUP; ++r) {
    row_byte[r] = (pc.weight_row + min(first_row + r, pc.rows - 1u)) * row_bytes;
    acc[r] = 0.0;
  }

  uint quarters = pc.cols / 8u;
  for (uint u = tid; u < quarters; u += gl_WorkGroupSize.x) {
    uint block = u >> 2, q = u & 3u;
    uint col = pc.x_offset + block * 32u;
    vec4 x_lo = load_x4(col + WEIGHT_QUARTER_LO(q));
    vec4 x_hi = load_x4(col + WEIGHT_QUARTER_HI(q));
    for (uint r = 0u; r < ROWS_PER_GROUP; ++r) {
      vec4 w_lo, w_hi;
      weight_quarter(row_byte[r] + block * WEIGHT_BLOCK_BYTES, q, w_lo, w_hi);
      acc[r] += dot(w_lo, x_lo) + dot(w_hi, x_hi);
    }
  }
#if !WEIGHT_QUANTIZED
  for (uint c = quarters * 8u + tid; c < pc.cols; c += gl_WorkGroupSize.x) {
    float xc = x[pc.x_offset + c];
    for (uint r = 0u; r < ROWS_PER_GROUP; ++r) acc[r] += weight_at(row_byte[r], c) * xc;
  }
#endif

  float total = reduce_rows(acc);
  uint row = first_row + tid;
  if (tid < ROWS_PER_GROUP && row < pc.rows) {
    uint i = pc.y_offset + row;
    y[i] = pc.accumulate != 0u ? y[i] + total : total;
  }
}
