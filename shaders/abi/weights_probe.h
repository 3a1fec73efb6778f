#ifndef MEGREZ_ABI_WEIGHTS_PROBE_H
#define MEGREZ_ABI_WEIGHTS_PROBE_H
// Push constants of shaders/weights_probe.comp (variants weights_probe_<fmt>): a test kernel
// that decodes a [rows, cols] matrix through one entry point of common/weights.glsl, so
// tests/kernels/test_weights.cpp can hold every entry point to dequantize_row bit for bit.
// Bindings: 0 W (range a multiple of 4 bytes), 1 x (fp32 [cols], mode 3 only), 2 out (fp32).
// Grid {rows}: one workgroup per row.
//   mode 0: weight_block    -> out[r, c] for every whole block (float tails: weight_at)
//   mode 1: weight_quarter  -> out[r, c] for every whole quarter (float tails: weight_at)
//   mode 2: weight_at       -> out[r, c]
//   mode 3: weight_block_dot -> out[r * (cols / 32) + b] = dot(block b of row r, x[32b..])
#include "prelude.h"

MEGREZ_ABI_BEGIN
struct WeightsProbePush {
  uint rows;
  uint cols;
  uint mode;
};
MEGREZ_ABI_END

MEGREZ_ABI_CHECK_SIZE(megrez::abi::WeightsProbePush, 12)

#endif
