#version 450
// Matrix-matrix product for prefill: Y[t, r] (+)= sum_c W[r, c] * X[t, c] for T tokens,
// W in any weight format (common/weights.glsl), X, Y and the accumulation in fp32.
//
// Tiling: a workgroup computes a TILE_ROWS x TILE_TOKENS tile of Y. The shared dimension is
// walked 32 columns (one quant block) at a time: the W tile is dequantized once into shared
// memory (so each weight is decoded once per TILE_TOKENS tokens, not once per token), the X
// tile is staged beside it, and every invocation accumulates a THREAD_ROWS x THREAD_TOKENS
// register tile. Tile sizes are specialization constants the host picks from the device's
// shared memory and invocation limits (runtime/ops/linear.cpp). No reduction across
// invocations, hence no subgroup variant.
#extension GL_GOOGLE_include_directive : require
#include "common/workgroup.glsl"
#include "abi/matmul.h"

layout(set = 0, binding = 0) readonly buffer Weights { uint w[]; };
layout(set = 0, binding = 1) readonly buffer X { float x[]; };
layout(set = 0, binding = 2) buffer Y { float y[]; };
layout(push_constant) uniform Push { MatmulPush pc; };
layout(constant_id = 4) const uint TILE_ROWS = 64;
layout(constant_id = 5) const uint TILE_TOKENS = 32;
layout(constant_id = 6) const uint THREAD_ROWS = 4;
layout(constant_id = 7) const uint THREAD_TOKENS = 4;
const uint TILE_K = 32u;  // one quant block of every row per step
// Invocations along the rows / tokens of the tile; the host makes their product the
// workgroup size.
const uint ROW_THREADS = TILE_ROWS / THREAD_ROWS;
const uint TOKEN_THREADS = TILE_TOKENS / THREAD_TOKENS;
// [k][row] and [k][token] layouts: the compute loop reads consecutive rows/tokens across
// invocations. The +1 spreads the loaders' column-wise writes over the banks.
const uint W_STRIDE = TILE_ROWS + 1u;
const uint X_STRIDE = TILE_TOKENS + 1u;

#define WEIGHT_WORD(i) w[i]
#include "common/weights.glsl"

shared float w_tile[TILE_K * W_STRIDE];
shared float x_tile[TILE_K * X_STRIDE];

// Quarter q of the block at column k0 of row `row`, zero past the matrix (rows or cols).
void load_w_quarter(uint row, uint k0, uint q, out vec4 lo, out vec4 hi) {
  lo = vec4(0.0);
  hi = vec4(0.0);
  if (row >= pc.rows) return;
  uint row_byte = (pc.weight_row + row) * WEIGHT_ROW_BYTES(pc.cols);
#if WEIGHT_QUANTIZED
  weight_quarter(row_byte + (k0 / 32u) * WEIGHT_BLOCK_BYTES, q, lo, hi);
#else
  // Float formats may end mid-quarter; quarters are 8 consecutive columns here.
  uint first = k0 + 8u * q;
  if (first + 8u <= pc.cols) {
    weight_quarter(row_byte + (k0 / 32u) * WEIGHT_BLOCK_BYTES, q, lo, hi);
    return;
  }
  for (uint j = 0u; j < 4u; ++j) {
    if (first + j < pc.cols) lo[j] = weight_at(row_byte, first + j);
    if (first + 4u + j < pc.cols) hi[j] = weight_at(row_byte, first + 4u + j);
  }
#endif
}

void main() {
  uint tid = gl_LocalInvocationIndex;
  uint row0 = gl_WorkGroupID.x * TILE_ROWS;
  uint token0 = gl_WorkGroupID.y * TILE_TOKENS;
  uint row_lane = tid % ROW_THREADS;
  uint token_lane = tid / ROW_THREADS;

  float acc[THREAD_ROWS * THREAD_TOKENS];
  for (uint i = 0u; i < THREAD_ROWS * THREAD_TOKENS; ++i) acc[i] = 0.0;

  for (uint k0 = 0u; k0 < pc.cols; k0 += TILE_K) {
    // Stage W: TILE_ROWS rows x 4 quarters, dequantized.
    for (uint i = tid; i < TILE_ROWS * 4u; i += gl_WorkGroupSize.x) {
      uint r = i >> 2, q = i & 3u;
      vec4 lo, hi;
      load_w_quarter(row0 + r, k0, q, lo, hi);
      for (uint j = 0u; j < 4u; ++j) {
        w_tile[(WEIGHT_QUARTER_LO(q) + j) * W_STRIDE + r] = lo[j];
        w_tile[(WEIGHT_QUARTER_HI(q) + j) * W_STRIDE + r] = hi[j];
      }
    }
    // Stage X: TILE_TOKENS tokens x 32 columns (consecutive invocations read consecutive columns).
    for (uint i = tid; i < TILE_TOKENS * TILE_K; i += gl_WorkGroupSize.x) {
      uint t = i / TILE_K, k = i % TILE_K;
      uint token = token0 + t, col = k0 + k;
      x_tile[k * X_STRIDE + t] = (token < pc.tokens && col < pc.cols) ? x[pc.x_offset + token * pc.x_stride + col] : 0.0;
    }
    barrier();
    for (uint k = 0u; k < TILE_K; ++k) {
      float a[THREAD_ROWS];
      float b[THREAD_TOKENS];
      for (uint i = 0u; i < THREAD_ROWS; ++i) a[i] = w_tile[k * W_STRIDE + row_lane + i * ROW_THREADS];
      for (uint j = 0u; j < THREAD_TOKENS; ++j) b[j] = x_tile[k * X_STRIDE + token_lane + j * TOKEN_THREADS];
      for (uint i = 0u; i < THREAD_ROWS; ++i) {
        for (uint j = 0u; j < THREAD_TOKENS; ++j) acc[i * THREAD_TOKENS + j] += a[i] * b[j];
      }
    }
    barrier();  // the next step overwrites the tiles
  }

  for (uint i = 0u; i < THREAD_ROWS; ++i) {
    uint row = row0 + row_lane + i * ROW_THREADS;
    if (row >= pc.rows) continue;
    for (uint j = 0u; j < THREAD_TOKENS; ++j) {
      uint token = token0 + token_lane + j * TOKEN_THREADS;
      if (token >= pc.tokens) continue;
      uint o = pc.y_offset + token * pc.y_stride + row;
      float v = acc[i * THREAD_TOKENS + j];
      y[o] = pc.accumulate != 0u ? y[o] + v : v;
    }
  }
}
