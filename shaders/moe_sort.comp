#version 450
// Groups a batch's (token, k) entries by expert for the batched expert products
// (abi/moe_sort.h). ONE workgroup: count per expert (shared atomics; counts do not depend on
// order), exclusive prefix sum, then each expert's entries are listed by one invocation that
// scans the entries in index order, so every list is ascending and the output is identical
// run to run. Cost is O(E * entries / workgroup) reads, small next to the products it feeds.
#extension GL_GOOGLE_include_directive : require
#include "common/workgroup.glsl"
#include "abi/moe_sort.h"
#include "abi/moe.h"

layout(set = 0, binding = 0) readonly buffer Ids { uint ids[]; };
layout(set = 0, binding = 1) writeonly buffer Offsets { uint expert_offsets[]; };
layout(set = 0, binding = 2) writeonly buffer Sorted { uint sorted_entries[]; };
layout(set = 0, binding = 3) writeonly buffer Tiles { uint tiles[]; };
layout(push_constant) uniform Push { MoeSortPush pc; };

// Ids are staged through shared memory in chunks so each is read from memory once.
const uint CHUNK = 1024u;

shared uint expert_count[MOE_SORT_MAX_EXPERTS];
shared uint expert_start[MOE_SORT_MAX_EXPERTS];
shared uint expert_first_tile[MOE_SORT_MAX_EXPERTS];
shared uint expert_listed[MOE_SORT_MAX_EXPERTS];
shared uint chunk_ids[CHUNK];

void main() {
  if (gl_WorkGroupID.x != 0u) return;  // the grid must be 1 workgroup; extra ones do nothing
  const uint lid = gl_LocalInvocationIndex, width = gl_WorkGroupSize.x;
  const uint n_experts = min(pc.n_experts, MOE_SORT_MAX_EXPERTS);
  const uint tile_tokens = max(pc.tile_tokens, 1u);

  for (uint e = lid; e < n_experts; e += width) expert_count[e] = 0u;
  barrier();
  for (uint i = lid; i < pc.entries; i += width) {
    uint e = ids[i];
    if (e < n_experts) atomicAdd(expert_count[e], 1u);
  }
  barrier();

  if (lid == 0u) {  // at most 256 steps: a serial scan is simplest and fast enough
    uint start = 0u, n_tiles = 0u;
    for (uint e = 0u; e < n_experts; ++e) {
      expert_start[e] = start;
      expert_offsets[e] = start;
      expert_first_tile[e] = n_tiles;
      start += expert_count[e];
      n_tiles += (expert_count[e] + tile_tokens - 1u) / tile_tokens;
    }
    expert_offsets[n_experts] = start;
    tiles[0] = min(n_tiles, pc.max_tiles);
  }
  barrier();

  // Invocation lid lists experts lid, lid + width, ...; expert_listed[e] is its own counter.
  for (uint e = lid; e < n_experts; e += width) expert_listed[e] = 0u;
  for (uint chunk = 0u; chunk < pc.entries; chunk += CHUNK) {
    const uint n = min(CHUNK, pc.entries - chunk);
    for (uint i = lid; i < n; i += width) chunk_ids[i] = ids[chunk + i];
    barrier();
    for (uint e = lid; e < n_experts; e += width) {
      uint written = expert_listed[e];
      for (uint i = 0u; i < n; ++i) {
        if (chunk_ids[i] == e) sorted_entries[expert_start[e] + written++] = chunk + i;
      }
      expert_listed[e] = written;
    }
    barrier();  // chunk_ids is overwritten next
  }

  for (uint e = lid; e < n_experts; e += width) {
    const uint count = expert_count[e];
    for (uint j = 0u; j * tile_tokens < count; ++j) {
      const uint tile = expert_first_tile[e] + j;
      if (tile >= pc.max_tiles) break;
      tiles[1u + MOE_TILE_WORDS * tile] = e;
      tiles[2u + MOE_TILE_WORDS * tile] = expert_start[e] + j * tile_tokens;
      tiles[3u + MOE_TILE_WORDS * tile] = min(tile_tokens, count - j * tile_tokens);
    }
  }
}
