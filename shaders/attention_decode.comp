#version 450
// Attention for one query token over cache rows 0 .. n_ctx-1, split-K (flash-decoding):
// workgroup (s, y) takes the rows of split s, kv head y / head_blocks, and the HEAD_BLOCK query
// heads (y % head_blocks) * HEAD_BLOCK .. of that kv head's group (GQA: every K/V row it reads
// serves all of them). It walks its rows in tiles of TILE = workgroup-size keys with an online
// softmax and writes the unnormalised result (running max m, sum l, accumulator) to
// partials[s][head]; attention_combine.comp merges the splits. With one split there is
// nothing to merge: binding 3 is then the output and the result is normalised here. Scores are kept in log2 units
// (q is pre-scaled by scale * log2(e)) so every exponential is an exp2.
//
// Per tile:  1. invocation t scores key row tile+t against all HEAD_BLOCK heads (a full dot
//               product each: no reduction across invocations for the scores);
//            2. per-head tile maximum: the only cross-invocation reduction, in two flavours
//               (REDUCE_SUBGROUP: subgroupMax + shared partials; REDUCE_SHMEM: a shared tree);
//            3. p = exp2(score - running max) into shared memory;
//            4. p * V: invocation u owns output pair i = u % (HEAD_DIM/2) of every head of the
//               block over the keys c = u / (HEAD_DIM/2) (mod KEY_GROUPS), so each V pair it
//               loads serves HEAD_BLOCK heads; the key groups are summed once at the end.
// KV_F16 / f32 cache: see common/kv_pairs.glsl.
#extension GL_GOOGLE_include_directive : require
#include "common/workgroup.glsl"
#include "abi/attention_decode.h"
#if defined(REDUCE_SUBGROUP) == defined(REDUCE_SHMEM)
#error "define exactly one of REDUCE_SUBGROUP, REDUCE_SHMEM"
#endif
#ifdef REDUCE_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#include "common/subgroup_count.glsl"
#endif

layout(constant_id = 4) const uint HEAD_DIM = 128;
layout(constant_id = 5) const uint HEAD_BLOCK = 4;
const uint TILE = gl_WorkGroupSize.x;
const uint HALF_DIM = HEAD_DIM / 2;
const uint OUT_PAIRS = HEAD_BLOCK * HALF_DIM;
const uint KEY_GROUPS = TILE / HALF_DIM;  // the host keeps HALF_DIM <= TILE
// Below any score, finite so that (sentinel - sentinel) is 0, not NaN, on every driver.
const float NO_SCORE = -1.0e30;
const float LOG2_E = 1.4426950408889634;

layout(set = 0, binding = 0) readonly buffer Q { float q[]; };
#define KV_K_BINDING 1
#define KV_V_BINDING 2
#include "common/kv_pairs.glsl"
layout(set = 0, binding = 3) writeonly buffer Partials { float partials[]; };
layout(push_constant) uniform Push { AttentionDecodePush pc; };

shared vec2 q_shared[OUT_PAIRS];              // [head][pair], pre-scaled; at the end: merge buffer
shared float tile_values[HEAD_BLOCK * TILE];  // [head][key]: reduction scratch, then p

void main() {
  const uint tid = gl_LocalInvocationIndex;
  const uint group_size = pc.q_heads / pc.kv_heads;
  const uint head_blocks = (group_size + HEAD_BLOCK - 1) / HEAD_BLOCK;
  const uint kv_head = gl_WorkGroupID.y / head_blocks;
  const uint first_head = kv_head * group_size + (gl_WorkGroupID.y % head_blocks) * HEAD_BLOCK;
  const uint heads_here = min(HEAD_BLOCK, kv_head * group_size + group_size - first_head);
  const uint row_pairs = pc.kv_heads * HALF_DIM;   // pairs per cache row
  const uint head_pairs = kv_head * HALF_DIM;      // this kv head's first pair in a row

  // q of this block's heads, scaled so that scores come out in log2 units.
  const float q_scale = pc.scale * LOG2_E;
  for (uint e = tid; e < OUT_PAIRS; e += TILE) {
    const uint j = e / HALF_DIM;
    const uint first = pc.q_offset + (first_head + j) * HEAD_DIM + 2 * (e - j * HALF_DIM);
    q_shared[e] = j < heads_here ? vec2(q[first], q[first + 1]) * q_scale : vec2(0.0);
  }
  barrier();

  const uint chunk_begin = gl_WorkGroupID.x * pc.chunk;
  const uint chunk_end = min(chunk_begin + pc.chunk, pc.n_ctx);
  float running_max[HEAD_BLOCK];
  for (uint j = 0; j < HEAD_BLOCK; ++j) running_max[j] = NO_SCORE;
  // Step 4's role: output pair `pair` of every head, keys key_group, key_group + KEY_GROUPS, ...
  const uint pair = tid % HALF_DIM;
  const uint key_group = tid / HALF_DIM;
  vec2 acc[HEAD_BLOCK];
  float sum[HEAD_BLOCK];
  for (uint j = 0; j < HEAD_BLOCK; ++j) {
    acc[j] = vec2(0.0);
    sum[j] = 0.0;
  }

  for (uint tile = chunk_begin; tile < chunk_end; tile += TILE) {
    const uint tile_len = min(TILE, chunk_end - tile);
    // 1. Scores of key row tile + tid.
    float score[HEAD_BLOCK];
    for (uint j = 0; j < HEAD_BLOCK; ++j) score[j] = tid < tile_len ? 0.0 : NO_SCORE;
    if (tid < tile_len) {
      const uint key_pairs = (tile + tid) * row_pairs + head_pairs;
      for (uint i = 0; i < HALF_DIM; ++i) {
        const vec2 k = load_k_pair(key_pairs + i);
        for (uint j = 0; j < HEAD_BLOCK; ++j) score[j] += dot(q_shared[j * HALF_DIM + i], k);
      }
    }

    // 2. Tile maximum per head.
    float tile_max[HEAD_BLOCK];
#ifdef REDUCE_SUBGROUP
    for (uint j = 0; j < HEAD_BLOCK; ++j) {
      const float m = subgroupMax(score[j]);
      if (subgroupElect()) tile_values[j * TILE + gl_SubgroupID] = m;
    }
    barrier();
    for (uint j = 0; j < HEAD_BLOCK; ++j) {
      float m = NO_SCORE;
      for (uint s = 0; s < subgroup_count(); ++s) m = max(m, tile_values[j * TILE + s]);
      tile_max[j] = m;
    }
#else
    for (uint j = 0; j < HEAD_BLOCK; ++j) tile_values[j * TILE + tid] = score[j];
    barrier();
    // Tree over any TILE (not only powers of two): halve the active width each step.
    uint width = TILE;
    uint half_width = 1;
    while (half_width < width) half_width <<= 1;
    for (half_width >>= 1; half_width > 0; half_width >>= 1) {
      if (tid < half_width && tid + half_width < width) {
        for (uint j = 0; j < HEAD_BLOCK; ++j) {
          tile_values[j * TILE + tid] = max(tile_values[j * TILE + tid], tile_values[j * TILE + tid + half_width]);
        }
      }
      barrier();
      width = min(width, half_width);
    }
    for (uint j = 0; j < HEAD_BLOCK; ++j) tile_max[j] = tile_values[j * TILE];
#endif
    barrier();  // everyone has read the scratch before it is overwritten with p

    // 3. Probabilities against the new running max; old sums rescaled. Every invocation
    //    holds the same maxima, so each rescales its own accumulators without sharing.
    for (uint j = 0; j < HEAD_BLOCK; ++j) {
      const float new_max = max(running_max[j], tile_max[j]);
      const float alpha = exp2(running_max[j] - new_max);
      acc[j] *= alpha;
      sum[j] *= alpha;
      running_max[j] = new_max;
      tile_values[j * TILE + tid] = exp2(score[j] - new_max);
    }
    barrier();

    // 4. acc += sum_c p[c] * V[c] over this invocation's keys of the tile.
    if (key_group < KEY_GROUPS) {
      uint value_pair = (tile + key_group) * row_pairs + head_pairs + pair;
      for (uint c = key_group; c < tile_len; c += KEY_GROUPS, value_pair += KEY_GROUPS * row_pairs) {
        const vec2 v = load_v_pair(value_pair);
        for (uint j = 0; j < HEAD_BLOCK; ++j) {
          const float p = tile_values[j * TILE + c];
          acc[j] += p * v;
          sum[j] += p;
        }
      }
    }
    barrier();  // p is rewritten by the next tile
  }

  // Sum the key groups into group 0 (q_shared and tile_values are free now).
  for (uint g = 1; g < KEY_GROUPS; ++g) {
    if (key_group == g) {
      for (uint j = 0; j < HEAD_BLOCK; ++j) {
        q_shared[j * HALF_DIM + pair] = acc[j];
        if (pair == 0) tile_values[j] = sum[j];
      }
    }
    barrier();
    if (key_group == 0) {
      for (uint j = 0; j < HEAD_BLOCK; ++j) {
        acc[j] += q_shared[j * HALF_DIM + pair];
        sum[j] += tile_values[j];
      }
    }
    barrier();
  }

  // One split: the output, normalised as attention_combine.comp would (weight exp2(0) = 1).
  if (pc.splits == 1u) {
    if (key_group == 0) {
      for (uint j = 0; j < HEAD_BLOCK; ++j) {
        if (j < heads_here) {
          const uint first = pc.out_offset + (first_head + j) * HEAD_DIM + 2 * pair;
          const float inv_total = 1.0 / sum[j];
          partials[first] = acc[j].x * inv_total;
          partials[first + 1] = acc[j].y * inv_total;
        }
      }
    }
    return;
  }

  // Unnormalised partial result of this split: [m, l, acc[HEAD_DIM]] per query head.
  if (key_group == 0) {
    for (uint j = 0; j < HEAD_BLOCK; ++j) {
      if (j < heads_here) {
        const uint base = (gl_WorkGroupID.x * pc.q_heads + first_head + j) * (HEAD_DIM + 2);
        if (pair == 0) {
          partials[base] = running_max[j];
          partials[base + 1] = sum[j];
        }
        partials[base + 2 + 2 * pair] = acc[j].x;
        partials[base + 3 + 2 * pair] = acc[j].y;
      }
    }
  }
}
