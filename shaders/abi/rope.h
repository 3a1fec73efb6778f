#ifndef MEGREZ_ABI_ROPE_H
#define MEGREZ_ABI_ROPE_H
// Push constants of shaders/rope.comp: NeoX (rotate_half) rotary embedding applied in place.
// Bindings: 0 x (float, read-write), 1 frequency table (uvec2 per frequency, see
// runtime/ops/attention.h rope_frequency_table). Head h of token t starts at element
// offset + t * row_stride + h * head_dim and sits at position pos0 + t.
#include "prelude.h"

MEGREZ_ABI_BEGIN
struct RopePush {
  uint tokens;      // T
  uint heads;       // heads per token row
  uint head_dim;    // Dh, even
  uint offset;      // element index of head 0 of token 0
  uint row_stride;  // elements from one token's row to the next
  uint pos0;        // position of token 0
};
MEGREZ_ABI_END

MEGREZ_ABI_CHECK_SIZE(megrez::abi::RopePush, 24)
MEGREZ_ABI_CHECK_OFFSET(megrez::abi::RopePush, pos0, 20)

#endif
