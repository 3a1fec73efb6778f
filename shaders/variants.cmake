# THE shader variant table: one row per compiled module, looked up by name at run time.
# Syntax and meaning: shaders/cmake/megrez_shaders.cmake. Kernel authors append rows here.
# Reductions come in two flavours per kernel: <name> (REDUCE_SUBGROUP) and <name>_shmem
# (REDUCE_SHMEM); the runtime picks with DeviceCaps::use_subgroup_reduce().

# The per-invocation decode products (common/row_dot.glsl), for CPU drivers: <base>_rows, and
# for quantized formats <base>_rows_wide (rows of whole 8-block steps read as 16-byte units,
# ROW_WIDE); each also as <...>_ubo, whose input x is a uniform buffer (ROW_INPUT_UNIFORM).
function(megrez_row_variants base fmt)
  set(suffixes rows)
  if(fmt MATCHES "^q")
    list(APPEND suffixes rows_wide)
  endif()
  foreach(suffix ${suffixes})
    set(defines)
    if(suffix STREQUAL "rows_wide")
      set(defines ROW_WIDE)
    endif()
    megrez_variant(NAME ${base}_${suffix} ${ARGN} ${defines})
    megrez_variant(NAME ${base}_${suffix}_ubo ${ARGN} ${defines} ROW_INPUT_UNIFORM)
  endforeach()
endfunction()

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
  foreach(mode gate_up down)
    string(TOUPPER ${mode} MODE)
    megrez_variant(NAME moe_${mode}_${fmt}       SOURCE moe_matvec.comp BINDINGS 5 PUSH MoePush ABI abi/moe.h DEFINES MOE_${MODE} WEIGHT_${FMT} REDUCE_SUBGROUP)
    megrez_variant(NAME moe_${mode}_${fmt}_shmem SOURCE moe_matvec.comp BINDINGS 5 PUSH MoePush ABI abi/moe.h DEFINES MOE_${MODE} WEIGHT_${FMT} REDUCE_SHMEM)
    megrez_row_variants(moe_${mode}_${fmt} ${fmt} SOURCE moe_matvec.comp BINDINGS 5 PUSH MoePush ABI abi/moe.h DEFINES MOE_${MODE} WEIGHT_${FMT} PER_INVOCATION)
    megrez_variant(NAME moe_${mode}_mm_${fmt}    SOURCE moe_matmul.comp BINDINGS 6 PUSH MoePush ABI abi/moe.h DEFINES MOE_${MODE} WEIGHT_${FMT})
    megrez_variant(NAME moe_${mode}_mm_${fmt}_rows SOURCE moe_matmul.comp BINDINGS 6 PUSH MoePush ABI abi/moe.h DEFINES MOE_${MODE} WEIGHT_${FMT} PER_INVOCATION)
    if(fmt MATCHES "^q")  # x shared through subgroup shuffles (common/row_dot.glsl)
      megrez_variant(NAME moe_${mode}_mm_${fmt}_rows_shuffle SOURCE moe_matmul.comp BINDINGS 6 PUSH MoePush ABI abi/moe.h DEFINES MOE_${MODE} WEIGHT_${FMT} PER_INVOCATION ROW_INPUT_SHUFFLE)
    endif()
  endforeach()
  megrez_variant(NAME swiglu_fused_${fmt}       SOURCE moe_matvec.comp BINDINGS 3 PUSH MoePush ABI abi/moe.h DEFINES SWIGLU_DIRECT WEIGHT_${FMT} REDUCE_SUBGROUP)
  megrez_variant(NAME swiglu_fused_${fmt}_shmem SOURCE moe_matvec.comp BINDINGS 3 PUSH MoePush ABI abi/moe.h DEFINES SWIGLU_DIRECT WEIGHT_${FMT} REDUCE_SHMEM)
  megrez_row_variants(swiglu_fused_${fmt} ${fmt} SOURCE moe_matvec.comp BINDINGS 3 PUSH MoePush ABI abi/moe.h DEFINES SWIGLU_DIRECT WEIGHT_${FMT} PER_INVOCATION)
endforeach()
megrez_variant(NAME swiglu      SOURCE swiglu.comp      BINDINGS 3 PUSH SwigluPush)
megrez_variant(NAME moe_sort    SOURCE moe_sort.comp    BINDINGS 4 PUSH MoeSortPush)
megrez_variant(NAME moe_part_args SOURCE moe_part_args.comp BINDINGS 3 PUSH MoePartArgsPush)
megrez_variant(NAME moe_combine SOURCE moe_combine.comp BINDINGS 4 PUSH MoeCombinePush)

# Dense linear algebra (helper "linear"): matvec (decode), matmul (prefill), embedding
# gather for every weight format; rmsnorm (+ fused residual add), add, argmax.
foreach(fmt f32 f16 bf16 q8_0 q4_0)
  string(TOUPPER ${fmt} FMT)
  megrez_variant(NAME matvec_${fmt}       SOURCE matvec.comp BINDINGS 3 PUSH MatvecPush DEFINES WEIGHT_${FMT} REDUCE_SUBGROUP)
  megrez_variant(NAME matvec_${fmt}_shmem SOURCE matvec.comp BINDINGS 3 PUSH MatvecPush DEFINES WEIGHT_${FMT} REDUCE_SHMEM)
  # Whole rows per invocation, for CPU drivers (Reduce::PerInvocation, common/row_dot.glsl).
  megrez_row_variants(matvec_${fmt} ${fmt} SOURCE matvec_rows.comp BINDINGS 3 PUSH MatvecPush ABI abi/matvec.h DEFINES WEIGHT_${FMT})
  megrez_variant(NAME matmul_${fmt}       SOURCE matmul.comp BINDINGS 3 PUSH MatmulPush DEFINES WEIGHT_${FMT})
  megrez_variant(NAME matmul_${fmt}_rows  SOURCE matmul_rows.comp BINDINGS 3 PUSH MatmulPush ABI abi/matmul.h DEFINES WEIGHT_${FMT})
  megrez_variant(NAME matmul_${fmt}_rows_ubo SOURCE matmul_rows.comp BINDINGS 10 PUSH MatmulPush ABI abi/matmul.h DEFINES WEIGHT_${FMT} ROW_INPUT_UNIFORM_PER_TOKEN)
  if(fmt MATCHES "^q")  # x shared through subgroup shuffles (common/row_dot.glsl)
    megrez_variant(NAME matmul_${fmt}_rows_shuffle SOURCE matmul_rows.comp BINDINGS 3 PUSH MatmulPush ABI abi/matmul.h DEFINES WEIGHT_${FMT} ROW_INPUT_SHUFFLE)
    megrez_variant(NAME matmul_${fmt}_rows_ubo_shuffle SOURCE matmul_rows.comp BINDINGS 10 PUSH MatmulPush ABI abi/matmul.h DEFINES WEIGHT_${FMT} ROW_INPUT_UNIFORM_PER_TOKEN ROW_INPUT_SHUFFLE)
  endif()
  megrez_variant(NAME embed_${fmt}        SOURCE embed.comp  BINDINGS 3 PUSH EmbedPush  DEFINES WEIGHT_${FMT})
  # Test kernel: each common/weights.glsl entry point on its own (tests/kernels/test_weights.cpp).
  megrez_variant(NAME weights_probe_${fmt} SOURCE weights_probe.comp BINDINGS 3 PUSH WeightsProbePush DEFINES WEIGHT_${FMT})
endforeach()
megrez_variant(NAME rmsnorm           SOURCE rmsnorm.comp BINDINGS 3 PUSH RmsnormPush DEFINES REDUCE_SUBGROUP)
megrez_variant(NAME rmsnorm_shmem     SOURCE rmsnorm.comp BINDINGS 3 PUSH RmsnormPush DEFINES REDUCE_SHMEM)
megrez_variant(NAME add_rmsnorm       SOURCE rmsnorm.comp BINDINGS 4 PUSH RmsnormPush DEFINES REDUCE_SUBGROUP ADD_RESIDUAL)
megrez_variant(NAME add_rmsnorm_shmem SOURCE rmsnorm.comp BINDINGS 4 PUSH RmsnormPush DEFINES REDUCE_SHMEM ADD_RESIDUAL)
megrez_variant(NAME moe_combine_rmsnorm       SOURCE rmsnorm.comp BINDINGS 6 PUSH RmsnormPush DEFINES REDUCE_SUBGROUP COMBINE_EXPERTS)
megrez_variant(NAME moe_combine_rmsnorm_shmem SOURCE rmsnorm.comp BINDINGS 6 PUSH RmsnormPush DEFINES REDUCE_SHMEM COMBINE_EXPERTS)
megrez_variant(NAME add               SOURCE add.comp     BINDINGS 2 PUSH AddPush)
megrez_variant(NAME argmax            SOURCE argmax.comp  BINDINGS 3 PUSH ArgmaxPush DEFINES REDUCE_SUBGROUP)
megrez_variant(NAME argmax_shmem      SOURCE argmax.comp  BINDINGS 3 PUSH ArgmaxPush DEFINES REDUCE_SHMEM)
megrez_self_test(linear)   # apps/tools/linear_self_test.cpp: q4_0 matvec, argmax, rmsnorm vs the CPU

# Attention (helper "attention"; runtime/ops/attention.h records them). RoPE and the KV store
# reduce nothing; decode's per-tile max is its only reduction (both flavours); the combine
# pass and prefill reduce within one invocation only, so one variant each.
megrez_variant(NAME rope                        SOURCE rope.comp              BINDINGS 2 PUSH RopePush)
megrez_variant(NAME kv_store_f32                SOURCE kv_store.comp          BINDINGS 6 PUSH KvStorePush)
megrez_variant(NAME kv_store_f16                SOURCE kv_store.comp          BINDINGS 6 PUSH KvStorePush DEFINES KV_F16)
megrez_variant(NAME attention_decode_f32        SOURCE attention_decode.comp  BINDINGS 4 PUSH AttentionDecodePush DEFINES REDUCE_SUBGROUP)
megrez_variant(NAME attention_decode_f32_shmem  SOURCE attention_decode.comp  BINDINGS 4 PUSH AttentionDecodePush DEFINES REDUCE_SHMEM)
megrez_variant(NAME attention_decode_f16        SOURCE attention_decode.comp  BINDINGS 4 PUSH AttentionDecodePush DEFINES REDUCE_SUBGROUP KV_F16)
megrez_variant(NAME attention_decode_f16_shmem  SOURCE attention_decode.comp  BINDINGS 4 PUSH AttentionDecodePush DEFINES REDUCE_SHMEM KV_F16)
megrez_variant(NAME attention_combine           SOURCE attention_combine.comp BINDINGS 2 PUSH AttentionCombinePush)
megrez_variant(NAME attention_prefill_f32       SOURCE attention_prefill.comp BINDINGS 4 PUSH AttentionPrefillPush)
megrez_variant(NAME attention_prefill_f16       SOURCE attention_prefill.comp BINDINGS 4 PUSH AttentionPrefillPush DEFINES KV_F16)
megrez_variant(NAME attention_prefill_rows_f32  SOURCE attention_prefill_rows.comp BINDINGS 4 PUSH AttentionPrefillPush ABI abi/attention_prefill.h)
megrez_variant(NAME attention_prefill_rows_f16  SOURCE attention_prefill_rows.comp BINDINGS 4 PUSH AttentionPrefillPush ABI abi/attention_prefill.h DEFINES KV_F16)
