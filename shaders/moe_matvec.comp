#version 450
// Expert products for one token at a time (decode), "matvec style": a workgroup computes
// ROWS_PER_GROUP output rows of one matrix-vector product. Its invocations stride over the
// rows' 8-weight quarters (weights.glsl), so a 2048-wide row keeps 256 invocations busy in
// every format; each input quarter is loaded once for all rows (and both matrices), then one
// multi-row workgroup reduction (common/reduce_rows.glsl). Three modes by define:
//   MOE_GATE_UP    h[t,k] = silu(G_e x[t]) * (U_e x[t]) for e = ids[t,k], read through the
//                  slot table (all K experts in one dispatch: workgroups over (rows, k, t))
//   MOE_DOWN       y[t,k] = D_e h[t,k]
//   SWIGLU_DIRECT  h[t] = silu(G x[t]) * (U x[t]) with G, U at fixed offsets of one binding
//                  (the shared expert, a dense MLP)
// Buffers, push constants and slot layout: abi/moe.h. Activations and sums are fp32.
// PER_INVOCATION (variants *_rows, for CPU drivers: common/row_dot.glsl says why): each
// invocation sums ROWS_PER_INVOCATION whole rows (of both matrices in the gate/up modes;
// abi/moe.h) alone, so a workgroup covers workgroup size x ROWS_PER_INVOCATION rows and nothing
// is reduced across invocations. Their twins: *_rows_wide (quantized rows in 16-byte units) and
// *_ubo (x, binding 1, a uniform buffer), declared by megrez_row_variants in variants.cmake.
#extension GL_GOOGLE_include_directive : require
#include "common/workgroup.glsl"
#include "abi/moe.h"

#if defined(MOE_GATE_UP) || defined(SWIGLU_DIRECT)
#define MATRICES 2
#else
#define MATRICES 1
#endif

#ifdef PER_INVOCATION
#if (defined(WEIGHT_Q8_0) && defined(ROW_WIDE)) || defined(WEIGHT_F32)
#define ROWS_PER_INVOCATION kMoeRowsPerInvocationFew
#else
#define ROWS_PER_INVOCATION kMoeRowsPerInvocation
#endif
#define ROW_STREAMS (MATRICES * ROWS_PER_INVOCATION)
#include "common/row_dot.glsl"  // bindings 0 (weights, as units) and 1 (input, as vec4)
#else
layout(set = 0, binding = 0) readonly buffer Weights { uint weight_words[]; };
layout(set = 0, binding = 1) readonly buffer Input { float input_values[]; };
#endif
#ifdef SWIGLU_DIRECT
layout(set = 0, binding = 2) writeonly buffer Output { float output_values[]; };
#else
layout(set = 0, binding = 2) readonly buffer Ids { uint ids[]; };
layout(set = 0, binding = 3) readonly buffer SlotTable { uint slot_table[]; };
layout(set = 0, binding = 4) writeonly buffer Output { float output_values[]; };
#endif
layout(push_constant) uniform Push { MoePush pc; };

#ifndef PER_INVOCATION
layout(constant_id = 4) const uint ROWS_PER_GROUP = 4u;
#define WEIGHT_WORD(i) weight_words[i]
#include "common/weights.glsl"
// Sums: gate rows 0..R-1, then up rows R..2R-1 (gate/up modes). One named constant, so
// every array sized by it has the same type.
const uint SUMS = uint(MATRICES) * ROWS_PER_GROUP;
#define REDUCE_ROWS SUMS
#include "common/reduce_rows.glsl"

vec4 load_input4(uint i) { return vec4(input_values[i], input_values[i + 1u], input_values[i + 2u], input_values[i + 3u]); }
#endif
#ifndef SWIGLU_DIRECT
#include "common/expert_slots.glsl"
#endif

float silu(float v) { return v / (1.0 + exp(-v)); }

void main() {
  // Grid (K, row groups, T): the choice varies fastest, so a driver that hands each thread a
  // contiguous range of workgroups (llvmpipe does) gives every thread some of every expert;
  // with the choices outermost, a part holding only some of them left threads idle.
  const uint choice = gl_WorkGroupID.x, row_group = gl_WorkGroupID.y, token = gl_WorkGroupID.z;
#ifdef PER_INVOCATION
  // Not uniform per workgroup: fine, this flavour has no barriers.
  const uint first_row = (row_group * gl_WorkGroupSize.x + gl_LocalInvocationIndex) * ROWS_PER_INVOCATION;
#else
  const uint first_row = row_group * ROWS_PER_GROUP;
#endif
  // Every early return below is uniform per workgroup, so it is safe before the barriers (the
  // per-invocation flavour has none, and returns per invocation).
  if (token >= pc.tokens || first_row >= pc.rows) return;
#ifdef SWIGLU_DIRECT
  const uint base = 0u;
  const uint in_base = token * pc.cols, out_base = token * pc.rows;
#else
  const uint entry = token * pc.top_k + choice;
  uint base;
  if (choice >= pc.top_k || !expert_slot_base(ids[entry], base)) return;
#ifdef MOE_GATE_UP
  const uint in_base = token * pc.cols;
#else
  const uint in_base = entry * pc.cols;
#endif
  const uint out_base = entry * pc.rows;
#endif

  const uint row_bytes = WEIGHT_ROW_BYTES(pc.cols);
#ifdef PER_INVOCATION
  // Streams: gate rows, then up rows (gate/up modes); rows past the end re-read the last row.
  uint first_unit[ROW_STREAMS];
  float sums[ROW_STREAMS];
  for (uint i = 0u; i < ROW_STREAMS; ++i) {
    const uint r = min(first_row + i % ROWS_PER_INVOCATION, pc.rows - 1u);
    const uint matrix_offset = i < ROWS_PER_INVOCATION ? pc.matrix_offset : pc.up_offset;
    first_unit[i] = (base + matrix_offset + r * row_bytes) / ROW_UNIT_BYTES;
    sums[i] = 0.0;
  }
  const uint x_first[1] = uint[1](in_base / 4u);
  row_dots(first_unit, x_first, pc.cols, sums);
  for (uint r = 0u; r < ROWS_PER_INVOCATION && first_row + r < pc.rows; ++r) {
#if MATRICES == 2
    const float value = silu(sums[r]) * sums[ROWS_PER_INVOCATION + r];
#else
    const float value = sums[r];
#endif
    output_values[out_base + first_row + r] = value;
  }
#else
  const uint tid = gl_LocalInvocationIndex, width = gl_WorkGroupSize.x;
  // Rows past the end (last group) re-read the last row; their sums are never written.
  uint row_byte[REDUCE_ROWS];
  float acc[REDUCE_ROWS];
  for (uint i = 0u; i < REDUCE_ROWS; ++i) {
    const uint r = i % ROWS_PER_GROUP;
    const uint matrix_offset = i < ROWS_PER_GROUP ? pc.matrix_offset : pc.up_offset;
    row_byte[i] = base + matrix_offset + min(first_row + r, pc.rows - 1u) * row_bytes;
    acc[i] = 0.0;
  }

  const uint quarters = pc.cols / 8u;
  for (uint u = tid; u < quarters; u += width) {
    const uint block = u >> 2, q = u & 3u;
    const uint col = in_base + block * 32u;
    const vec4 x_lo = load_input4(col + WEIGHT_QUARTER_LO(q));
    const vec4 x_hi = load_input4(col + WEIGHT_QUARTER_HI(q));
    for (uint i = 0u; i < REDUCE_ROWS; ++i) {
      vec4 w_lo, w_hi;
      weight_quarter(row_byte[i] + block * WEIGHT_BLOCK_BYTES, q, w_lo, w_hi);
      acc[i] += dot(w_lo, x_lo) + dot(w_hi, x_hi);
    }
  }
#if !WEIGHT_QUANTIZED
  // Float formats may end mid-quarter: the last cols % 8 columns one by one.
  for (uint c = quarters * 8u + tid; c < pc.cols; c += width) {
    const float v = input_values[in_base + c];
    for (uint i = 0u; i < REDUCE_ROWS; ++i) acc[i] += weight_at(row_byte[i], c) * v;
  }
#endif

  reduce_rows(acc);
  for (uint r = tid; r < ROWS_PER_GROUP && first_row + r < pc.rows; r += width) {
#if MATRICES == 2
    const float value = silu(row_totals[r]) * row_totals[ROWS_PER_GROUP + r];
#else
    const float value = row_totals[r];
#endif
    output_values[out_base + first_row + r] = value;
  }
#endif
}
