#ifndef MEGREZ_ABI_MATVEC_H
#define MEGREZ_ABI_MATVEC_H
// Push constants of shaders/matvec.comp (variants matvec_<fmt>, matvec_<fmt>_shmem):
//   y[y_offset + r] (+)= sum_c W[weight_row + r, c] * x[x_offset + c]   for r < rows.
// Bindings: 0 W (the weight rows, any format, range size a multiple of 4 bytes),
//           1 x (fp32; a uniform buffer in the *_ubo variants of matvec_rows.comp, bound to
//           exactly the cols floats read, x_offset 0), 2 y (fp32, read when accumulate != 0).
// weight_row lets the engine bind one part of a matrix split by rows (SplitBuffer) or a
// sub-range of one binding; y_offset then places the part's rows in the full output.
// Specialization: workgroup {W, 1, 1}; constant 3 subgroup size; constant 4 ROWS_PER_GROUP.
// Grid: ceil(rows / ROWS_PER_GROUP) groups, in x first, spilling into y when over the
// device's max group count (group index = x + y * num_groups_x).
#include "prelude.h"

MEGREZ_ABI_BEGIN
struct MatvecPush {
  uint rows;        // rows computed by this dispatch
  uint cols;        // input length (a multiple of 32 for q8_0 / q4_0)
  uint weight_row;  // row of the bound weight range that is output row 0
  uint x_offset;    // element offset of x in its binding
  uint y_offset;    // element offset of output row 0 in y's binding
  uint accumulate;  // 0: y = W x; 1: y += W x (fuses a residual add)
};

// Rows one invocation of matvec_rows.comp sums (the MoE decode products keep 4 per matrix:
// 8 measured no faster there): every load of x serves all of them, and on CPU drivers
// the x loads cost as much as the weights' (their addresses vary with the loop, so llvmpipe
// cannot load them once for all lanes). 8 rows measured 5-17 % faster than 4 on lavapipe for
// f16, bf16, q8_0 and q4_0. Formats whose step holds many words per row keep 4: f32 (a 16-byte
// load per 4 weights) was not faster at 8, and q8_0 in 16-byte units (matvec_q8_0_rows_wide, 68
// words per row and step) was faster at 4.
const uint kMatvecRowsPerInvocation = 8;
const uint kMatvecRowsPerInvocationFew = 4;
MEGREZ_ABI_END

MEGREZ_ABI_CHECK_SIZE(megrez::abi::MatvecPush, 24)
MEGREZ_ABI_CHECK_OFFSET(megrez::abi::MatvecPush, accumulate, 20)

#endif
