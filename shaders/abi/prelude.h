#ifndef MEGREZ_ABI_PRELUDE_H
#define MEGREZ_ABI_PRELUDE_H
// Included by every push-constant header in shaders/abi/, which GLSL and C++ both include,
// so each struct is declared exactly once (no host/shader pairs that can drift).
//
// Rules for ABI structs: members are 32-bit scalars only (uint, int, float). std430 and the
// C++ layout then agree member for member; the runtime also checks sizeof against the
// module's reflected push-constant block when it builds the pipeline.
//
// GLSL side:   layout(push_constant) uniform Push { CopyPush pc; };
// C++ side:    megrez::abi::CopyPush p{...}; dispatch(cmd, pipeline, {...}, p, groups);

#ifdef __cplusplus
#include <cstddef>
#include <cstdint>
#include <type_traits>
#define MEGREZ_ABI_BEGIN namespace megrez::abi { using uint = uint32_t;
#define MEGREZ_ABI_END }
// Size plus the trivially-copyable/standard-layout promises memcpy into push constants needs.
#define MEGREZ_ABI_CHECK_SIZE(T, bytes)                                        \
  static_assert(sizeof(T) == (bytes), #T ": size differs from the GLSL block"); \
  static_assert(std::is_standard_layout_v<T> && std::is_trivially_copyable_v<T>, #T);
#define MEGREZ_ABI_CHECK_OFFSET(T, member, bytes) \
  static_assert(offsetof(T, member) == (bytes), #T "::" #member ": offset differs from std430");
#else
#define MEGREZ_ABI_BEGIN
#define MEGREZ_ABI_END
#define MEGREZ_ABI_CHECK_SIZE(T, bytes)
#define MEGREZ_ABI_CHECK_OFFSET(T, member, bytes)
#endif

// The largest input (x) the per-invocation decode products' *_ubo variants bind as a uniform
// buffer (common/row_dot.glsl); the host also keeps it within maxUniformBufferRange.
#define MEGREZ_ROW_INPUT_UNIFORM_BYTES 65536

// Specialization constant ids shared by every shader (set by the pipeline registry):
// ids 0..2 are the workgroup size (layout(local_size_x_id = 0, ...)), 3 is the subgroup size
// the host chose the kernel for, 4.. are the kernel's own tile shape.
#define MEGREZ_SPEC_SUBGROUP_SIZE 3
#define MEGREZ_SPEC_FIRST_TILE 4

#endif
