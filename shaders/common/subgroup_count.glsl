#ifndef MEGREZ_SUBGROUP_COUNT_GLSL
#define MEGREZ_SUBGROUP_COUNT_GLSL
// The number of subgroups in a 1-D workgroup, for kernels that keep one shared-memory slot
// per subgroup. Never read gl_NumSubgroups for this: Mesa 22.3's llvmpipe (Debian
// bookworm's lavapipe) computes it as the workgroup size / gl_SubgroupSize rounded DOWN, so
// a workgroup that is not a whole number of subgroups (7 or 9 invocations at subgroup size 8)
// loses its last, partial subgroup, and one smaller than a subgroup reports 0 subgroups.
// Subgroups are gl_SubgroupSize wide with at most the last one partial, so rounding up is
// the count every driver means (tests/kernels: "reductions with partial subgroups").
#extension GL_KHR_shader_subgroup_basic : require

uint subgroup_count() { return (gl_WorkGroupSize.x + gl_SubgroupSize - 1u) / gl_SubgroupSize; }

#endif
