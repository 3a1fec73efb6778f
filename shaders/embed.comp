#version 450
// Embedding gather: out[t, :] = table[ids[t], :] decoded to fp32, one workgroup per token.
// The table may be split by rows into several bindings (it is over 128 MiB at 8 bits for a
// 128880 x 2048 vocabulary): the bound part holds ids [row_offset, row_offset + row_count)
// and tokens outside it are skipped, so the engine dispatches once per part.
// Decoding is exact: the output equals loader/quant/quant.h's dequantize_row bit for bit.
#extension GL_GOOGLE_include_directive : require
#include "common/workgroup.glsl"
#include "abi/embed.h"

layout(set = 0, binding = 0) readonly buffer Table { uint w[]; };
layout(set = 0, binding = 1) readonly buffer Ids { uint ids[]; };
layout(set = 0, binding = 2) writeonly buffer Out { float out_values[]; };
layout(push_constant) uniform Push { EmbedPush pc; };

#define WEIGHT_WORD(i) w[i]
#include "common/weights.glsl"

void main() {
  uint token = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  if (token >= pc.tokens) return;
  uint id = ids[token];
  if (id < pc.row_offset || id - pc.row_offset >= pc.row_count) return;  // another part's row
  uint row_byte = (id - pc.row_offset) * WEIGHT_ROW_BYTES(pc.dim);
  uint out_base = token * pc.dim;
  uint quarters = pc.dim / 8u;
  for (uint u = gl_LocalInvocationIndex; u < quarters; u += gl_WorkGroupSize.x) {
    uint block = u >> 2, q = u & 3u;
    vec4 lo, hi;
    weight_quarter(row_byte + block * WEIGHT_BLOCK_BYTES, q, lo, hi);
    uint col = out_base + block * 32u;
    for (uint j = 0u; j < 4u; ++j) {
      out_values[col + WEIGHT_QUARTER_LO(q) + j] = lo[j];
      out_values[col + WEIGHT_QUARTER_HI(q) + j] = hi[j];
    }
  }
#if !WEIGHT_QUANTIZED
  for (uint c = quarters * 8u + gl_LocalInvocationIndex; c < pc.dim; c += gl_WorkGroupSize.x) {
    out_values[out_base + c] = weight_at(row_byte, c);
  }
#endif
}
