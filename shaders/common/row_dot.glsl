#ifndef MEGREZ_ROW_DOT_GLSL
#define MEGREZ_ROW_DOT_GLSL
// Whole-row dot products summed by ONE invocation: the "per invocation" flavour of the
// matrix kernels (matvec_rows.comp, matmul_rows.comp, and the *_rows variants of
// moe_matvec.comp and moe_matmul.comp), for CPU drivers.
//
// WHY: on llvmpipe (lavapipe) an invocation is one lane of a SIMD vector, and a storage-buffer
// load whose address differs per lane becomes a loop over the lanes. What costs is the number
// of load instructions, not the bytes, so this flavour reads 16 (float formats) or 8
// (quantized) bytes per load, lets each invocation walk whole rows (nothing to reduce across
// invocations, no barriers), and walks ROW_STREAMS rows at once so that every x load serves
// all of them: x is the same for every lane, but its address depends on the loop counter, and
// llvmpipe only loads once for all lanes where the address is built from constants and push
// constants, so x costs per-lane loads like the weights (abi/matvec.h). On a GPU the same
// pattern would read memory badly (neighbouring invocations a row apart), which is why
// DeviceCaps picks it only for CPU devices.
//
// ---- How to use ---------------------------------------------------------------------------
//   #define WEIGHT_<format>, and ROW_STREAMS n (rows walked together, a preprocessor constant)
//   #include "common/row_dot.glsl"
// It declares the weights as binding 0 (row_units[], of ROW_UNIT) and the input as binding 1
// (row_input[], vec4; a uniform buffer with ROW_INPUT_UNIFORM; with ROW_INPUT_UNIFORM_PER_TOKEN
// one uniform buffer per token, bindings 1 and 3-9), includes common/weights.glsl for the block
// decoding, and defines row_dots() below.
//
// Layout rules (the host checks them before picking this flavour, ops/linear.cpp):
//   float formats: rows are whole 16-byte units (cols % 4 == 0 for f32, % 8 for f16/bf16);
//   q8_0 / q4_0:   cols % 128 == 0, so a row is whole steps of 4 blocks = 136 / 72 bytes,
//                  whole 8-byte units; with ROW_WIDE (matvec_<q>_rows_wide) cols % 256 == 0,
//                  steps of 8 blocks = 272 / 144 bytes read as 16-byte units, half the loads
//                  (q4_0 matvecs measured ~10 % faster, q8_0 ~8 % at 4 rows per invocation);
//   every row starts on a unit boundary of the bound range, and x on a vec4.
// Decoding is that of weights.glsl, exact; only the order of the fp32 additions differs from
// the other flavours (within the kernels' tolerance; each flavour is deterministic).

// Every loop inside a step is [[unroll]]: left to itself, Mesa's loop unroller did not unroll
// the quantized block loop (presumably its size limits), so words[][], xs[][] and q[] were
// indexed by a loop variable, which llvmpipe keeps in memory and reads per lane. Forced, every
// index is a constant: q8_0 / q4_0 products measured 1.4-2x faster; float formats unchanged
// (their loops were unrolled already; the attribute there only states the intent).
#extension GL_EXT_control_flow_attributes : require
#ifdef ROW_INPUT_SHUFFLE
// x shared through subgroup shuffles (the *_shuffle twins of the batched products, quantized
// rows): ROW_TOKENS tokens' x loads per block instead of 8 x ROW_TOKENS, since on llvmpipe each
// such load is a loop over the lanes. Needs every lane of a subgroup in the call, summing rows
// of the same tokens (workgroup = one subgroup of at least 4 lanes; the host checks).
#extension GL_KHR_shader_subgroup_shuffle : require
#if !defined(WEIGHT_Q8_0) && !defined(WEIGHT_Q4_0)
#error "ROW_INPUT_SHUFFLE is for quantized rows"
#endif
#endif
#if defined(WEIGHT_Q8_0) || defined(WEIGHT_Q4_0)
#if defined(ROW_WIDE)
#define ROW_UNIT uvec4
#define ROW_UNIT_WORDS 4u
#else
#define ROW_UNIT uvec2
#define ROW_UNIT_WORDS 2u
#endif
#define ROW_UNIT_BYTES (4u * ROW_UNIT_WORDS)
#define ROW_STEP_BLOCKS (2u * ROW_UNIT_WORDS)   // 4 or 8 blocks: whole units of whole block pairs
#define ROW_STEP_COLS (32u * ROW_STEP_BLOCKS)
#if defined(WEIGHT_Q8_0)
#define ROW_QS_WORDS 8u                    // quant words of a block
#else
#define ROW_QS_WORDS 4u
#endif
#define ROW_PAIR_WORDS (2u * ROW_QS_WORDS + 1u)  // two blocks: 17 (q8_0) or 9 (q4_0) words
#define ROW_STEP_UNITS ROW_PAIR_WORDS            // a step's pairs = ROW_UNIT_WORDS: ROW_PAIR_WORDS units
#else
#define ROW_UNIT uvec4
#define ROW_UNIT_BYTES 16u
#define ROW_STEP_UNITS 1u
#if defined(WEIGHT_F32)
#define ROW_STEP_COLS 4u
#else
#define ROW_STEP_COLS 8u
#endif
#endif

layout(set = 0, binding = 0) readonly buffer RowWeights { ROW_UNIT row_units[]; };
#if defined(ROW_INPUT_UNIFORM_PER_TOKEN)
// One uniform buffer per token (matmul_<fmt>_rows_ubo, 8 tokens): token t's row of x, at most
// MEGREZ_ROW_INPUT_UNIFORM_BYTES, at binding 1 (t = 0) or 2 + t (binding 2 is the output).
// Why per token and not one buffer for all 8: a token's row is what fits 64 KiB at Megrez2's
// widths (5632 and 10944 columns too), wherever the rows lie apart. The loops over t are
// unrolled, so the switch below folds away.
#if ROW_TOKENS != 8
#error "ROW_INPUT_UNIFORM_PER_TOKEN declares 8 input bindings"
#endif
#define ROW_INPUT_BLOCK(t, b) \
  layout(set = 0, binding = b, std140) uniform RowInput##t { vec4 row_input##t[MEGREZ_ROW_INPUT_UNIFORM_BYTES / 16]; };
ROW_INPUT_BLOCK(0, 1)
ROW_INPUT_BLOCK(1, 3)
ROW_INPUT_BLOCK(2, 4)
ROW_INPUT_BLOCK(3, 5)
ROW_INPUT_BLOCK(4, 6)
ROW_INPUT_BLOCK(5, 7)
ROW_INPUT_BLOCK(6, 8)
ROW_INPUT_BLOCK(7, 9)
vec4 row_input_of(uint t, uint i) {
  switch (t) {
    case 0u: return row_input0[i];
    case 1u: return row_input1[i];
    case 2u: return row_input2[i];
    case 3u: return row_input3[i];
    case 4u: return row_input4[i];
    case 5u: return row_input5[i];
    case 6u: return row_input6[i];
    default: return row_input7[i];
  }
}
#define INPUT4_OF(t, i) row_input_of(t, i)
#elif defined(ROW_INPUT_UNIFORM)
// x as a uniform buffer (variants *_ubo, where the host binds at most
// MEGREZ_ROW_INPUT_UNIFORM_BYTES of it): llvmpipe reads a storage buffer at a per-lane address
// one lane at a time, with a branch per lane, but a uniform buffer with one vector gather, and
// x's address is per-lane to it (see WHY above). The decode products measured 10-25 % faster.
layout(set = 0, binding = 1, std140) uniform RowInput { vec4 row_input[MEGREZ_ROW_INPUT_UNIFORM_BYTES / 16]; };
#else
layout(set = 0, binding = 1) readonly buffer RowInput { vec4 row_input[]; };
#endif
#if defined(WEIGHT_Q8_0) || defined(WEIGHT_Q4_0)
#define WEIGHT_WORD(i) row_units[(i) / ROW_UNIT_WORDS][(i) % ROW_UNIT_WORDS]
#else
#define WEIGHT_WORD(i) row_units[(i) >> 2][(i) & 3u]
#endif
#include "common/weights.glsl"
#define WEIGHT_UNIT(i) row_units[i]
#ifndef INPUT4_OF
#define INPUT4_OF(t, i) row_input[i]
#endif

#if defined(WEIGHT_F16)
vec4 row_unit_lo(uvec4 u) { return vec4(unpackHalf2x16(u.x), unpackHalf2x16(u.y)); }
vec4 row_unit_hi(uvec4 u) { return vec4(unpackHalf2x16(u.z), unpackHalf2x16(u.w)); }
#elif defined(WEIGHT_BF16)
vec4 row_unit_lo(uvec4 u) { return uintBitsToFloat(uvec4(u.x << 16, u.x & 0xffff0000u, u.y << 16, u.y & 0xffff0000u)); }
vec4 row_unit_hi(uvec4 u) { return uintBitsToFloat(uvec4(u.z << 16, u.z & 0xffff0000u, u.w << 16, u.w & 0xffff0000u)); }
#endif

#ifndef ROW_TOKENS
#define ROW_TOKENS 1  // input vectors each row is applied to (matmul_rows.comp: several tokens)
#endif

// sums[s * ROW_TOKENS + t] += dot(row s, x_t[0..cols-1]): row s starts at weight unit
// first_unit[s], input t at vec4 x_first[t]. Rows and tokens past the end must still point at
// real data (callers clamp them and drop their sums).
void row_dots(uint first_unit[ROW_STREAMS], uint x_first[ROW_TOKENS], uint cols,
              inout float sums[ROW_STREAMS * ROW_TOKENS]) {
  const uint steps = cols / ROW_STEP_COLS;
  for (uint step = 0u; step < steps; ++step) {
#if defined(WEIGHT_Q8_0) || defined(WEIGHT_Q4_0)
    // ROW_UNIT_WORDS pairs of blocks per row; a pair is ROW_PAIR_WORDS words: block A with its
    // scale in the low half of the first word and its quants straddling words (joined), block
    // B with its scale in the high half of word ROW_QS_WORDS and word-aligned quants after it.
    uint words[ROW_STREAMS][ROW_UNIT_WORDS * ROW_PAIR_WORDS];
    [[unroll]] for (uint s = 0u; s < ROW_STREAMS; ++s) {
      [[unroll]] for (uint u = 0u; u < ROW_STEP_UNITS; ++u) {
        const ROW_UNIT unit = WEIGHT_UNIT(first_unit[s] + step * ROW_STEP_UNITS + u);
        [[unroll]] for (uint i = 0u; i < ROW_UNIT_WORDS; ++i) words[s][ROW_UNIT_WORDS * u + i] = unit[i];
      }
    }
    [[unroll]] for (uint block = 0u; block < ROW_STEP_BLOCKS; ++block) {
      vec4 xs[ROW_TOKENS][8];
#ifdef ROW_INPUT_SHUFFLE
      // Each lane loads one (4 lanes: two) of the block's 8 vec4s of x per token, and shuffles
      // hand them round: every lane of the subgroup sums other rows of the same tokens.
      const uint lane = gl_SubgroupInvocationID;
      [[unroll]] for (uint t = 0u; t < ROW_TOKENS; ++t) {
        const uint first = x_first[t] + step * (ROW_STEP_COLS / 4u) + block * 8u;
        if (gl_SubgroupSize >= 8u) {
          const vec4 mine = INPUT4_OF(t, first + (lane & 7u));
          [[unroll]] for (uint k = 0u; k < 8u; ++k) xs[t][k] = subgroupShuffle(mine, k);
        } else {
          const vec4 lo = INPUT4_OF(t, first + (lane & 3u)), hi = INPUT4_OF(t, first + 4u + (lane & 3u));
          [[unroll]] for (uint k = 0u; k < 4u; ++k) {
            xs[t][k] = subgroupShuffle(lo, k);
            xs[t][k + 4u] = subgroupShuffle(hi, k);
          }
        }
      }
#else
      [[unroll]] for (uint t = 0u; t < ROW_TOKENS; ++t) {
        [[unroll]] for (uint k = 0u; k < 8u; ++k) xs[t][k] = INPUT4_OF(t, x_first[t] + step * (ROW_STEP_COLS / 4u) + block * 8u + k);
      }
#endif
      const uint pair = (block >> 1) * ROW_PAIR_WORDS;
      const bool second = (block & 1u) != 0u;
      [[unroll]] for (uint s = 0u; s < ROW_STREAMS; ++s) {
        uint qs[ROW_QS_WORDS];
        float d;
        if (second) {
          d = weight_half(words[s][pair + ROW_QS_WORDS] >> 16);
          [[unroll]] for (uint k = 0u; k < ROW_QS_WORDS; ++k) qs[k] = words[s][pair + ROW_QS_WORDS + 1u + k];
        } else {
          d = weight_half(words[s][pair] & 0xffffu);
          [[unroll]] for (uint k = 0u; k < ROW_QS_WORDS; ++k) qs[k] = weight_join(words[s][pair + k], words[s][pair + k + 1u], true);
        }
        // The block's 32 quants in column order, as floats (the scale is applied to the sums).
        vec4 q[8];
#if defined(WEIGHT_Q8_0)
        [[unroll]] for (uint k = 0u; k < 8u; ++k) q[k] = weight_i8x4(qs[k]);
#else
        [[unroll]] for (uint k = 0u; k < 4u; ++k) {
          const uvec4 bytes = (uvec4(qs[k]) >> uvec4(0u, 8u, 16u, 24u)) & 0xffu;
          q[k] = vec4(bytes & 15u) - 8.0;        // columns 4k..4k+3
          q[k + 4u] = vec4(bytes >> 4u) - 8.0;   // columns 16+4k..
        }
#endif
        [[unroll]] for (uint t = 0u; t < ROW_TOKENS; ++t) {
          float sum = 0.0;
          [[unroll]] for (uint k = 0u; k < 8u; ++k) sum += dot(q[k], xs[t][k]);
          sums[s * ROW_TOKENS + t] += d * sum;
        }
      }
    }
#elif defined(WEIGHT_F32)
    vec4 xv[ROW_TOKENS];
    [[unroll]] for (uint t = 0u; t < ROW_TOKENS; ++t) xv[t] = INPUT4_OF(t, x_first[t] + step);
    [[unroll]] for (uint s = 0u; s < ROW_STREAMS; ++s) {
      const vec4 wv = uintBitsToFloat(WEIGHT_UNIT(first_unit[s] + step));
      [[unroll]] for (uint t = 0u; t < ROW_TOKENS; ++t) sums[s * ROW_TOKENS + t] += dot(wv, xv[t]);
    }
#else
    vec4 x_lo[ROW_TOKENS], x_hi[ROW_TOKENS];
    [[unroll]] for (uint t = 0u; t < ROW_TOKENS; ++t) {
      x_lo[t] = INPUT4_OF(t, x_first[t] + 2u * step);
      x_hi[t] = INPUT4_OF(t, x_first[t] + 2u * step + 1u);
    }
    [[unroll]] for (uint s = 0u; s < ROW_STREAMS; ++s) {
      const uvec4 unit = WEIGHT_UNIT(first_unit[s] + step);
      const vec4 lo = row_unit_lo(unit), hi = row_unit_hi(unit);
      [[unroll]] for (uint t = 0u; t < ROW_TOKENS; ++t) sums[s * ROW_TOKENS + t] += dot(lo, x_lo[t]) + dot(hi, x_hi[t]);
    }
#endif
  }
}

#endif  // MEGREZ_ROW_DOT_GLSL
