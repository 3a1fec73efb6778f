# THE shader variant table: one row per compiled module, looked up by name at run time.
# Syntax and meaning: shaders/cmake/megrez_shaders.cmake. Kernel authors append rows here.
# Reductions come in two flavours per kernel: <name> (REDUCE_SUBGROUP) and <name>_shmem
# (REDUCE_SHMEM); the runtime picks with DeviceCaps::use_subgroup_reduce().

# Buffer copy: the bandwidth baseline and megrez-info's first self-check.
megrez_variant(NAME copy      SOURCE copy.comp BINDINGS 2 PUSH CopyPush)
megrez_variant(NAME copy_vec4 SOURCE copy.comp BINDINGS 2 PUSH CopyPush DEFINES COPY_VEC4)
# Workgroup reductions (shaders/common/reduce.glsl), both flavours; self-tested below.
megrez_variant(NAME reduce_sum       SOURCE reduce_sum.comp BINDINGS 2 PUSH ReduceSumPush DEFINES REDUCE_SUBGROUP)
megrez_variant(NAME reduce_sum_shmem SOURCE reduce_sum.comp BINDINGS 2 PUSH ReduceSumPush DEFINES REDUCE_SHMEM)

megrez_self_test(copy)
megrez_self_test(reduce_sum)

# MoE (helper "moe"): router, SwiGLU, routed experts. Formats x reduction flavours.
foreach(fmt f32 f16 bf16 q8_0 q4_0)
  string(TOUPPER ${fmt} FMT)
  megrez_variant(NAME router_${fmt}       SOURCE router.comp BINDINGS 6 PUSH RouterPush DEFINES WEIGHT_${FMT} REDUCE_SUBGROUP)
  megrez_variant(NAME router_${fmt}_shmem SOURCE router.comp BINDINGS 6 PUSH RouterPush DEFINES WEIGHT_${FMT} REDUCE_SHMEM)
endforeach()
