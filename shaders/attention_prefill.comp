#version 450
// Causal attention for a chunk of T queries at positions pos0 .. pos0+T-1 over the KV cache
// (flash-attention style). Workgroup (x, y) owns ROWS = QUERY_BLOCK x HEAD_BLOCK query rows:
// queries x*QUERY_BLOCK .. and HEAD_BLOCK query heads of kv head y / head_blocks (GQA: each
// K/V tile loaded into shared memory serves all of them). Row r is query r / HEAD_BLOCK, head
// r % HEAD_BLOCK of the block. Key tiles of KEY_TILE rows run from cache row 0 up to the last
// row any of the block's queries may see, with an online softmax in log2 units.
//
// Per key tile:  load K tile -> scores S = q K^T (masked: key > pos0 + t gets no weight)
//                -> row statistics (invocation r < ROWS walks its row: max, exp2, sum; no
//                reduction across invocations, hence one variant per cache type)
//                -> load V tile into the K tile's slot -> acc = acc * alpha + P V.
// Tile sizes come from DeviceCaps::max_shared_memory (runtime/ops/attention.cpp).
#extension GL_GOOGLE_include_directive : require
#include "common/workgroup.glsl"
#include "abi/attention_prefill.h"

layout(constant_id = 4) const uint HEAD_DIM = 128;
layout(constant_id = 5) const uint HEAD_BLOCK = 4;
layout(constant_id = 6) const uint QUERY_BLOCK = 4;
layout(constant_id = 7) const uint KEY_TILE = 32;
const uint THREADS = gl_WorkGroupSize.x;
const uint HALF_DIM = HEAD_DIM / 2;
const uint ROWS = QUERY_BLOCK * HEAD_BLOCK;
// Register blocking (the host keeps KEY_TILE <= THREADS and HALF_DIM <= THREADS):
// scores: invocation u takes key u % KEY_TILE for rows u / KEY_TILE + SCORE_GROUPS * m, so
//         each K pair it reads serves SCORE_ROWS rows;
// P V:    invocation u takes output pair u % HALF_DIM for rows u / HALF_DIM + PV_GROUPS * m,
//         so each V pair it reads serves PV_ROWS rows.
const uint SCORE_GROUPS = THREADS / KEY_TILE;
const uint SCORE_ROWS = (ROWS + SCORE_GROUPS - 1) / SCORE_GROUPS;
const uint PV_GROUPS = THREADS / HALF_DIM;
const uint PV_ROWS = (ROWS + PV_GROUPS - 1) / PV_GROUPS;
const float NO_SCORE = -1.0e30;  // finite: (NO_SCORE - NO_SCORE) is 0 on every driver
const float LOG2_E = 1.4426950408889634;

layout(set = 0, binding = 0) readonly buffer Q { float q[]; };
#define KV_K_BINDING 1
#define KV_V_BINDING 2
#include "common/kv_pairs.glsl"
layout(set = 0, binding = 3) writeonly buffer Out { float out_values[]; };
layout(push_constant) uniform Push { AttentionPrefillPush pc; };

shared vec2 q_tile[ROWS * HALF_DIM];        // [row][pair], pre-scaled
shared vec2 kv_tile[KEY_TILE * HALF_DIM];   // [key][pair]: K, then V of the same keys
shared float scores[ROWS * KEY_TILE];       // [row][key]: scores, then p
shared float row_alpha[ROWS];
shared float row_sum[ROWS];

void main() {
  const uint tid = gl_LocalInvocationIndex;
  const uint group_size = pc.q_heads / pc.kv_heads;
  const uint head_blocks = (group_size + HEAD_BLOCK - 1) / HEAD_BLOCK;
  const uint kv_head = gl_WorkGroupID.y / head_blocks;
  const uint first_head = kv_head * group_size + (gl_WorkGroupID.y % head_blocks) * HEAD_BLOCK;
  const uint heads_here = min(HEAD_BLOCK, kv_head * group_size + group_size - first_head);
  const uint first_query = gl_WorkGroupID.x * QUERY_BLOCK;
  const uint queries_here = min(QUERY_BLOCK, pc.tokens - first_query);
  const uint row_pairs = pc.kv_heads * HALF_DIM;
  const uint head_pairs = kv_head * HALF_DIM;

  // q rows of the block, scaled into log2 units; rows past the chunk or the group read zeros.
  const float q_scale = pc.scale * LOG2_E;
  for (uint e = tid; e < ROWS * HALF_DIM; e += THREADS) {
    const uint r = e / HALF_DIM;
    const uint t = r / HEAD_BLOCK, j = r % HEAD_BLOCK;
    vec2 value = vec2(0.0);
    if (t < queries_here && j < heads_here) {
      const uint first = pc.q_offset + (first_query + t) * pc.q_row_stride + (first_head + j) * HEAD_DIM +
                         2 * (e - r * HALF_DIM);
      value = vec2(q[first], q[first + 1]) * q_scale;
    }
    q_tile[e] = value;
  }

  // Invocation r < ROWS keeps row r's running max and sum.
  float running_max = NO_SCORE;
  float running_sum = 0.0;
  const uint score_key = tid % KEY_TILE, score_group = tid / KEY_TILE;
  const uint pv_pair = tid % HALF_DIM, pv_group = tid / HALF_DIM;
  vec2 acc[PV_ROWS];
  for (uint m = 0; m < PV_ROWS; ++m) acc[m] = vec2(0.0);

  // Keys 0 .. keys_end-1: everything the block's last query sees.
  const uint keys_end = pc.pos0 + first_query + queries_here;
  for (uint tile = 0; tile < keys_end; tile += KEY_TILE) {
    const uint tile_len = min(KEY_TILE, keys_end - tile);
    // K tile; rows past keys_end are zero so nothing undefined enters the products.
    for (uint e = tid; e < KEY_TILE * HALF_DIM; e += THREADS) {
      const uint c = e / HALF_DIM;
      kv_tile[e] = c < tile_len ? load_k_pair((tile + c) * row_pairs + head_pairs + (e - c * HALF_DIM)) : vec2(0.0);
    }
    barrier();  // also orders the q_tile writes before the first scores

    if (score_group < SCORE_GROUPS) {
      float s[SCORE_ROWS];
      for (uint m = 0; m < SCORE_ROWS; ++m) s[m] = 0.0;
      for (uint i = 0; i < HALF_DIM; ++i) {
        const vec2 k = kv_tile[score_key * HALF_DIM + i];
        for (uint m = 0; m < SCORE_ROWS; ++m) {
          const uint r = min(score_group + m * SCORE_GROUPS, ROWS - 1);  // clamped rows are not stored
          s[m] += dot(q_tile[r * HALF_DIM + i], k);
        }
      }
      for (uint m = 0; m < SCORE_ROWS; ++m) {
        const uint r = score_group + m * SCORE_GROUPS;
        if (r < ROWS) {
          // Causal mask; a padding row (query past the chunk) behaves like the last query.
          const uint query = min(r / HEAD_BLOCK, queries_here - 1);
          scores[r * KEY_TILE + score_key] = tile + score_key <= pc.pos0 + first_query + query ? s[m] : NO_SCORE;
        }
      }
    }
    barrier();

    // Row statistics (key 0 is in the first tile and visible to every row, so the running
    // max is a real score from the first tile on), and the V tile into the K tile's slot.
    if (tid < ROWS) {
      float tile_max = NO_SCORE;
      for (uint c = 0; c < tile_len; ++c) tile_max = max(tile_max, scores[tid * KEY_TILE + c]);
      const float new_max = max(running_max, tile_max);
      const float alpha = exp2(running_max - new_max);
      float tile_sum = 0.0;
      for (uint c = 0; c < tile_len; ++c) {
        const float p = exp2(scores[tid * KEY_TILE + c] - new_max);
        scores[tid * KEY_TILE + c] = p;
        tile_sum += p;
      }
      running_max = new_max;
      running_sum = running_sum * alpha + tile_sum;
      row_alpha[tid] = alpha;
    }
    for (uint e = tid; e < KEY_TILE * HALF_DIM; e += THREADS) {
      const uint c = e / HALF_DIM;
      kv_tile[e] = c < tile_len ? load_v_pair((tile + c) * row_pairs + head_pairs + (e - c * HALF_DIM)) : vec2(0.0);
    }
    barrier();

    if (pv_group < PV_GROUPS) {
      for (uint m = 0; m < PV_ROWS; ++m) acc[m] *= row_alpha[min(pv_group + m * PV_GROUPS, ROWS - 1)];
      for (uint c = 0; c < tile_len; ++c) {
        const vec2 v = kv_tile[c * HALF_DIM + pv_pair];
        for (uint m = 0; m < PV_ROWS; ++m) {
          acc[m] += scores[min(pv_group + m * PV_GROUPS, ROWS - 1) * KEY_TILE + c] * v;
        }
      }
    }
    barrier();  // kv_tile, scores and row_alpha are rewritten by the next tile
  }

  if (tid < ROWS) row_sum[tid] = running_sum;
  barrier();
  for (uint m = 0; m < PV_ROWS; ++m) {
    const uint r = pv_group + m * PV_GROUPS;
    const uint t = r / HEAD_BLOCK, j = r % HEAD_BLOCK;
    if (pv_group < PV_GROUPS && r < ROWS && t < queries_here && j < heads_here) {
      const uint first = (first_query + t) * pc.out_row_stride + (first_head + j) * HEAD_DIM + 2 * pv_pair;
      const vec2 value = acc[m] / row_sum[r];
      out_values[first] = value.x;
      out_values[first + 1] = value.y;
    }
  }
}
