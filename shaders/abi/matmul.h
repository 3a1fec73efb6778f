#ifndef MEGREZ_ABI_MATMUL_H
#define MEGREZ_ABI_MATMUL_H
// Push constants of shaders/matmul.comp (variants matmul_<fmt>), the prefill product:
//   Y[t * y_stride + y_offset + r] (+)= sum_c W[weight_row + r, c] * X[x_offset + t * x_stride + c]
// for r < rows, t < tokens. Bindings: 0 W (any format, range a multiple of 4 bytes),
// 1 X (fp32 [tokens, x_stride]), 2 Y (fp32 [tokens, y_stride], read when accumulate != 0);
// matmul_<fmt>_rows_ubo: 1 and 3-9 the rows of X of 8 tokens, uniform buffers (x_stride unused).
// Specialization: workgroup {(TILE_ROWS / THREAD_ROWS) * (TILE_TOKENS / THREAD_TOKENS), 1, 1};
// constant 3 subgroup size; 4 TILE_ROWS, 5 TILE_TOKENS, 6 THREAD_ROWS, 7 THREAD_TOKENS.
// Grid: {ceil(rows / TILE_ROWS), ceil(tokens / TILE_TOKENS)}.
#include "prelude.h"

MEGREZ_ABI_BEGIN
struct MatmulPush {
  uint rows;        // weight rows (outputs per token) computed by this dispatch
  uint cols;        // input length (a multiple of 32 for q8_0 / q4_0)
  uint tokens;      // rows of X
  uint weight_row;  // row of the bound weight range that is output row 0
  uint x_offset;    // element offset of X[0, 0]
  uint x_stride;    // elements between consecutive tokens of X (>= cols)
  uint y_offset;    // element offset of Y[0, 0] (column offset of this part's rows)
  uint y_stride;    // elements between consecutive tokens of Y (>= y_offset's rows + rows)
  uint accumulate;  // 0: Y = X W^T; 1: Y += X W^T
};
MEGREZ_ABI_END

// Rows x tokens one invocation of matmul_rows.comp sums (the batched MoE products' _rows
// variants, moe_matmul.comp, also 4 rows): each weight load (and quantized block decoded)
// serves 8 tokens and each x load 4 rows; 8 tokens measured 1.2-1.9x faster than 4 for
// q8_0/q4_0 on lavapipe, 16 slower (spills). Preprocessor constants: the _ubo variant declares
// one input binding per token.
#define MEGREZ_MATMUL_ROWS_PER_INVOCATION 4
#define MEGREZ_MATMUL_TOKENS_PER_INVOCATION 8

MEGREZ_ABI_CHECK_SIZE(megrez::abi::MatmulPush, 36)
MEGREZ_ABI_CHECK_OFFSET(megrez::abi::MatmulPush, accumulate, 32)

#endif
