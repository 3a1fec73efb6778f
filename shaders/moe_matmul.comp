#version 450
// Expert products for a batch (prefill): tokens are grouped by expert (moe_sort.comp), and a
// workgroup multiplies one tile of an expert's entries (gathered input rows) by TILE_ROWS rows
// of that expert's matrices. The shared dimension is walked one 32-column block at a time:
// the weight tile is decoded once into shared memory for all TILE_TOKENS entries, the input
// rows are staged beside it, and each invocation accumulates a THREAD_ROWS x THREAD_TOKENS
// register tile. Nothing is reduced across invocations, hence one variant per format.
//   MOE_GATE_UP  h[entry] = silu(G_e x[token]) * (U_e x[token]),  token = entry / K
//   MOE_DOWN     y[entry] = D_e h[entry]
// Buffers, push constants and slot layout: abi/moe.h; tiles: abi/moe_sort.h. Each output sums
// its columns in order, so results differ from the decode kernels (which split a row across
// invocations) only by fp32 rounding.
// PER_INVOCATION (variants *_mm_<fmt>_rows, for CPU drivers: common/row_dot.glsl says why):
// no shared memory; each invocation sums ROWS_PER_INVOCATION rows (of both matrices in
// gate/up) for the tile's entries, ENTRIES_PER_INVOCATION at a time; the *_rows_shuffle twins
// (quantized, ROW_INPUT_SHUFFLE) share x's loads across the subgroup (common/row_dot.glsl).
#extension GL_GOOGLE_include_directive : require
#include "common/workgroup.glsl"
#include "abi/moe.h"

#ifdef PER_INVOCATION
#define ROWS_PER_INVOCATION 4  // kMatmulRowsPerInvocation on the host
#define ENTRIES_PER_INVOCATION 4
#ifdef MOE_GATE_UP
#define ROW_STREAMS (2 * ROWS_PER_INVOCATION)  // gate rows, then up rows
#else
#define ROW_STREAMS ROWS_PER_INVOCATION
#endif
#define ROW_TOKENS ENTRIES_PER_INVOCATION
#include "common/row_dot.glsl"  // bindings 0 (weights, as units) and 1 (input, as vec4)
#else
layout(set = 0, binding = 0) readonly buffer Weights { uint weight_words[]; };
layout(set = 0, binding = 1) readonly buffer Input { float input_values[]; };
#endif
layout(set = 0, binding = 2) readonly buffer SlotTable { uint slot_table[]; };
layout(set = 0, binding = 3) readonly buffer Sorted { uint sorted_entries[]; };
layout(set = 0, binding = 4) readonly buffer Tiles { uint tiles[]; };
layout(set = 0, binding = 5) writeonly buffer Output { float output_values[]; };
layout(push_constant) uniform Push { MoePush pc; };
#include "common/expert_slots.glsl"

float silu(float v) { return v / (1.0 + exp(-v)); }

#ifdef PER_INVOCATION
void main() {
  const uint tile = gl_WorkGroupID.x;  // fastest: see the tiled main() below
  // Not uniform per workgroup: fine, this flavour has no barriers.
  const uint first_row = (gl_WorkGroupID.y * gl_WorkGroupSize.x + gl_LocalInvocationIndex) * ROWS_PER_INVOCATION;
#ifdef ROW_INPUT_SHUFFLE
  // Whole workgroups only (every lane takes part in the shuffles): rows past the end are clamped.
  if (tile >= min(tiles[0], pc.max_tiles) || pc.top_k == 0u) return;
#else
  if (tile >= min(tiles[0], pc.max_tiles) || first_row >= pc.rows || pc.top_k == 0u) return;
#endif
  const uint expert = tiles[1u + MOE_TILE_WORDS * tile];
  const uint first = tiles[2u + MOE_TILE_WORDS * tile];
  const uint count = tiles[3u + MOE_TILE_WORDS * tile];
  uint base;
  if (count == 0u || !expert_slot_base(expert, base)) return;
  const uint row_bytes = WEIGHT_ROW_BYTES(pc.cols);
  // Rows past the end re-read the last row; their sums are never written.
  uint first_unit[ROW_STREAMS];
  for (uint i = 0u; i < ROW_STREAMS; ++i) {
    const uint r = min(first_row + i % ROWS_PER_INVOCATION, pc.rows - 1u);
    const uint matrix_offset = i < ROWS_PER_INVOCATION ? pc.matrix_offset : pc.up_offset;
    first_unit[i] = (base + matrix_offset + r * row_bytes) / ROW_UNIT_BYTES;
  }
  for (uint step = 0u; step < count; step += ENTRIES_PER_INVOCATION) {
    // Entries past the tile's end re-read its last entry; their sums are never written.
    uint entries[ROW_TOKENS], x_first[ROW_TOKENS];
    for (uint t = 0u; t < ROW_TOKENS; ++t) {
      entries[t] = sorted_entries[first + min(step + t, count - 1u)];
#ifdef MOE_GATE_UP
      x_first[t] = (entries[t] / pc.top_k) * pc.cols / 4u;  // the entry's token
#else
      x_first[t] = entries[t] * pc.cols / 4u;
#endif
    }
    float sums[ROW_STREAMS * ROW_TOKENS];
    for (uint i = 0u; i < ROW_STREAMS * ROW_TOKENS; ++i) sums[i] = 0.0;
    row_dots(first_unit, x_first, pc.cols, sums);
    for (uint r = 0u; r < ROWS_PER_INVOCATION; ++r) {
      for (uint t = 0u; t < ROW_TOKENS; ++t) {
        if (first_row + r >= pc.rows || step + t >= count) continue;
#ifdef MOE_GATE_UP
        const float value = silu(sums[r * ROW_TOKENS + t]) * sums[(ROWS_PER_INVOCATION + r) * ROW_TOKENS + t];
#else
        const float value = sums[r * ROW_TOKENS + t];
#endif
        output_values[entries[t] * pc.rows + first_row + r] = value;
      }
    }
  }
}
#else
layout(constant_id = 4) const uint TILE_ROWS = 64u;    // weight rows per workgroup
layout(constant_id = 5) const uint TILE_TOKENS = 32u;  // entries per step
layout(constant_id = 6) const uint THREAD_ROWS = 4u;   // register tile of one invocation
layout(constant_id = 7) const uint THREAD_TOKENS = 8u;
// The host makes ROW_THREADS * TOKEN_THREADS the workgroup size.
const uint ROW_THREADS = TILE_ROWS / THREAD_ROWS;
const uint TOKEN_THREADS = TILE_TOKENS / THREAD_TOKENS;
const uint TILE_K = 32u;
// [k][row] / [k][entry] layouts: the compute loop reads consecutive rows/entries across
// invocations; the +1 spreads the loaders' column-wise writes over the banks.
const uint W_STRIDE = TILE_ROWS + 1u;
const uint X_STRIDE = TILE_TOKENS + 1u;

#define WEIGHT_WORD(i) weight_words[i]
#include "common/weights.glsl"

#ifdef MOE_GATE_UP
const uint MATRICES = 2u;  // gate tile, then up tile
#else
const uint MATRICES = 1u;
#endif
const uint ACC = THREAD_ROWS * THREAD_TOKENS;

shared float w_tile[MATRICES * TILE_K * W_STRIDE];
shared float x_tile[TILE_K * X_STRIDE];
shared uint step_entries[TILE_TOKENS];

// Quarter q of the block at column k0 of a row (zero past the row's end: float formats).
void load_quarter(uint row_byte, uint k0, uint q, out vec4 lo, out vec4 hi) {
#if WEIGHT_QUANTIZED
  weight_quarter(row_byte + (k0 / 32u) * WEIGHT_BLOCK_BYTES, q, lo, hi);
#else
  const uint first = k0 + 8u * q;  // float quarters are 8 consecutive columns
  if (first + 8u <= pc.cols) {
    weight_quarter(row_byte + (k0 / 32u) * WEIGHT_BLOCK_BYTES, q, lo, hi);
    return;
  }
  lo = vec4(0.0);
  hi = vec4(0.0);
  for (uint j = 0u; j < 4u; ++j) {
    if (first + j < pc.cols) lo[j] = weight_at(row_byte, first + j);
    if (first + 4u + j < pc.cols) hi[j] = weight_at(row_byte, first + 4u + j);
  }
#endif
}

// Weight tile: MATRICES x TILE_ROWS rows x 4 quarters of the block at column k0.
void stage_weights(uint base, uint first_row, uint k0) {
  const uint row_bytes = WEIGHT_ROW_BYTES(pc.cols);
  for (uint i = gl_LocalInvocationIndex; i < MATRICES * TILE_ROWS * 4u; i += gl_WorkGroupSize.x) {
    const uint matrix = i / (TILE_ROWS * 4u), r = (i >> 2) % TILE_ROWS, q = i & 3u;
    vec4 lo = vec4(0.0), hi = vec4(0.0);
    if (first_row + r < pc.rows) {
      const uint offset = matrix == 0u ? pc.matrix_offset : pc.up_offset;
      load_quarter(base + offset + (first_row + r) * row_bytes, k0, q, lo, hi);
    }
    const uint tile = matrix * TILE_K * W_STRIDE;
    for (uint j = 0u; j < 4u; ++j) {
      w_tile[tile + (WEIGHT_QUARTER_LO(q) + j) * W_STRIDE + r] = lo[j];
      w_tile[tile + (WEIGHT_QUARTER_HI(q) + j) * W_STRIDE + r] = hi[j];
    }
  }
}

// Input tile: columns [k0, k0 + 32) of the step's entries (zero past the end).
void stage_inputs(uint n_entries, uint k0) {
  for (uint i = gl_LocalInvocationIndex; i < TILE_TOKENS * TILE_K; i += gl_WorkGroupSize.x) {
    const uint t = i / TILE_K, k = i % TILE_K;
    float v = 0.0;
    if (t < n_entries && k0 + k < pc.cols) {
#ifdef MOE_GATE_UP
      const uint input_row = step_entries[t] / pc.top_k;  // the entry's token
#else
      const uint input_row = step_entries[t];
#endif
      v = input_values[input_row * pc.cols + k0 + k];
    }
    x_tile[k * X_STRIDE + t] = v;
  }
}

void main() {
  // Tiles vary fastest: max_tiles is an upper bound, so the last ones are often empty, and a
  // driver handing each thread a contiguous range of workgroups (llvmpipe) would give one
  // thread those.
  const uint tile = gl_WorkGroupID.x;
  const uint first_row = gl_WorkGroupID.y * TILE_ROWS;
  // Uniform early returns (before any barrier).
  if (tile >= min(tiles[0], pc.max_tiles) || first_row >= pc.rows || pc.top_k == 0u) return;
  const uint expert = tiles[1u + MOE_TILE_WORDS * tile];
  const uint first = tiles[2u + MOE_TILE_WORDS * tile];
  const uint count = tiles[3u + MOE_TILE_WORDS * tile];
  uint base;
  if (!expert_slot_base(expert, base)) return;
  const uint tid = gl_LocalInvocationIndex;
  const uint row_lane = tid % ROW_THREADS, token_lane = tid / ROW_THREADS;

  for (uint step = 0u; step < count; step += TILE_TOKENS) {
    const uint n_entries = min(TILE_TOKENS, count - step);
    for (uint t = tid; t < n_entries; t += gl_WorkGroupSize.x) step_entries[t] = sorted_entries[first + step + t];
    float acc[ACC];
#ifdef MOE_GATE_UP
    float acc_up[ACC];
#endif
    for (uint i = 0u; i < ACC; ++i) {
      acc[i] = 0.0;
#ifdef MOE_GATE_UP
      acc_up[i] = 0.0;
#endif
    }
    barrier();  // step_entries visible

    // Invocations whose entries are all padding (a short last tile) only help stage.
    const bool has_work = token_lane < n_entries;
    for (uint k0 = 0u; k0 < pc.cols; k0 += TILE_K) {
      stage_weights(base, first_row, k0);
      stage_inputs(n_entries, k0);
      barrier();
      for (uint k = 0u; k < TILE_K && has_work; ++k) {
        float a[THREAD_ROWS];
#ifdef MOE_GATE_UP
        float a_up[THREAD_ROWS];
#endif
        float b[THREAD_TOKENS];
        for (uint i = 0u; i < THREAD_ROWS; ++i) {
          a[i] = w_tile[k * W_STRIDE + row_lane + i * ROW_THREADS];
#ifdef MOE_GATE_UP
          a_up[i] = w_tile[(TILE_K + k) * W_STRIDE + row_lane + i * ROW_THREADS];
#endif
        }
        for (uint j = 0u; j < THREAD_TOKENS; ++j) b[j] = x_tile[k * X_STRIDE + token_lane + j * TOKEN_THREADS];
        for (uint j = 0u; j < THREAD_TOKENS; ++j) {
          if (token_lane + j * TOKEN_THREADS >= n_entries) break;  // padding from here on
          for (uint i = 0u; i < THREAD_ROWS; ++i) {
            acc[i * THREAD_TOKENS + j] += a[i] * b[j];
#ifdef MOE_GATE_UP
            acc_up[i * THREAD_TOKENS + j] += a_up[i] * b[j];
#endif
          }
        }
      }
      barrier();  // the next block overwrites the tiles
    }

    for (uint i = 0u; i < THREAD_ROWS; ++i) {
      const uint row = first_row + row_lane + i * ROW_THREADS;
      for (uint j = 0u; j < THREAD_TOKENS; ++j) {
        const uint t = token_lane + j * TOKEN_THREADS;
        if (row >= pc.rows || t >= n_entries) continue;
#ifdef MOE_GATE_UP
        const float value = silu(acc[i * THREAD_TOKENS + j]) * acc_up[i * THREAD_TOKENS + j];
#else
        const float value = acc[i * THREAD_TOKENS + j];
#endif
        output_values[step_entries[t] * pc.rows + row] = value;
      }
    }
    barrier();  // step_entries is overwritten next
  }
}
#endif  // PER_INVOCATION
