#version 450
// The Megrez2 router (../shared/docs/megrez2-model.md "Router of layer i"), one workgroup per
// token, everything in fp32:
//   s = sigmoid(pre_gate . W^T); b = s + bias (chooses only); group-limited top-k over b;
//   weights = s[ids] (UNBIASED), renormalised when norm_topk_prob, times the scaling factor.
// Selection is a strict total order (larger first, lower id on ties, for groups and for
// experts), computed by ranking rather than by a data-dependent sort, so it is deterministic
// and equals loader/reference/reference_router.cpp exactly on the same scores.
#extension GL_GOOGLE_include_directive : require
#include "common/workgroup.glsl"
#include "abi/router.h"

layout(set = 0, binding = 0) readonly buffer PreGate { float pre_gate[]; };
layout(set = 0, binding = 1) readonly buffer RouterWeight { uint router_words[]; };
layout(set = 0, binding = 2) readonly buffer Bias { float bias[]; };
layout(set = 0, binding = 3) writeonly buffer Ids { uint ids_out[]; };
layout(set = 0, binding = 4) writeonly buffer Weights { float weights_out[]; };
layout(set = 0, binding = 5) writeonly buffer Scores { float scores_out[]; };
layout(push_constant) uniform Push { RouterPush pc; };

#define WEIGHT_WORD(i) router_words[i]
#include "common/weights.glsl"

// Experts whose dot products share one pass over the input (each input quarter is loaded
// once) and one multi-row reduction.
const uint EXPERTS_PER_PASS = 8u;
#define REDUCE_ROWS EXPERTS_PER_PASS
#include "common/reduce_rows.glsl"

shared float score[ROUTER_MAX_EXPERTS];   // s, unbiased
shared float biased[ROUTER_MAX_EXPERTS];  // b = s + bias; NaN mapped to -inf
// Group score = exact sum of the group's two best b, kept as an unevaluated pair (hi + lo),
// so groups compare exactly as the fp64 reference sums them.
shared float group_hi[ROUTER_MAX_EXPERTS];
shared float group_lo[ROUTER_MAX_EXPERTS];
shared bool group_kept[ROUTER_MAX_EXPERTS];
shared uint chosen[ROUTER_MAX_TOP_K];

// "a ranks before b": larger value first, lower index on equal values.
bool before(float va, uint a, float vb, uint b) { return va > vb || (va == vb && a < b); }

// Error-free sum: a + b == hi + lo exactly (Knuth's TwoSum; `precise` forbids reassociation).
void two_sum(float a, float b, out float hi, out float lo) {
  precise float s = a + b;
  precise float bb = s - a;
  precise float err = (a - (s - bb)) + (b - bb);
  hi = s;
  lo = err;
}

// Sigmoid scores of every expert for this token's pre-gate row: invocations stride over the
// rows' 8-weight quarters (weights.glsl), EXPERTS_PER_PASS rows at a time.
void compute_scores(uint x_base, uint n_experts) {
  const uint tid = gl_LocalInvocationIndex, width = gl_WorkGroupSize.x;
  const uint row_bytes = WEIGHT_ROW_BYTES(pc.dim);
  const uint quarters = pc.dim / 8u;
  for (uint first = 0u; first < n_experts; first += EXPERTS_PER_PASS) {
    float partial[EXPERTS_PER_PASS];
    for (uint r = 0u; r < EXPERTS_PER_PASS; ++r) partial[r] = 0.0;
    for (uint u = tid; u < quarters; u += width) {
      const uint block = u >> 2, q = u & 3u;
      const uint col = x_base + block * 32u;
      const vec4 x_lo = vec4(pre_gate[col + WEIGHT_QUARTER_LO(q)], pre_gate[col + WEIGHT_QUARTER_LO(q) + 1u],
                             pre_gate[col + WEIGHT_QUARTER_LO(q) + 2u], pre_gate[col + WEIGHT_QUARTER_LO(q) + 3u]);
      const vec4 x_hi = vec4(pre_gate[col + WEIGHT_QUARTER_HI(q)], pre_gate[col + WEIGHT_QUARTER_HI(q) + 1u],
                             pre_gate[col + WEIGHT_QUARTER_HI(q) + 2u], pre_gate[col + WEIGHT_QUARTER_HI(q) + 3u]);
      for (uint r = 0u; r < EXPERTS_PER_PASS; ++r) {
        // Rows past the last expert re-read the last one; their sums are never used.
        const uint row = min(first + r, n_experts - 1u);
        vec4 w_lo, w_hi;
        weight_quarter(row * row_bytes + block * WEIGHT_BLOCK_BYTES, q, w_lo, w_hi);
        partial[r] += dot(w_lo, x_lo) + dot(w_hi, x_hi);
      }
    }
#if !WEIGHT_QUANTIZED
    // Float formats may end mid-quarter: the last dim % 8 columns one by one.
    for (uint c = quarters * 8u + tid; c < pc.dim; c += width) {
      for (uint r = 0u; r < EXPERTS_PER_PASS; ++r)
        partial[r] += weight_at(min(first + r, n_experts - 1u) * row_bytes, c) * pre_gate[x_base + c];
    }
#endif
    reduce_rows(partial);  // every invocation calls it: no early exit above
    for (uint r = tid; r < EXPERTS_PER_PASS && first + r < n_experts; r += width)
      score[first + r] = 1.0 / (1.0 + exp(-row_totals[r]));
  }
  barrier();
}

// Marks the topk_group groups with the best (two best b) sums.
void choose_groups(uint n_experts, uint n_group, uint topk_group) {
  const uint lid = gl_LocalInvocationIndex, width = gl_WorkGroupSize.x;
  const uint group_size = n_experts / n_group;
  for (uint g = lid; g < n_group; g += width) {
    uint first = g * group_size;
    uint best = first;
    for (uint m = first + 1u; m < first + group_size; ++m) {
      if (before(biased[m], m, biased[best], best)) best = m;
    }
    float hi = biased[best], lo = 0.0;
    if (group_size > 1u) {
      uint second = best == first ? first + 1u : first;
      for (uint m = first; m < first + group_size; ++m) {
        if (m != best && before(biased[m], m, biased[second], second)) second = m;
      }
      two_sum(biased[best], biased[second], hi, lo);
    }
    group_hi[g] = hi;
    group_lo[g] = lo;
  }
  barrier();
  for (uint g = lid; g < n_group; g += width) {
    uint rank = 0u;
    for (uint h = 0u; h < n_group; ++h) {
      bool better = group_hi[h] > group_hi[g] ||
                    (group_hi[h] == group_hi[g] && (group_lo[h] > group_lo[g] || (group_lo[h] == group_lo[g] && h < g)));
      if (better) ++rank;
    }
    group_kept[g] = rank < topk_group;
  }
  barrier();
}

void main() {
  const uint token = gl_WorkGroupID.x;
  if (token >= pc.tokens) return;  // uniform per workgroup: safe before barriers
  const uint lid = gl_LocalInvocationIndex, width = gl_WorkGroupSize.x;
  // Clamps keep every shared-memory index in bounds; the host rejects such values anyway.
  const uint n_experts = min(pc.n_experts, ROUTER_MAX_EXPERTS);
  const uint top_k = min(min(pc.top_k, ROUTER_MAX_TOP_K), n_experts);
  const uint n_group = clamp(pc.n_group, 1u, n_experts);
  const uint topk_group = clamp(pc.topk_group, 1u, n_group);

  compute_scores(token * pc.dim, n_experts);
  for (uint e = lid; e < n_experts; e += width) {
    float b = score[e] + bias[e];
    biased[e] = isnan(b) ? uintBitsToFloat(0xff800000u) : b;  // NaN never outranks anything
    scores_out[token * pc.n_experts + e] = score[e];
  }
  barrier();
  if (n_group > 1u) choose_groups(n_experts, n_group, topk_group);

  // An allowed expert's place in the order among allowed experts; the first top_k places win.
  const uint group_size = n_experts / n_group;
  for (uint e = lid; e < n_experts; e += width) {
    if (n_group > 1u && !group_kept[e / group_size]) continue;
    uint rank = 0u;
    for (uint f = 0u; f < n_experts && rank < top_k; ++f) {
      bool allowed = n_group == 1u || group_kept[f / group_size];
      if (allowed && before(biased[f], f, biased[e], e)) ++rank;
    }
    if (rank < top_k) chosen[rank] = e;
  }
  barrier();

  if (lid == 0u) {
    float sum = 0.0;
    for (uint k = 0u; k < top_k; ++k) sum += score[chosen[k]];  // fixed order
    for (uint k = 0u; k < top_k; ++k) {
      float w = score[chosen[k]];
      if (pc.norm_topk_prob != 0u) w /= sum;
      ids_out[token * pc.top_k + k] = chosen[k];
      weights_out[token * pc.top_k + k] = w * pc.routed_scaling_factor;
    }
  }
}
