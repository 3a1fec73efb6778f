#ifndef MEGREZ_REDUCE_GLSL
#define MEGREZ_REDUCE_GLSL
// Workgroup-wide float reductions in two flavours, chosen per variant by a define:
//   REDUCE_SUBGROUP  subgroup arithmetic within each subgroup, shared memory across them;
//   REDUCE_SHMEM     shared memory only: the fallback for drivers where subgroup-reducing
//                    shaders fail to build (Adreno proprietary, PowerVR) or that lack
//                    subgroup arithmetic (the "minimum" profile).
// Include after common/workgroup.glsl. Assumes a 1-D workgroup (local_size_y = z = 1).
// Every invocation of the workgroup must call each function (they contain barriers), and
// the result is returned to all invocations. Both flavours sum in a fixed order for a given
// workgroup and subgroup size, so results are deterministic run to run.
#if defined(REDUCE_SUBGROUP) && defined(REDUCE_SHMEM)
#error "define only one of REDUCE_SUBGROUP, REDUCE_SHMEM"
#elif !defined(REDUCE_SUBGROUP) && !defined(REDUCE_SHMEM)
#error "define REDUCE_SUBGROUP or REDUCE_SHMEM"
#endif
#ifdef REDUCE_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#include "common/subgroup_count.glsl"
#endif

// One slot per invocation is the most either flavour needs (subgroups can be 1 wide).
shared float reduce_scratch[gl_WorkGroupSize.x];

// Tree over reduce_scratch[0, n): any n, not only powers of two. Leaves the result in
// reduce_scratch[0]. Caller has written the slots and executed barrier().
#define MEGREZ_REDUCE_TREE(OP)                                                  \
  {                                                                             \
    uint half_width = 1;                                                        \
    while (half_width < n) half_width <<= 1;                                    \
    for (half_width >>= 1; half_width > 0; half_width >>= 1) {                  \
      uint i = gl_LocalInvocationIndex;                                         \
      if (i < half_width && i + half_width < n)                                 \
        reduce_scratch[i] = OP(reduce_scratch[i], reduce_scratch[i + half_width]); \
      barrier();                                                                \
      n = min(n, half_width);                                                   \
    }                                                                           \
  }

float megrez_add(float a, float b) { return a + b; }

#ifdef REDUCE_SUBGROUP
#define MEGREZ_REDUCE_BODY(SUBGROUP_OP, OP)                  \
  barrier(); /* earlier readers of reduce_scratch are done */ \
  v = SUBGROUP_OP(v);                                        \
  if (subgroupElect()) reduce_scratch[gl_SubgroupID] = v;    \
  barrier();                                                 \
  uint n = subgroup_count();                                 \
  MEGREZ_REDUCE_TREE(OP)                                     \
  float result = reduce_scratch[0];                          \
  barrier();                                                 \
  return result;
#else
#define MEGREZ_REDUCE_BODY(SUBGROUP_OP, OP)                  \
  barrier();                                                 \
  reduce_scratch[gl_LocalInvocationIndex] = v;               \
  barrier();                                                 \
  uint n = gl_WorkGroupSize.x;                               \
  MEGREZ_REDUCE_TREE(OP)                                     \
  float result = reduce_scratch[0];                          \
  barrier();                                                 \
  return result;
#endif

float reduce_sum(float v) { MEGREZ_REDUCE_BODY(subgroupAdd, megrez_add) }
float reduce_max(float v) { MEGREZ_REDUCE_BODY(subgroupMax, max) }

#endif
