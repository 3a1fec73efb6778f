#ifndef MEGREZ_REDUCE_ROWS_GLSL
#define MEGREZ_REDUCE_ROWS_GLSL
// Several workgroup-wide sums at once (one per output row a workgroup computes), in the two
// flavours of common/reduce.glsl: REDUCE_SUBGROUP (subgroup adds, then shared memory across
// subgroups: 2 barriers) or REDUCE_SHMEM (a shared-memory tree: log2(width) + 2 barriers).
// Summing all rows in one pass costs the barriers once instead of once per row.
//
// Include after common/workgroup.glsl with REDUCE_ROWS defined as the number of sums (a
// constant or specialization-constant expression). 1-D workgroups only. Every invocation
// must call reduce_rows (it contains barriers); afterwards row_totals[r] holds sum r for
// every invocation, until the next call. The order of additions is fixed for a given
// workgroup and subgroup size, so results are deterministic.
#if defined(REDUCE_SUBGROUP) == defined(REDUCE_SHMEM)
#error "define exactly one of REDUCE_SUBGROUP, REDUCE_SHMEM"
#endif
#ifndef REDUCE_ROWS
#error "define REDUCE_ROWS (sums per call) before including reduce_rows.glsl"
#endif
#ifdef REDUCE_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#include "common/subgroup_count.glsl"
#endif

shared float rows_scratch[REDUCE_ROWS * gl_WorkGroupSize.x];
shared float row_totals[REDUCE_ROWS];

void reduce_rows(float values[REDUCE_ROWS]) {
  const uint tid = gl_LocalInvocationIndex;
#ifdef REDUCE_SUBGROUP
  const uint groups = subgroup_count();
  for (uint r = 0u; r < REDUCE_ROWS; ++r) {
    float s = subgroupAdd(values[r]);
    if (subgroupElect()) rows_scratch[r * groups + gl_SubgroupID] = s;
  }
  barrier();
  for (uint r = tid; r < REDUCE_ROWS; r += gl_WorkGroupSize.x) {
    float total = 0.0;
    for (uint i = 0u; i < groups; ++i) total += rows_scratch[r * groups + i];
    row_totals[r] = total;
  }
#else
  const uint width = gl_WorkGroupSize.x;
  for (uint r = 0u; r < REDUCE_ROWS; ++r) rows_scratch[r * width + tid] = values[r];
  barrier();
  // Tree over any width (not only powers of two), every row at once.
  uint n = width, half_width = 1u;
  while (half_width < n) half_width <<= 1;
  for (half_width >>= 1; half_width > 0u; half_width >>= 1) {
    if (tid < half_width && tid + half_width < n) {
      for (uint r = 0u; r < REDUCE_ROWS; ++r) rows_scratch[r * width + tid] += rows_scratch[r * width + tid + half_width];
    }
    barrier();
    n = min(n, half_width);
  }
  for (uint r = tid; r < REDUCE_ROWS; r += width) row_totals[r] = rows_scratch[r * width];
#endif
  barrier();  // row_totals visible; rows_scratch free for the next call
}

#endif
