#ifndef MEGREZ_ABI_MOE_H
#define MEGREZ_ABI_MOE_H
// Push constants of the expert products: shaders/moe_matvec.comp (one token per z-workgroup;
// variants moe_gate_up_<fmt>, moe_down_<fmt>, swiglu_fused_<fmt>, each also _shmem) and
// shaders/moe_matmul.comp (all tokens of an expert per tile; moe_gate_up_mm_<fmt>,
// moe_down_mm_<fmt>). Entries are (token t, choice k) pairs, numbered t * top_k + k.
//
// Expert slots. A routed expert's weights live in one "slot": gate [rows=inter, cols=dim] at
// byte gate offset, up [inter, dim] at up offset, down [dim, inter] at down offset, each
// row-major [out, in] in its format (ggml blocks along `in`): one GGUF expert's three
// matrices. Slots are slot_bytes apart. The slot store may exceed one binding
// (maxStorageBufferRange), so it is cut into parts of slots_per_part whole slots; a dispatch
// binds ONE part and computes only the experts whose slot lies in it (dispatch once per part
// that holds a selected expert, or once per part when the host does not know the ids).
// Slot table: expert id -> global slot; part = slot / slots_per_part, slot % slots_per_part
// inside it. 0xFFFFFFFF = absent (matches no part). Matrix offsets: multiples of 2 bytes
// (4 for f32); slot_bytes a multiple of 4.
//
// Bindings and grids (R = spec constant 4 = rows per workgroup; TN/TM = spec constants 4/5;
// the *_rows variants: R = workgroup size x rows per invocation below, and in their *_ubo twins
// binding 1 is a uniform buffer holding exactly the input read):
//   moe_gate_up_<fmt>    0 slots part (uint words), 1 x [T, cols] f32, 2 ids [T, K] uint,
//                        3 slot table [E] uint, 4 h [T, K, rows] f32 = silu(gate x) * (up x)
//                        grid (K, ceil(rows / R), T)
//   moe_down_<fmt>       0 slots part, 1 h [T, K, cols] f32, 2 ids, 3 slot table,
//                        4 y [T, K, rows] f32 = down h;  grid (K, ceil(rows / R), T)
//   swiglu_fused_<fmt>   0 weights (gate at matrix_offset, up at up_offset), 1 x [T, cols],
//                        2 h [T, rows] f32;  grid (1, ceil(rows / R), T)  (shared expert, dense MLP)
//   moe_gate_up_mm_<fmt> 0 slots part, 1 x [T, cols], 2 slot table, 3 sorted entries,
//                        4 tiles (shaders/abi/moe_sort.h), 5 h [T*K, rows]
//                        grid (max_tiles, ceil(rows / TN))
//   moe_down_mm_<fmt>    0 slots part, 1 h [T*K, cols], 2 slot table, 3 sorted entries,
//                        4 tiles, 5 y [T*K, rows];  grid (max_tiles, ceil(rows / TN))
#include "prelude.h"

// Tile records written by moe_sort.comp, read by moe_matmul.comp: word 0 = number of tiles;
// tile j = words 1 + 3j ..: expert, first position in the sorted entry list, entry count.
#define MOE_TILE_WORDS 3u

MEGREZ_ABI_BEGIN
struct MoePush {
  uint tokens;          // T (matvec: z-workgroups; unused by the batched kernels)
  uint top_k;           // K, experts per token
  uint n_experts;       // E, slot-table length; ids >= E are skipped
  uint rows;            // output rows of the product: inter (gate/up) or dim (down)
  uint cols;            // input length: dim (gate/up) or inter (down); % 32 == 0 for q8_0/q4_0
  uint matrix_offset;   // byte offset in the slot of gate (gate_up kernels) or down (down)
  uint up_offset;       // byte offset in the slot of up (gate_up kernels only)
  uint slot_bytes;      // distance between slots
  uint part;            // the part of the slot store that is bound
  uint slots_per_part;  // slots in every part (>= 1)
  uint max_tiles;       // batched: tile records available (= workgroups in y)
};

// Rows per matrix that one invocation of the per-invocation decode variants (moe_*_rows,
// swiglu_fused_*_rows; common/row_dot.glsl) sums: the gate/up modes walk twice as many rows,
// gate's and up's. 8 measured no faster than 4. q8_0 read in 16-byte units (*_rows_wide)
// holds 68 words per row and step, so it keeps fewer rows in flight; so does f32, whose
// 16-byte load per 4 weights makes it memory-bound (2 rows measured 8-9 % faster, as the
// dense f32 matvec's 4 rows against 8).
const uint kMoeRowsPerInvocation = 4;
const uint kMoeRowsPerInvocationFew = 2;
MEGREZ_ABI_END

MEGREZ_ABI_CHECK_SIZE(megrez::abi::MoePush, 44)
MEGREZ_ABI_CHECK_OFFSET(megrez::abi::MoePush, max_tiles, 40)

#endif
