#version 450
// Causal GQA attention over the KV cache, flash-attention style, for decode (one query,
// split-K over a long context) and prefill (a chunk of queries) alike. Workgroup (s, y, z)
// owns ROWS = QUERY_BLOCK x HEAD_BLOCK query rows: queries z*QUERY_BLOCK .. and HEAD_BLOCK query
// heads of kv head y / head_blocks (GQA: every K/V row it reads serves all of them); row r is
// query r / HEAD_BLOCK, head r % HEAD_BLOCK. It walks the keys of split s that its queries may
// see in tiles of TILE = workgroup-size keys with an online softmax in log2 units (q is
// pre-scaled by scale * log2(e), so every exponential is an exp2). Query t sees keys
// 0 .. pos0 + t.
//
// Per tile:  1. invocation t scores key tile+t against every row (full dot products: no
//               reduction across invocations for the scores);
//            2. per-row tile maximum: the only cross-invocation reduction, in two flavours
//               (REDUCE_SUBGROUP: subgroupMax + shared partials; REDUCE_SHMEM: a shared tree);
//            3. p = exp2(score - running max) into shared memory, four rows per vec4
//               (exactly 0 for keys a row may not see);
//            4. p * V: invocation u owns output pairs 2i, 2i+1 (i = u % QUADS) of every row over
//               the keys c = u / QUADS (mod KEY_GROUPS); each V load serves all rows and each
//               p load four; the key groups are summed at the end.
// Loads are few and wide on purpose: llvmpipe (lavapipe) fetches every non-constant address
// inside a loop lane by lane, so there the load count is the kernel's cost; on GPUs q and p
// are broadcast reads of shared memory and each V pair is read once per workgroup.
// splits == 1 writes the normalised output; otherwise unnormalised partials that
// attention_combine.comp merges. KV_F16 / f32 cache: see common/kv_pairs.glsl.
#extension GL_GOOGLE_include_directive : require
#include "common/workgroup.glsl"
#include "abi/attention.h"
#if defined(REDUCE_SUBGROUP) == defined(REDUCE_SHMEM)
#error "define exactly one of REDUCE_SUBGROUP, REDUCE_SHMEM"
#endif
#ifdef REDUCE_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif

layout(constant_id = 4) const uint HEAD_DIM = 128;
layout(constant_id = 5) const uint HEAD_BLOCK = 4;
layout(constant_id = 6) const uint QUERY_BLOCK = 1;
const uint TILE = gl_WorkGroupSize.x;
const uint ROWS = HEAD_BLOCK * QUERY_BLOCK;
const uint ROW_QUADS = (ROWS + 3) / 4;          // vec4s holding one value per row
const uint HALF_DIM = HEAD_DIM / 2;             // pairs per head
const uint QUADS = (HALF_DIM + 1) / 2;          // pairs of pairs; the last may hold one pair
const uint KEY_GROUPS = TILE / QUADS;           // the host keeps QUADS <= TILE
// Below any score, finite so that (sentinel - sentinel) is 0, not NaN, on every driver.
const float NO_SCORE = -1.0e30;
const float LOG2_E = 1.4426950408889634;

layout(set = 0, binding = 0) readonly buffer Q { float q[]; };
#define KV_K_BINDING 1
#define KV_V_BINDING 2
#include "common/kv_pairs.glsl"
layout(set = 0, binding = 3) writeonly buffer Destination { float destination[]; };
layout(push_constant) uniform Push { AttentionPush pc; };

shared vec4 q_shared[ROWS * QUADS];   // [row][quad], pre-scaled, zero past the head; at the end: merge buffer
shared vec4 tile_p[TILE * ROW_QUADS]; // [key][row quad]: reduction scratch, then p

// Element r of a vec4 array holding one value per row.
#define ROW_VALUE(array, r) array[(r) / 4][(r) % 4]

void main() {
  const uint tid = gl_LocalInvocationIndex;
  const uint group_size = pc.q_heads / pc.kv_heads;
  const uint head_blocks = (group_size + HEAD_BLOCK - 1) / HEAD_BLOCK;
  const uint kv_head = gl_WorkGroupID.y / head_blocks;
  const uint first_head = kv_head * group_size + (gl_WorkGroupID.y % head_blocks) * HEAD_BLOCK;
  const uint heads_here = min(HEAD_BLOCK, kv_head * group_size + group_size - first_head);
  const uint first_query = gl_WorkGroupID.z * QUERY_BLOCK;
  const uint queries_here = min(QUERY_BLOCK, pc.tokens - first_query);
  const uint row_pairs = pc.kv_heads * HALF_DIM;  // pairs per cache row
  const uint head_pairs = kv_head * HALF_DIM;     // this kv head's first pair in a row

  // q rows, scaled so that scores come out in log2 units; rows past the chunk or the group are 0.
  const float q_scale = pc.scale * LOG2_E;
  for (uint e = tid; e < ROWS * QUADS; e += TILE) {
    const uint r = e / QUADS, quad = e - r * QUADS;
    const uint t = r / HEAD_BLOCK, j = r % HEAD_BLOCK;
    vec4 value = vec4(0.0);
    if (t < queries_here && j < heads_here) {
      const uint first = pc.q_offset + (first_query + t) * pc.q_row_stride + (first_head + j) * HEAD_DIM + 4 * quad;
      value.xy = vec2(q[first], q[first + 1]);
      if (2 * quad + 1 < HALF_DIM) value.zw = vec2(q[first + 2], q[first + 3]);
    }
    q_shared[e] = value * q_scale;
  }
  barrier();

  // Keys of this split that the block's last query sees; the key limit of row r is
  // pos0 + (its query), padding rows behaving like the last real query.
  const uint split_begin = gl_WorkGroupID.x * pc.chunk;
  const uint split_end = min(split_begin + pc.chunk, pc.pos0 + first_query + queries_here);
  uint last_key[ROWS];
  for (uint r = 0; r < ROWS; ++r) last_key[r] = pc.pos0 + first_query + min(r / HEAD_BLOCK, queries_here - 1);

  vec4 running_max[ROW_QUADS];
  vec4 sum[ROW_QUADS];
  for (uint h = 0; h < ROW_QUADS; ++h) {
    running_max[h] = vec4(NO_SCORE);
    sum[h] = vec4(0.0);
  }
  // Step 4's role: pairs 2 * quad and 2 * quad + 1 (clamped to the head; the duplicate of an
  // odd head's last pair is never written) of every row, keys key_group + KEY_GROUPS * m.
  const uint quad = tid % QUADS;
  const uint key_group = tid / QUADS;
  const uint pair0 = head_pairs + 2 * quad;
  const uint pair1 = head_pairs + min(2 * quad + 1, HALF_DIM - 1);
  vec4 acc[ROWS];  // (pair0, pair1) of each row
  for (uint r = 0; r < ROWS; ++r) acc[r] = vec4(0.0);

  for (uint tile = split_begin; tile < split_end; tile += TILE) {
    const uint tile_len = min(TILE, split_end - tile);
    const uint key = tile + tid;
    // 1. Scores of key `key` for every row; NO_SCORE where the row may not see it.
    vec4 score[ROW_QUADS];
    for (uint h = 0; h < ROW_QUADS; ++h) score[h] = vec4(0.0);
    if (tid < tile_len) {
      const uint key_pairs = key * row_pairs + head_pairs;
      for (uint u = 0; u < HALF_DIM / 2; ++u) {
        const vec4 k = vec4(load_k_pair(key_pairs + 2 * u), load_k_pair(key_pairs + 2 * u + 1));
        for (uint r = 0; r < ROWS; ++r) ROW_VALUE(score, r) += dot(q_shared[r * QUADS + u], k);
      }
      if (HALF_DIM % 2 == 1) {
        const vec4 k = vec4(load_k_pair(key_pairs + HALF_DIM - 1), 0.0, 0.0);
        for (uint r = 0; r < ROWS; ++r) ROW_VALUE(score, r) += dot(q_shared[r * QUADS + QUADS - 1], k);
      }
    }
    for (uint r = 0; r < ROWS; ++r) {
      if (tid >= tile_len || key > last_key[r]) ROW_VALUE(score, r) = NO_SCORE;
    }

    // 2. Tile maximum per row.
    vec4 tile_max[ROW_QUADS];
#ifdef REDUCE_SUBGROUP
    for (uint h = 0; h < ROW_QUADS; ++h) {
      const vec4 m = subgroupMax(score[h]);
      if (subgroupElect()) tile_p[gl_SubgroupID * ROW_QUADS + h] = m;
    }
    barrier();
    for (uint h = 0; h < ROW_QUADS; ++h) {
      vec4 m = vec4(NO_SCORE);
      for (uint s = 0; s < gl_NumSubgroups; ++s) m = max(m, tile_p[s * ROW_QUADS + h]);
      tile_max[h] = m;
    }
#else
    for (uint h = 0; h < ROW_QUADS; ++h) tile_p[tid * ROW_QUADS + h] = score[h];
    barrier();
    // Tree over any TILE (not only powers of two): halve the active width each step.
    uint width = TILE;
    uint half_width = 1;
    while (half_width < width) half_width <<= 1;
    for (half_width >>= 1; half_width > 0; half_width >>= 1) {
      if (tid < half_width && tid + half_width < width) {
        for (uint h = 0; h < ROW_QUADS; ++h) {
          tile_p[tid * ROW_QUADS + h] = max(tile_p[tid * ROW_QUADS + h], tile_p[(tid + half_width) * ROW_QUADS + h]);
        }
      }
      barrier();
      width = min(width, half_width);
    }
    for (uint h = 0; h < ROW_QUADS; ++h) tile_max[h] = tile_p[h];
#endif
    barrier();  // everyone has read the scratch before it is overwritten with p

    // 3. Probabilities against the new running max; old sums rescaled. Every invocation
    //    holds the same maxima, so each rescales its own accumulators without sharing. A row
    //    that has seen no key yet keeps max NO_SCORE: its alpha is 1 on zero sums, and its
    //    masked p are forced to 0 (exp2(NO_SCORE - NO_SCORE) would be 1).
    vec4 alpha[ROW_QUADS];
    for (uint h = 0; h < ROW_QUADS; ++h) {
      const vec4 new_max = max(running_max[h], tile_max[h]);
      alpha[h] = exp2(running_max[h] - new_max);
      sum[h] *= alpha[h];
      running_max[h] = new_max;
      const bvec4 visible = greaterThan(score[h], vec4(NO_SCORE));
      tile_p[tid * ROW_QUADS + h] = mix(vec4(0.0), exp2(score[h] - new_max), visible);
    }
    // Constant trip counts everywhere a private array is indexed, so compilers unroll them
    // and keep the arrays in registers.
    for (uint r = 0; r < ROWS; ++r) acc[r] *= ROW_VALUE(alpha, r);
    barrier();

    // 4. acc += sum_c p[c] * V[c] over this invocation's keys of the tile.
    if (key_group < KEY_GROUPS) {
      for (uint c = key_group; c < tile_len; c += KEY_GROUPS) {
        const uint row = (tile + c) * row_pairs;
        const vec4 v = vec4(load_v_pair(row + pair0), load_v_pair(row + pair1));
        vec4 p[ROW_QUADS];
        for (uint h = 0; h < ROW_QUADS; ++h) {
          p[h] = tile_p[c * ROW_QUADS + h];
          sum[h] += p[h];
        }
        for (uint r = 0; r < ROWS; ++r) acc[r] += ROW_VALUE(p, r) * v;
      }
    }
    barrier();  // p is rewritten by the next tile
  }

  // Sum the key groups into group 0 (q_shared and tile_p are free now).
  for (uint g = 1; g < KEY_GROUPS; ++g) {
    if (key_group == g) {
      for (uint r = 0; r < ROWS; ++r) q_shared[r * QUADS + quad] = acc[r];
      if (quad == 0) {
        for (uint h = 0; h < ROW_QUADS; ++h) tile_p[h] = sum[h];
      }
    }
    barrier();
    if (key_group == 0) {
      for (uint r = 0; r < ROWS; ++r) acc[r] += q_shared[r * QUADS + quad];
      for (uint h = 0; h < ROW_QUADS; ++h) sum[h] += tile_p[h];
    }
    barrier();
  }

  if (key_group != 0) return;
  for (uint r = 0; r < ROWS; ++r) {
    const uint t = r / HEAD_BLOCK, j = r % HEAD_BLOCK;
    if (t >= queries_here || j >= heads_here) continue;
    const uint token = first_query + t, head = first_head + j;
    vec4 value = acc[r];
    uint first;
    if (pc.splits == 1) {
      // One split saw every key of the row: normalise and write the output.
      value /= ROW_VALUE(sum, r);
      first = pc.out_offset + token * pc.out_row_stride + head * HEAD_DIM + 4 * quad;
    } else {
      // Unnormalised partial result: [m, l, acc[HEAD_DIM]] per (split, token, head).
      const uint base = ((gl_WorkGroupID.x * pc.tokens + token) * pc.q_heads + head) * (HEAD_DIM + 2);
      if (quad == 0) {
        destination[base] = ROW_VALUE(running_max, r);
        destination[base + 1] = ROW_VALUE(sum, r);
      }
      first = base + 2 + 4 * quad;
    }
    destination[first] = value.x;
    destination[first + 1] = value.y;
    if (2 * quad + 1 < HALF_DIM) {
      destination[first + 2] = value.z;
      destination[first + 3] = value.w;
    }
  }
}
